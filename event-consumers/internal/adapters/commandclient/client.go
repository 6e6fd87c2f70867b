// Package commandclient is event-consumers' client of the command service's internal routes: the
// workflow's steps (contract.PathSteps) and the expiry of collect requests (contract.PathCollectExpiries).
package commandclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"

	"upi/event-consumers/internal/app/workflow"
	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/observability"
)

// ClientID is the client id event-consumers names itself with on internal calls.
const ClientID = "event-consumers"

// Client calls the command service at BaseURL.
type Client struct {
	BaseURL string
	HTTP    *http.Client
	// Timeout bounds one call.
	Timeout time.Duration
}

// CallError is a call to the step route that failed as a whole. Transient ones (the service unreachable,
// overloaded, or its database unavailable) wrap workflow.ErrUnavailable and are retried; the others mean
// a bug on one side of the contract.
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

// Unwrap makes a transient CallError match workflow.ErrUnavailable, and a refusal of the request itself
// (a 4xx other than 408, 409 and 429) workflow.ErrRefused.
func (e *CallError) Unwrap() error {
	switch {
	case e.Transient:
		return workflow.ErrUnavailable
	case e.Status >= 400 && e.Status < 500 && e.Status != http.StatusRequestTimeout &&
		e.Status != http.StatusConflict && e.Status != http.StatusTooManyRequests:
		return workflow.ErrRefused
	}
	return nil
}

// RunSteps implements workflow.Steps: it sends steps in one call, or several when there are more than one
// call may carry.
func (c *Client) RunSteps(ctx context.Context, steps []contract.Step) ([]contract.StepResult, error) {
	out := make([]contract.StepResult, 0, len(steps))
	for len(steps) > 0 {
		n := min(len(steps), contract.MaxSteps)
		res, err := c.runSteps(ctx, steps[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, res...)
		steps = steps[n:]
	}
	return out, nil
}

func (c *Client) runSteps(ctx context.Context, steps []contract.Step) ([]contract.StepResult, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := c.request(ctx, contract.PathSteps, contract.StepsRequest{Steps: steps})
	if err != nil {
		return nil, err
	}
	status, raw, err := c.do(req, 64<<20)
	if err != nil {
		return nil, &CallError{Status: status, Detail: err.Error(), Transient: true}
	}
	if status != http.StatusOK {
		var p problem.Problem
		_ = json.Unmarshal(raw, &p)
		return nil, &CallError{Status: status, Code: p.Code, Detail: p.Detail, Transient: workflow.TransientStatus(status)}
	}
	var out contract.StepsResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, &CallError{Status: status, Detail: "undecodable answer: " + err.Error()}
	}
	if len(out.Results) != len(steps) {
		return nil, &CallError{Status: status, Detail: fmt.Sprintf("%d results for %d steps", len(out.Results), len(steps))}
	}
	return out.Results, nil
}

// ExpireCollects implements expiry.Expirer: it asks the command service to expire the collect requests
// due, in one call.
func (c *Client) ExpireCollects(ctx context.Context, due []uuid.UUID) ([]contract.CollectExpiryResult, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := c.request(ctx, contract.PathCollectExpiries, contract.CollectExpiriesRequest{CollectIDs: due})
	if err != nil {
		return nil, err
	}
	status, raw, err := c.do(req, 8<<20)
	if err != nil {
		return nil, fmt.Errorf("expire collect requests: %w", err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("expire collect requests: %d: %s", status, raw)
	}
	var out contract.CollectExpiriesResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("expire collect requests: undecodable answer: %w", err)
	}
	return out.Results, nil
}

// request builds a POST of body, as JSON, to path.
func (c *Client) request(ctx context.Context, path string, body any) (*http.Request, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+path, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(contract.HeaderClientID, ClientID)
	if id := observability.RequestID(ctx); id != "" {
		req.Header.Set(observability.HeaderRequestID, id)
	}
	return req, nil
}

// do sends req and reads up to limit bytes of the answer. status is 0 when no answer came; an error with
// a status means the answer could not be read.
func (c *Client) do(req *http.Request, limit int64) (status int, raw []byte, err error) {
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err = io.ReadAll(io.LimitReader(resp.Body, limit))
	return resp.StatusCode, raw, err
}

// AdvanceMandates asks the command service to decide the mandates' due steps (contract.PathMandateTimers),
// with one result per item.
func (c *Client) AdvanceMandates(ctx context.Context, items []contract.MandateTimer) ([]contract.MandateTimerResult, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := c.request(ctx, contract.PathMandateTimers, contract.MandateTimersRequest{Items: items})
	if err != nil {
		return nil, err
	}
	status, raw, err := c.do(req, 8<<20)
	if err != nil {
		return nil, fmt.Errorf("advance mandates: %w", err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("advance mandates: %d: %s", status, raw)
	}
	var out contract.MandateTimersResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("advance mandates: undecodable answer: %w", err)
	}
	return out.Results, nil
}

// ResolveComplaints implements complaints.Resolver: it asks the command service to resolve, from the log,
// the complaints whose payment may have ended, in one call.
func (c *Client) ResolveComplaints(ctx context.Context, refs []contract.ComplaintRef) ([]contract.ComplaintResolutionResult, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := c.request(ctx, contract.PathComplaintResolutions, contract.ComplaintResolutionsRequest{Complaints: refs})
	if err != nil {
		return nil, err
	}
	status, raw, err := c.do(req, 8<<20)
	if err != nil {
		return nil, fmt.Errorf("resolve complaints: %w", err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("resolve complaints: %d: %s", status, raw)
	}
	var out contract.ComplaintResolutionsResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("resolve complaints: undecodable answer: %w", err)
	}
	return out.Results, nil
}

// ChargebackComplaints implements complaints.Resolver: it asks the command service to charge back the
// disputes past their due_at, in one call.
func (c *Client) ChargebackComplaints(ctx context.Context, refs []contract.ComplaintRef) ([]contract.ComplaintResolutionResult, error) {
	return c.complaintBatch(ctx, "charge back complaints", contract.PathComplaintChargebacks, contract.ComplaintResolutionsRequest{Complaints: refs})
}

// RetryComplaintRefunds implements complaints.Resolver: it asks the command service to try again the
// failed refunds of settled disputes, in one call.
func (c *Client) RetryComplaintRefunds(ctx context.Context, retries []contract.ComplaintRetry) ([]contract.ComplaintResolutionResult, error) {
	return c.complaintBatch(ctx, "retry complaint refunds", contract.PathComplaintRefundRetries, contract.ComplaintRetriesRequest{Retries: retries})
}

func (c *Client) complaintBatch(ctx context.Context, what, path string, body any) ([]contract.ComplaintResolutionResult, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := c.request(ctx, path, body)
	if err != nil {
		return nil, err
	}
	status, raw, err := c.do(req, 8<<20)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("%s: %d: %s", what, status, raw)
	}
	var out contract.ComplaintResolutionsResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("%s: undecodable answer: %w", what, err)
	}
	return out.Results, nil
}
