package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"upi/command-service/internal/app"
	"upi/shared/contract"
	"upi/shared/events"
	"upi/shared/observability"
	"upi/shared/problem"
)

type handlers struct {
	svc    *app.Service
	limits contract.Limits
	log    *slog.Logger
}

// caller is the client and idempotency key of a client command; every client POST must carry a key.
func caller(r *http.Request) (app.Caller, *problem.Problem) {
	key := r.Header.Get(contract.HeaderIdempotencyKey)
	if err := contract.CheckIdempotencyKey(key); err != nil {
		return app.Caller{}, problem.New(http.StatusBadRequest, problem.CodeIdempotencyKeyRequired, err.Error())
	}
	return app.Caller{ClientID: r.Header.Get(contract.HeaderClientID), IdempotencyKey: key,
		RequestID: observability.RequestID(r.Context())}, nil
}

func (h *handlers) openAccount(w http.ResponseWriter, r *http.Request) {
	c, p := caller(r)
	if p != nil {
		h.fail(w, r, p)
		return
	}
	var req contract.OpenAccountRequest
	if p := contract.Decode(w, r, &req); p != nil {
		h.fail(w, r, p)
		return
	}
	cmd, p := req.Validate()
	if p != nil {
		h.fail(w, r, p)
		return
	}
	account, replayed, err := h.svc.OpenAccount(r.Context(), c, cmd)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Location", app.PathAccounts+"/"+account.VPA)
	written(w, http.StatusCreated, account, replayed)
}

func (h *handlers) deposit(w http.ResponseWriter, r *http.Request) {
	c, p := caller(r)
	if p != nil {
		h.fail(w, r, p)
		return
	}
	var req contract.DepositRequest
	if p := contract.Decode(w, r, &req); p != nil {
		h.fail(w, r, p)
		return
	}
	// A client may percent-encode the "@" of the VPA in the path.
	account, err := url.PathUnescape(chi.URLParam(r, "vpa"))
	if err != nil {
		account = ""
	}
	cmd, p := req.Validate(account, h.limits)
	if p != nil {
		h.fail(w, r, p)
		return
	}
	deposit, replayed, err := h.svc.Deposit(r.Context(), c, cmd)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	written(w, http.StatusCreated, deposit, replayed)
}

func (h *handlers) initiatePayment(w http.ResponseWriter, r *http.Request) {
	c, p := caller(r)
	if p != nil {
		h.fail(w, r, p)
		return
	}
	var req contract.PaymentRequest
	if p := contract.Decode(w, r, &req); p != nil {
		h.fail(w, r, p)
		return
	}
	cmd, p := req.Validate(h.limits)
	if p != nil {
		h.fail(w, r, p)
		return
	}
	payment, replayed, err := h.svc.InitiatePayment(r.Context(), c, cmd)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Location", app.PathPayments+"/"+payment.PaymentID)
	written(w, http.StatusAccepted, payment, replayed)
}

type stepFunc func(context.Context, app.StepCommand) (app.StepOutcome, error)

// stepRequest is the optional body of a workflow step.
type stepRequest struct {
	Code        string `json:"code,omitempty"`
	Reason      string `json:"reason,omitempty"`
	CausationID string `json:"causation_id,omitempty"`
}

// stepResponse is the answer to every workflow step (docs/internal-api.md).
type stepResponse struct {
	PaymentID string `json:"payment_id"`
	Step      string `json:"step"`
	EventType string `json:"event_type"`
	EventID   string `json:"event_id"`
	Position  string `json:"position"`
	Replayed  bool   `json:"replayed"`
}

// failureCode reports whether code is one a payment may fail with; it reaches clients as failure_code, so
// only the documented ones are accepted.
func failureCode(code string) bool {
	switch code {
	case events.CodeInsufficientFunds, events.CodePayeeUnavailable, events.CodeProcessingError:
		return true
	}
	return false
}

const maxReasonLen = 500

func (h *handlers) step(name string, run stepFunc, needCode bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := uuid.Parse(chi.URLParam(r, "id"))
		if err != nil {
			h.fail(w, r, problem.New(http.StatusNotFound, problem.CodePaymentNotFound, "no such payment"))
			return
		}
		ctx := observability.WithCorrelationID(r.Context(), id.String())
		r = r.WithContext(ctx)
		var req stepRequest
		if r.ContentLength != 0 { // steps without a code may come with no body at all
			if p := contract.Decode(w, r, &req); p != nil {
				h.fail(w, r, p)
				return
			}
		}
		var errs []problem.FieldError
		if needCode && !failureCode(req.Code) {
			errs = append(errs, problem.FieldError{Field: "code", Message: "code must be a documented failure code"})
		}
		if utf8.RuneCountInString(req.Reason) > maxReasonLen || !utf8.ValidString(req.Reason) {
			errs = append(errs, problem.FieldError{Field: "reason", Message: "reason must be at most 500 characters"})
		}
		if req.CausationID != "" {
			if _, err := uuid.Parse(req.CausationID); err != nil {
				errs = append(errs, problem.FieldError{Field: "causation_id", Message: "causation_id must be an event id"})
			}
		}
		if errs != nil {
			h.fail(w, r, problem.Validation(errs...))
			return
		}
		out, err := run(ctx, app.StepCommand{
			PaymentID:   id,
			Caller:      app.Caller{ClientID: r.Header.Get(contract.HeaderClientID), RequestID: observability.RequestID(ctx)},
			CausationID: req.CausationID,
			Code:        req.Code,
			Reason:      req.Reason,
		})
		if err != nil {
			h.fail(w, r, err)
			return
		}
		written(w, http.StatusOK, stepResponse{PaymentID: out.PaymentID, Step: out.Step, EventType: out.EventType,
			EventID: out.EventID, Position: out.Position, Replayed: out.Replayed}, out.Replayed)
	}
}
