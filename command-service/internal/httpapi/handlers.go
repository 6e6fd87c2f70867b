package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"upi/command-service/internal/app"
	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/httpjson"
	"upi/shared/platform/observability"
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
		RequestID: observability.RequestID(r.Context()), TraceParent: observability.TraceParent(r.Context())}, nil
}

// workflowCaller is the caller of a workflow call (steps, collect expiries): no idempotency key, as every
// step carries its own deterministic id.
func workflowCaller(r *http.Request) app.Caller {
	return app.Caller{ClientID: r.Header.Get(contract.HeaderClientID), RequestID: observability.RequestID(r.Context()),
		TraceParent: observability.TraceParent(r.Context())}
}

// clientCommand is the handler of one client command: the caller and its idempotency key, the body
// decoded into R and validated into C (validate also reads the path), the command run, and its answer
// written with status and, when location names one, a Location header.
func clientCommand[R, C, A any](h *handlers, status int,
	validate func(*http.Request, R) (C, *problem.Problem),
	run func(context.Context, app.Caller, C) (A, bool, error),
	location func(A) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, p := caller(r)
		if p != nil {
			h.fail(w, r, p)
			return
		}
		var req R
		if p := httpjson.Decode(w, r, &req); p != nil {
			h.fail(w, r, p)
			return
		}
		cmd, p := validate(r, req)
		if p != nil {
			h.fail(w, r, p)
			return
		}
		answer, replayed, err := run(r.Context(), c, cmd)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if location != nil {
			w.Header().Set("Location", location(answer))
		}
		writeAnswer(w, status, answer, replayed)
	}
}

func (h *handlers) openAccount() http.HandlerFunc {
	return clientCommand(h, http.StatusCreated,
		func(_ *http.Request, req contract.OpenAccountRequest) (contract.OpenAccount, *problem.Problem) {
			return req.Validate()
		},
		h.svc.OpenAccount,
		func(a contract.Account) string { return app.PathAccounts + "/" + a.VPA })
}

func (h *handlers) deposit() http.HandlerFunc {
	return clientCommand(h, http.StatusCreated,
		func(r *http.Request, req contract.DepositRequest) (contract.DepositCommand, *problem.Problem) {
			// A client may percent-encode the "@" of the VPA in the path.
			account, err := url.PathUnescape(chi.URLParam(r, "vpa"))
			if err != nil {
				account = ""
			}
			return req.Validate(account, h.limits)
		},
		h.svc.Deposit, nil)
}

func (h *handlers) withdraw() http.HandlerFunc {
	return clientCommand(h, http.StatusAccepted,
		func(r *http.Request, req contract.WithdrawalRequest) (contract.WithdrawCommand, *problem.Problem) {
			account, err := url.PathUnescape(chi.URLParam(r, "vpa"))
			if err != nil {
				account = ""
			}
			return req.Validate(account, h.limits)
		},
		h.svc.Withdraw,
		func(w contract.Withdrawal) string { return contract.PathWithdrawals + "/" + w.WithdrawalID })
}

func (h *handlers) initiatePayment() http.HandlerFunc {
	return clientCommand(h, http.StatusAccepted,
		func(_ *http.Request, req contract.PaymentRequest) (contract.InitiatePayment, *problem.Problem) {
			return req.Validate(h.limits)
		},
		h.svc.InitiatePayment,
		func(p contract.Payment) string { return app.PathPayments + "/" + p.PaymentID })
}

func (h *handlers) requestRefund() http.HandlerFunc {
	return clientCommand(h, http.StatusAccepted,
		func(r *http.Request, req contract.RefundRequest) (contract.RequestRefund, *problem.Problem) {
			cmd, p := req.Validate(chi.URLParam(r, "payment_id"), h.limits)
			if p != nil && len(p.Errors) > 0 && p.Errors[0].Field == "payment_id" {
				// An id that cannot be a payment's names no payment.
				return cmd, problem.New(http.StatusNotFound, problem.CodePaymentNotFound, "no such payment")
			}
			return cmd, p
		},
		h.svc.RequestRefund,
		func(rf contract.Refund) string { return "/v1/refunds/" + rf.RefundID })
}

// steps applies a batch of workflow steps (contract.PathSteps). Steps that fail validation are answered
// with their problem and not tried; the others are applied together, each failing alone for its own
// reason. Only a database failure fails the whole call.
func (h *handlers) steps(w http.ResponseWriter, r *http.Request) {
	var req contract.StepsRequest
	if p := httpjson.DecodeLimited(w, r, &req, contract.MaxStepsBodyBytes); p != nil {
		h.fail(w, r, p)
		return
	}
	if p := req.Check(); p != nil {
		h.fail(w, r, p)
		return
	}
	results := make([]contract.StepResult, len(req.Steps))
	valid := make([]contract.Step, 0, len(req.Steps))
	index := make([]int, 0, len(req.Steps))
	for i, st := range req.Steps {
		results[i] = contract.StepResult{PaymentID: st.PaymentID, RefundID: st.RefundID, Step: st.Step}
		if p := st.Check(); p != nil {
			results[i].Problem = p
			continue
		}
		valid = append(valid, st)
		index = append(index, i)
	}
	c := workflowCaller(r)
	outcomes, err := h.svc.Steps(r.Context(), c, valid)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	for j, o := range outcomes {
		res := &results[index[j]]
		if o.Err != nil {
			res.Problem = h.problem(r, o.Err)
			continue
		}
		res.EventType, res.EventID, res.Position = o.Event.Type, o.Event.ID.String(), o.Event.Position.Token()
		res.Payload, res.Replayed = o.Event.Payload, o.Replayed
	}
	writeAnswer(w, http.StatusOK, contract.StepsResponse{Results: results}, false)
}

func (h *handlers) requestCollect() http.HandlerFunc {
	return clientCommand(h, http.StatusCreated,
		func(_ *http.Request, req contract.CollectRequestBody) (contract.RequestCollect, *problem.Problem) {
			return req.Validate(h.limits)
		},
		h.svc.RequestCollect,
		func(c contract.Collect) string { return app.PathCollects + "/" + c.CollectID })
}

// answerCollect approves or declines the collect request named in the path, on behalf of its payer's owner.
func (h *handlers) answerCollect(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, p := caller(r)
		if p != nil {
			h.fail(w, r, p)
			return
		}
		id, err := uuid.Parse(chi.URLParam(r, "collect_id"))
		if err != nil {
			h.fail(w, r, problem.New(http.StatusNotFound, problem.CodeCollectNotFound, "no such collect request"))
			return
		}
		answer, status := h.svc.DeclineCollect, http.StatusOK
		if approve {
			answer, status = h.svc.ApproveCollect, http.StatusAccepted
		}
		col, replayed, err := answer(r.Context(), c, id)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeAnswer(w, status, col, replayed)
	}
}

// collectExpiries expires the collect requests event-consumers' watcher found due
// (contract.PathCollectExpiries); each fails alone, only a database failure fails the call.
func (h *handlers) collectExpiries(w http.ResponseWriter, r *http.Request) {
	var req contract.CollectExpiriesRequest
	if p := httpjson.Decode(w, r, &req); p != nil {
		h.fail(w, r, p)
		return
	}
	if len(req.CollectIDs) == 0 || len(req.CollectIDs) > contract.MaxCollectExpiries {
		h.fail(w, r, problem.New(http.StatusBadRequest, problem.CodeValidation,
			fmt.Sprintf("collect_ids must hold 1 to %d ids", contract.MaxCollectExpiries)))
		return
	}
	c := workflowCaller(r)
	outcomes, err := h.svc.ExpireCollects(r.Context(), c, req.CollectIDs)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := contract.CollectExpiriesResponse{Results: make([]contract.CollectExpiryResult, len(outcomes))}
	for i, o := range outcomes {
		out.Results[i] = contract.CollectExpiryResult{CollectID: req.CollectIDs[i], EventType: o.EventType}
		if o.Err != nil {
			out.Results[i].Problem = h.problem(r, o.Err)
		}
	}
	httpjson.Write(w, http.StatusOK, out)
}
