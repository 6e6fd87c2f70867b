package workflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"

	"upi/shared/contract"
	"upi/shared/observability"
	"upi/shared/problem"
)

// Step routes of the command service (docs/internal-api.md).
const (
	StepDebit       = "debit"
	StepCredit      = "credit"
	StepReverse     = "reverse"
	StepRejectDebit = "reject-debit"
	StepComplete    = "complete"
	StepFail        = "fail"
)

// ClientID is the client id the workflow names itself with on internal calls.
const ClientID = "event-consumers"

// StepResult is the command service's answer to a step: the outcome that stands in the log.
type StepResult struct {
	PaymentID string `json:"payment_id"`
	Step      string `json:"step"`
	EventType string `json:"event_type"`
	EventID   string `json:"event_id"`
	Position  string `json:"position"`
	Replayed  bool   `json:"replayed"`
}

// StepError is a step the command service refused or failed. Transient errors (the service unreachable,
// overloaded or its database unavailable) are worth retrying at once; the others are lasting.
type StepError struct {
	Step      string
	Status    int // 0 when no answer came
	Code      string
	Detail    string
	Transient bool
}

func (e *StepError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("step %s: no answer: %s", e.Step, e.Detail)
	}
	return fmt.Sprintf("step %s: %d %s: %s", e.Step, e.Status, e.Code, e.Detail)
}

// Steps runs workflow steps. HTTPSteps is the real one; tests may wrap it to inject failures.
type Steps interface {
	Run(ctx context.Context, paymentID uuid.UUID, step string, body any) (StepResult, error)
}

// HTTPSteps calls the command service's step routes.
type HTTPSteps struct {
	BaseURL string
	Client  *http.Client
	// Timeout bounds one call.
	Timeout time.Duration
}

// Run performs one step call.
func (s *HTTPSteps) Run(ctx context.Context, paymentID uuid.UUID, step string, body any) (StepResult, error) {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	payload := []byte("{}")
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return StepResult{}, fmt.Errorf("encode %s body: %w", step, err)
		}
	}
	url := fmt.Sprintf("%s/internal/payments/%s/%s", s.BaseURL, paymentID, step)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return StepResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(contract.HeaderClientID, ClientID)
	req.Header.Set(contract.HeaderCorrelationID, paymentID.String())
	if id := observability.RequestID(ctx); id != "" {
		req.Header.Set(observability.HeaderRequestID, id)
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		return StepResult{}, &StepError{Step: step, Detail: err.Error(), Transient: true}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return StepResult{}, &StepError{Step: step, Status: resp.StatusCode, Detail: err.Error(), Transient: true}
	}
	if resp.StatusCode == http.StatusOK {
		var out StepResult
		if err := json.Unmarshal(raw, &out); err != nil {
			return StepResult{}, &StepError{Step: step, Status: resp.StatusCode, Detail: "undecodable answer: " + err.Error()}
		}
		return out, nil
	}
	var p problem.Problem
	_ = json.Unmarshal(raw, &p)
	transient := resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusBadGateway ||
		resp.StatusCode == http.StatusGatewayTimeout || resp.StatusCode == http.StatusTooManyRequests
	return StepResult{}, &StepError{Step: step, Status: resp.StatusCode, Code: p.Code, Detail: p.Detail, Transient: transient}
}

// isTransient reports whether err is worth retrying without counting it against the step.
func isTransient(err error) bool {
	var se *StepError
	if errors.As(err, &se) {
		return se.Transient
	}
	return errors.Is(err, context.DeadlineExceeded)
}
