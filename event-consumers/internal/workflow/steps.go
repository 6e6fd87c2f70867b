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

	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/observability"
)

// ClientID is the client id the workflow names itself with on internal calls.
const ClientID = "event-consumers"

// Steps runs batches of workflow steps. StepsClient is the real one; tests may wrap it to inject failures.
// Run returns one result per step, in order, or an error when the call as a whole failed.
type Steps interface {
	Run(ctx context.Context, steps []contract.Step) ([]contract.StepResult, error)
}

// CallError is a call to the step route that failed as a whole. Transient ones (the service unreachable,
// overloaded, or its database unavailable) are retried; the others mean a bug on one side of the contract.
type CallError struct {
	Status    int // 0 when no answer came
	Code      string
	Detail    string
	Transient bool
}

func (e *CallError) Error() string {
	if e.Status == 0 {
		return "steps: no answer: " + e.Detail
	}
	return fmt.Sprintf("steps: %d %s: %s", e.Status, e.Code, e.Detail)
}

// StepsClient calls the command service's step route (contract.PathSteps).
type StepsClient struct {
	BaseURL string
	Client  *http.Client
	// Timeout bounds one call.
	Timeout time.Duration
}

// Run sends steps in one call, or several when there are more than one call may carry.
func (c *StepsClient) Run(ctx context.Context, steps []contract.Step) ([]contract.StepResult, error) {
	out := make([]contract.StepResult, 0, len(steps))
	for len(steps) > 0 {
		n := min(len(steps), contract.MaxSteps)
		res, err := c.call(ctx, steps[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, res...)
		steps = steps[n:]
	}
	return out, nil
}

func (c *StepsClient) call(ctx context.Context, steps []contract.Step) ([]contract.StepResult, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	payload, err := json.Marshal(contract.StepsRequest{Steps: steps})
	if err != nil {
		return nil, fmt.Errorf("encode steps: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+contract.PathSteps, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(contract.HeaderClientID, ClientID)
	if id := observability.RequestID(ctx); id != "" {
		req.Header.Set(observability.HeaderRequestID, id)
	}
	resp, err := c.Client.Do(req)
	if err != nil {
		return nil, &CallError{Detail: err.Error(), Transient: true}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, &CallError{Status: resp.StatusCode, Detail: err.Error(), Transient: true}
	}
	if resp.StatusCode != http.StatusOK {
		var p problem.Problem
		_ = json.Unmarshal(raw, &p)
		return nil, &CallError{Status: resp.StatusCode, Code: p.Code, Detail: p.Detail, Transient: transientStatus(resp.StatusCode)}
	}
	var out contract.StepsResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, &CallError{Status: resp.StatusCode, Detail: "undecodable answer: " + err.Error()}
	}
	if len(out.Results) != len(steps) {
		return nil, &CallError{Status: resp.StatusCode, Detail: fmt.Sprintf("%d results for %d steps", len(out.Results), len(steps))}
	}
	return out.Results, nil
}

// transientStatus reports whether an answer with status is about the service's state rather than the
// request, and so worth retrying as it is.
func transientStatus(status int) bool {
	switch status {
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout, http.StatusTooManyRequests:
		return true
	}
	return false
}

// isTransient reports whether a failed call is worth retrying without counting it against its steps.
func isTransient(err error) bool {
	var ce *CallError
	if errors.As(err, &ce) {
		return ce.Transient
	}
	return errors.Is(err, context.DeadlineExceeded)
}
