package httpapi

import (
	"errors"
	"net/http"

	"upi/command-service/internal/app"
	"upi/command-service/internal/domain"
	"upi/shared/contract/problem"
)

// fail answers err as problem+json. It is the one place where the service's errors meet HTTP: each
// domain or application failure has its stable code; a database failure is a 503 that is safe to retry
// (the command's transaction did not commit, or its deterministic id finds it on the retry); anything
// else is a 500 whose detail says nothing and whose full error goes to the log.
func (h *handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	problem.Write(w, h.problem(r, err))
}

// problem is err as the problem+json it is answered with.
func (h *handlers) problem(r *http.Request, err error) *problem.Problem {
	var p *problem.Problem
	switch {
	case errors.As(err, &p):
	case errors.Is(err, app.ErrIdempotencyKeyReused):
		p = problem.New(http.StatusUnprocessableEntity, problem.CodeIdempotencyKeyReused,
			"this Idempotency-Key was already used with a different request")
	case errors.Is(err, domain.ErrAccountExists):
		p = problem.New(http.StatusConflict, problem.CodeAccountExists, "an account with this vpa already exists")
	case errors.Is(err, domain.ErrAccountNotFound):
		p = problem.New(http.StatusNotFound, problem.CodeAccountNotFound, "no such account")
	case errors.Is(err, app.ErrPayeeNotFound):
		p = problem.New(http.StatusUnprocessableEntity, problem.CodePayeeNotFound, "the payee vpa does not exist")
	case errors.Is(err, domain.ErrPaymentNotFound):
		p = problem.New(http.StatusNotFound, problem.CodePaymentNotFound, "no such payment")
	case errors.Is(err, domain.ErrPaymentNotCompleted):
		p = problem.New(http.StatusUnprocessableEntity, problem.CodePaymentNotCompleted, "only a completed payment can be refunded")
	case errors.Is(err, domain.ErrRefundNotAllowed):
		p = problem.New(http.StatusUnprocessableEntity, problem.CodeRefundNotAllowed, "only a payment to an ENTITY can be refunded")
	case errors.Is(err, domain.ErrRefundExceeds):
		p = problem.New(http.StatusUnprocessableEntity, problem.CodeRefundExceedsPayment,
			"completed and pending refunds would pass the payment's amount")
	case errors.Is(err, domain.ErrRefundWindowClosed):
		p = problem.New(http.StatusUnprocessableEntity, problem.CodeRefundWindowClosed, "the payment is older than the refund window")
	case errors.Is(err, domain.ErrRefundNotFound):
		p = problem.New(http.StatusNotFound, problem.CodeRefundNotFound, "no such refund")
	case errors.Is(err, domain.ErrRefundTerminal):
		p = problem.New(http.StatusConflict, problem.CodePaymentTerminal, "the refund is already completed or failed")
	case errors.Is(err, app.ErrPayerNotFound):
		p = problem.New(http.StatusUnprocessableEntity, problem.CodePayerNotFound, "the payer vpa does not exist")
	case errors.Is(err, domain.ErrCollectNotAllowed):
		p = problem.New(http.StatusUnprocessableEntity, problem.CodeCollectNotAllowed,
			"only an ENTITY account may send a collect request")
	case errors.Is(err, domain.ErrCollectNotFound):
		p = problem.New(http.StatusNotFound, problem.CodeCollectNotFound, "no such collect request")
	case errors.Is(err, domain.ErrCollectExpired):
		p = problem.New(http.StatusUnprocessableEntity, problem.CodeCollectExpired, "the collect request has expired")
	case errors.Is(err, domain.ErrCollectDeclined):
		p = problem.New(http.StatusUnprocessableEntity, problem.CodeCollectDeclined, "the collect request was declined")
	case errors.Is(err, domain.ErrCollectApproved):
		p = problem.New(http.StatusUnprocessableEntity, problem.CodeCollectApproved, "the collect request was approved")
	case errors.Is(err, domain.ErrCollectNotDue):
		// Only the expiry watcher asks; it tries again later.
		p = problem.New(http.StatusConflict, problem.CodeStepPrecondition, err.Error())
	case errors.Is(err, app.ErrStepPrecondition):
		// Only the workflow calls steps; the detail tells its operator which step is missing.
		p = problem.New(http.StatusConflict, problem.CodeStepPrecondition, err.Error())
	case errors.Is(err, domain.ErrPaymentTerminal):
		p = problem.New(http.StatusConflict, problem.CodePaymentTerminal, "the payment is already completed or failed")
	case errors.Is(err, domain.ErrInvalidAccount):
		p = problem.New(http.StatusBadRequest, problem.CodeValidation, err.Error())
	case errors.Is(err, domain.ErrWrongAccount), errors.Is(err, domain.ErrInvalidAmount):
		// A payment from an account to itself, a zero amount, or a step naming an account that is not
		// the payment's: the request is wrong, and the edge checks the first two already.
		p = problem.New(http.StatusBadRequest, problem.CodeValidation, err.Error())
	case errors.Is(err, domain.ErrPaymentExists):
		// A payment's id is derived from its client and Idempotency-Key, and a retry of the same request
		// replays; a payment already initiated under the id by another request is a reused key.
		p = problem.New(http.StatusUnprocessableEntity, problem.CodeIdempotencyKeyReused,
			"this Idempotency-Key was already used with a different request")
	case errors.Is(err, domain.ErrCorruptStream):
		// The stored history contradicts itself: nothing is decided on it, an operator must look. A 500,
		// deliberately: a retry cannot help, and the workflow parks the step rather than retrying it.
		h.log.ErrorContext(r.Context(), "stream corrupt: command refused", "err", err)
		p = problem.New(http.StatusInternalServerError, problem.CodeInternal,
			"the stored history of this account or payment is inconsistent; the command was not executed")
	case errors.Is(err, domain.ErrBalanceLimit):
		p = problem.New(http.StatusUnprocessableEntity, problem.CodeValidation,
			"the amount would take the balance beyond what an account can hold")
	case errors.Is(err, app.ErrUnavailable):
		h.log.WarnContext(r.Context(), "command not executed: dependency unavailable", "err", err)
		p = problem.New(http.StatusServiceUnavailable, problem.CodeDependencyUnavailable,
			"the event store is unavailable; retrying with the same Idempotency-Key is safe")
		p.RetryAfter = 1
	default:
		h.log.ErrorContext(r.Context(), "command failed", "err", err)
		p = problem.New(http.StatusInternalServerError, problem.CodeInternal, "internal error")
	}
	return p
}
