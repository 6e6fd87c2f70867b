package httpapi

import (
	"context"
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
	if errors.As(err, &p) {
		return p
	}
	for _, known := range knownErrors {
		if errors.Is(err, known.err) {
			detail := known.detail
			if detail == "" {
				detail = err.Error()
			}
			return problem.New(known.status, known.code, detail)
		}
	}
	switch {
	case errors.Is(err, domain.ErrCorruptStream):
		// The stored history contradicts itself: nothing is decided on it, an operator must look. A 500,
		// deliberately: a retry cannot help, and the workflow parks the step rather than retrying it.
		h.log.ErrorContext(r.Context(), "stream corrupt: command refused", "err", err)
		return problem.New(http.StatusInternalServerError, problem.CodeInternal,
			"the stored history of this account or payment is inconsistent; the command was not executed")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The caller hung up before the command's group began, and the command was dropped: nobody reads
		// this answer; a retry with the same key runs it.
		h.log.InfoContext(r.Context(), "command dropped: its caller has gone", "err", err)
		return problem.Unavailable("the request was cancelled before the command ran")
	case errors.Is(err, app.ErrOverloaded):
		return problem.Overloaded("too many commands are waiting; nothing was executed, retrying with the same Idempotency-Key after Retry-After is safe")
	case errors.Is(err, app.ErrUnavailable):
		h.log.WarnContext(r.Context(), "command not executed: dependency unavailable", "err", err)
		return problem.Unavailable("the event store is unavailable; retrying with the same Idempotency-Key is safe")
	}
	h.log.ErrorContext(r.Context(), "command failed", "err", err)
	return problem.Internal()
}

// knownError is how a domain or application failure is answered: its status, its stable code, and its
// detail ("" for the error's own text).
type knownError struct {
	err    error
	status int
	code   string
	detail string
}

// reusedKey is the detail of a request whose Idempotency-Key was used for another.
const reusedKey = "this Idempotency-Key was already used with a different request"

// knownErrors are the failures a client or the workflow is told about, checked in order: the first that
// the error wraps answers it.
var knownErrors = []knownError{
	{app.ErrIdempotencyKeyReused, http.StatusUnprocessableEntity, problem.CodeIdempotencyKeyReused, reusedKey},
	{domain.ErrAccountExists, http.StatusConflict, problem.CodeAccountExists, "an account with this vpa already exists"},
	{domain.ErrAccountNotFound, http.StatusNotFound, problem.CodeAccountNotFound, "no such account"},
	{app.ErrPayeeNotFound, http.StatusUnprocessableEntity, problem.CodePayeeNotFound, "the payee vpa does not exist"},
	{domain.ErrPaymentNotFound, http.StatusNotFound, problem.CodePaymentNotFound, "no such payment"},
	{domain.ErrPaymentNotCompleted, http.StatusUnprocessableEntity, problem.CodePaymentNotCompleted,
		"only a completed payment can be refunded"},
	{domain.ErrRefundNotAllowed, http.StatusUnprocessableEntity, problem.CodeRefundNotAllowed,
		"only a payment to an ENTITY can be refunded"},
	{domain.ErrRefundExceeds, http.StatusUnprocessableEntity, problem.CodeRefundExceedsPayment,
		"completed and pending refunds would pass the payment's amount"},
	{domain.ErrRefundWindowClosed, http.StatusUnprocessableEntity, problem.CodeRefundWindowClosed,
		"the payment is older than the refund window"},
	{domain.ErrRefundNotFound, http.StatusNotFound, problem.CodeRefundNotFound, "no such refund"},
	{domain.ErrRefundTerminal, http.StatusConflict, problem.CodePaymentTerminal, "the refund is already completed or failed"},
	{app.ErrPayerNotFound, http.StatusUnprocessableEntity, problem.CodePayerNotFound, "the payer vpa does not exist"},
	{domain.ErrCollectNotAllowed, http.StatusUnprocessableEntity, problem.CodeCollectNotAllowed,
		"only an ENTITY account may send a collect request"},
	{domain.ErrCollectNotFound, http.StatusNotFound, problem.CodeCollectNotFound, "no such collect request"},
	{domain.ErrCollectExpired, http.StatusUnprocessableEntity, problem.CodeCollectExpired, "the collect request has expired"},
	{domain.ErrCollectDeclined, http.StatusUnprocessableEntity, problem.CodeCollectDeclined, "the collect request was declined"},
	{domain.ErrCollectApproved, http.StatusUnprocessableEntity, problem.CodeCollectApproved, "the collect request was approved"},
	// Only the expiry watcher asks; it tries again later.
	{domain.ErrCollectNotDue, http.StatusConflict, problem.CodeStepPrecondition, ""},
	// Only the workflow calls steps; the detail tells its operator which step is missing.
	{app.ErrStepPrecondition, http.StatusConflict, problem.CodeStepPrecondition, ""},
	// Complaints (complaints.go).
	{domain.ErrComplaintExists, http.StatusConflict, problem.CodeComplaintExists, "the payment has an open complaint"},
	{domain.ErrComplaintNotFound, http.StatusNotFound, problem.CodeComplaintNotFound, "no such complaint"},
	{domain.ErrComplaintWindowClosed, http.StatusUnprocessableEntity, problem.CodeComplaintWindowClosed,
		"the payment is older than the complaint window"},
	{domain.ErrComplaintClosed, http.StatusConflict, problem.CodeComplaintClosed, "the complaint was answered already"},
	{domain.ErrComplaintTATPassed, http.StatusConflict, problem.CodeComplaintTATPassed,
		"the merchant's time to answer the complaint has passed"},
	{domain.ErrComplaintNotDispute, http.StatusConflict, problem.CodeComplaintNotDispute,
		"the complaint is answered from the log, not by the merchant"},
	// Only the complaints process asks; it tries again later.
	{domain.ErrComplaintNotDue, http.StatusConflict, problem.CodeStepPrecondition, ""},
	{domain.ErrPaymentTerminal, http.StatusConflict, problem.CodePaymentTerminal, "the payment is already completed or failed"},
	{domain.ErrInvalidAccount, http.StatusBadRequest, problem.CodeValidation, ""},
	// A payment from an account to itself, a zero amount, or a step naming an account that is not the
	// payment's: the request is wrong, and the edge checks the first two already.
	{domain.ErrWrongAccount, http.StatusBadRequest, problem.CodeValidation, ""},
	{domain.ErrInvalidAmount, http.StatusBadRequest, problem.CodeValidation, ""},
	// A payment's id is derived from its client and Idempotency-Key, and a retry of the same request
	// replays; a payment already initiated under the id by another request is a reused key.
	{domain.ErrPaymentExists, http.StatusUnprocessableEntity, problem.CodeIdempotencyKeyReused, reusedKey},
	{app.ErrDepositReferenceConflict, http.StatusConflict, problem.CodeDepositReferenceConflict,
		"this account already has a deposit with this reference, of another amount"},
	{domain.ErrDepositLimitExceeded, http.StatusUnprocessableEntity, problem.CodeDepositLimitExceeded,
		"the account's deposits of the last 24 hours would pass its daily deposit cap"},
	// An hour's RRNs and the borrowing window are used up: the command was not executed; later it will be.
	{app.ErrRRNSpaceExhausted, http.StatusServiceUnavailable, problem.CodeDependencyUnavailable,
		"no RRN can be given now; retrying with the same Idempotency-Key later is safe"},
	// QR codes and payments by intent.
	{app.ErrIntentPayeeNotFound, http.StatusNotFound, problem.CodeVPANotFound, "the intent's pa names no account"},
	{domain.ErrQRNotFound, http.StatusNotFound, problem.CodeQRNotFound, "the payee has no QR code with the intent's tr"},
	{domain.ErrQRPaid, http.StatusConflict, problem.CodeQRAlreadyPaid, "the QR code was already paid"},
	{domain.ErrQRExpired, http.StatusUnprocessableEntity, problem.CodeQRExpired, "the QR code has expired"},
	{domain.ErrQRAmountMismatch, http.StatusUnprocessableEntity, problem.CodeQRAmountMismatch, ""},
	{domain.ErrQRRefTaken, http.StatusConflict, problem.CodeQRReferenceExists,
		"the payee already has a QR code with this merchant_reference"},
	{domain.ErrQRNotAllowed, http.StatusUnprocessableEntity, problem.CodeQRNotAllowed, "only an ENTITY account has QR codes"},
	// Mandates: each refusal its own code.
	{domain.ErrMandateNotFound, http.StatusNotFound, problem.CodeMandateNotFound, "no such mandate"},
	{domain.ErrDebitNotFound, http.StatusNotFound, problem.CodeDebitNotFound, "no such debit of this mandate"},
	{domain.ErrMandateNotAllowed, http.StatusUnprocessableEntity, problem.CodeMandateNotAllowed, "only an ENTITY account may request a mandate"},
	{domain.ErrMandateExpired, http.StatusUnprocessableEntity, problem.CodeMandateExpired, "the mandate request has expired"},
	{domain.ErrMandateState, http.StatusUnprocessableEntity, problem.CodeMandateInvalidState, ""},
	{domain.ErrMandateIrrevocable, http.StatusUnprocessableEntity, problem.CodeMandateIrrevocable, "the mandate is irrevocable"},
	{domain.ErrMandatePaused, http.StatusUnprocessableEntity, problem.CodeMandatePaused, "the mandate is paused"},
	{domain.ErrMandateRevoked, http.StatusUnprocessableEntity, problem.CodeMandateRevoked, "the mandate is revoked"},
	{domain.ErrMandateNotActive, http.StatusUnprocessableEntity, problem.CodeMandateNotActive, ""},
	{domain.ErrDebitAboveMax, http.StatusUnprocessableEntity, problem.CodeDebitAboveMax, "the amount is above the mandate's maximum"},
	{domain.ErrDebitNotExact, http.StatusUnprocessableEntity, problem.CodeDebitNotExact, "the amount is not the mandate's exact amount"},
	{domain.ErrDebitOutsideValidity, http.StatusUnprocessableEntity, problem.CodeDebitOutsideValidity, "debit_at is outside the mandate's validity"},
	{domain.ErrDebitNoticeTooShort, http.StatusUnprocessableEntity, problem.CodeDebitNoticeTooShort, ""},
	{domain.ErrDebitFrequency, http.StatusUnprocessableEntity, problem.CodeDebitFrequency,
		"the mandate's frequency allows no more debits in the period of debit_at"},
	{domain.ErrDebitNoApproval, http.StatusUnprocessableEntity, problem.CodeDebitNoApproval, "the debit does not need the payer's approval"},
	{domain.ErrDebitApprovalClosed, http.StatusUnprocessableEntity, problem.CodeDebitApprovalClosed, "the debit can no longer be approved"},
	{domain.ErrBalanceLimit, http.StatusUnprocessableEntity, problem.CodeValidation,
		"the amount would take the balance beyond what an account can hold"},
	// Erasure (docs/architecture.md, "Personal data and erasure"). A credit refused as closed is a 422: the
	// workflow reverses the payment's debit, as for any payee that refuses a credit.
	{domain.ErrAccountClosed, http.StatusUnprocessableEntity, problem.CodeAccountClosed,
		"the account was erased and is closed"},
	{app.ErrSubjectErased, http.StatusUnprocessableEntity, problem.CodeAccountClosed,
		"an account of the payment was erased and is closed"},
	{domain.ErrAccountNotEmpty, http.StatusUnprocessableEntity, problem.CodeAccountNotEmpty,
		"only an account with a zero balance can be erased"},
	{domain.ErrAccountInFlight, http.StatusConflict, problem.CodeAccountInFlight,
		"a payment or refund that debited the account has not ended; try again when it has"},
}
