// Package problem writes and reads RFC 9457 problem+json bodies, and holds the stable error codes of the
// public contract (docs/openapi.yaml). Every service answers errors through it, so one code means one
// thing everywhere.
package problem

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// ContentType is the media type of every error response.
const ContentType = "application/problem+json"

// Stable error codes. Clients rely on them; never change the meaning of one.
const (
	CodeValidation               = "VALIDATION"
	CodeMalformedJSON            = "MALFORMED_JSON"
	CodeBodyTooLarge             = "BODY_TOO_LARGE"
	CodeUnsupportedMediaType     = "UNSUPPORTED_MEDIA_TYPE"
	CodeUnauthenticated          = "UNAUTHENTICATED"
	CodeRateLimited              = "RATE_LIMITED"
	CodeIdempotencyKeyRequired   = "IDEMPOTENCY_KEY_REQUIRED"
	CodeIdempotencyKeyReused     = "IDEMPOTENCY_KEY_REUSED"
	CodeIdempotencyKeyInUse      = "IDEMPOTENCY_KEY_IN_USE"
	CodeAccountExists            = "ACCOUNT_EXISTS"
	CodeAccountNotFound          = "ACCOUNT_NOT_FOUND"
	CodePayeeNotFound            = "PAYEE_NOT_FOUND"
	CodePaymentNotFound          = "PAYMENT_NOT_FOUND"
	CodePaymentNotCompleted      = "PAYMENT_NOT_COMPLETED"
	CodeRefundNotAllowed         = "REFUND_NOT_ALLOWED"
	CodeRefundExceedsPayment     = "REFUND_EXCEEDS_PAYMENT"
	CodeRefundWindowClosed       = "REFUND_WINDOW_CLOSED"
	CodeRefundNotFound           = "REFUND_NOT_FOUND"
	CodeVPANotFound              = "VPA_NOT_FOUND"
	CodePayerNotFound            = "PAYER_NOT_FOUND"
	CodeCollectNotAllowed        = "COLLECT_NOT_ALLOWED"
	CodeCollectNotFound          = "COLLECT_NOT_FOUND"
	CodeCollectExpired           = "COLLECT_EXPIRED"
	CodeCollectDeclined          = "COLLECT_DECLINED"
	CodeCollectApproved          = "COLLECT_APPROVED"
	CodeInsufficientFunds        = "INSUFFICIENT_FUNDS"
	CodeDepositReferenceConflict = "DEPOSIT_REFERENCE_CONFLICT"
	CodeDepositLimitExceeded     = "DEPOSIT_LIMIT_EXCEEDED"
	CodeWithdrawalNotFound       = "WITHDRAWAL_NOT_FOUND"
	CodeForbidden                = "FORBIDDEN"
	CodePaymentTerminal          = "PAYMENT_TERMINAL"
	CodeStepPrecondition         = "STEP_PRECONDITION"
	CodeNotFound                 = "NOT_FOUND"
	CodeMethodNotAllowed         = "METHOD_NOT_ALLOWED"
	CodeDependencyUnavailable    = "DEPENDENCY_UNAVAILABLE"
	CodeOverloaded               = "OVERLOADED"
	CodeUpstreamTimeout          = "UPSTREAM_TIMEOUT"
	CodeInternal                 = "INTERNAL"

	// QR codes and payments by intent.
	CodeQRNotFound        = "QR_NOT_FOUND"
	CodeQRAlreadyPaid     = "QR_ALREADY_PAID"
	CodeQRExpired         = "QR_EXPIRED"
	CodeQRAmountMismatch  = "QR_AMOUNT_MISMATCH"
	CodeQRReferenceExists = "QR_REFERENCE_EXISTS"
	CodeQRNotAllowed      = "QR_NOT_ALLOWED"

	// Mandates.
	CodeMandateNotFound      = "MANDATE_NOT_FOUND"
	CodeMandateNotAllowed    = "MANDATE_NOT_ALLOWED"
	CodeMandateExpired       = "MANDATE_EXPIRED"
	CodeMandateInvalidState  = "MANDATE_INVALID_STATE"
	CodeMandateIrrevocable   = "MANDATE_IRREVOCABLE"
	CodeMandatePaused        = "MANDATE_PAUSED"
	CodeMandateRevoked       = "MANDATE_REVOKED"
	CodeMandateNotActive     = "MANDATE_NOT_ACTIVE"
	CodeDebitAboveMax        = "DEBIT_AMOUNT_ABOVE_MAX"
	CodeDebitNotExact        = "DEBIT_AMOUNT_NOT_EXACT"
	CodeDebitOutsideValidity = "DEBIT_OUTSIDE_VALIDITY"
	CodeDebitNoticeTooShort  = "DEBIT_NOTICE_TOO_SHORT"
	CodeDebitFrequency       = "DEBIT_FREQUENCY_EXCEEDED"
	CodeDebitNotFound        = "DEBIT_NOT_FOUND"
	CodeDebitNoApproval      = "DEBIT_APPROVAL_NOT_NEEDED"
	CodeDebitApprovalClosed  = "DEBIT_APPROVAL_CLOSED"
	// Webhooks (docs/webhooks.md).
	CodeWebhookEndpointNotFound = "WEBHOOK_ENDPOINT_NOT_FOUND"
)

// Codes of the back office: settlement cycles and reconciliation files (operators), complaints.
const (
	CodeCycleNotFound = "CYCLE_NOT_FOUND" // no settlement cycle has this id
	CodeCycleOpen     = "CYCLE_OPEN"      // a reconciliation file is made once its cycle has closed

	CodeComplaintExists       = "COMPLAINT_EXISTS"        // the payment has an open complaint
	CodeComplaintNotFound     = "COMPLAINT_NOT_FOUND"     // no such complaint, or not the caller's
	CodeComplaintWindowClosed = "COMPLAINT_WINDOW_CLOSED" // the payment is older than COMPLAINT_WINDOW
	CodeComplaintClosed       = "COMPLAINT_CLOSED"        // the complaint was answered already
	CodeComplaintTATPassed    = "COMPLAINT_TAT_PASSED"    // the merchant's time to answer (COMPLAINT_TAT) has passed
	CodeComplaintNotDispute   = "COMPLAINT_NOT_DISPUTE"   // the complaint is answered from the log, not by the merchant
)

// FieldError names one invalid field of a request.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Problem is an RFC 9457 problem details object with the contract's `code` and `errors` extensions.
type Problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail,omitempty"`
	Code   string       `json:"code"`
	Errors []FieldError `json:"errors,omitempty"`
	// RetryAfter, when set, is sent as the Retry-After header (seconds).
	RetryAfter int `json:"-"`
}

// New builds a problem with the standard title of status.
func New(status int, code, detail string) *Problem {
	return &Problem{
		Type:   "https://docs.upi.example/problems/" + code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Code:   code,
	}
}

// Validation is a 400 VALIDATION problem listing the invalid fields.
func Validation(errs ...FieldError) *Problem {
	p := New(http.StatusBadRequest, CodeValidation, "the request has invalid fields")
	p.Errors = errs
	return p
}

// Unavailable is a 503 DEPENDENCY_UNAVAILABLE problem: something the service needs (a database, another
// service) did not answer. Retrying is safe, and a second later likely to succeed (Retry-After: 1); detail
// says why the retry is safe.
func Unavailable(detail string) *Problem {
	p := New(http.StatusServiceUnavailable, CodeDependencyUnavailable, detail)
	p.RetryAfter = 1
	return p
}

// OverloadedRetryAfter is the Retry-After (seconds) of an OVERLOADED answer.
const OverloadedRetryAfter = 1

// Overloaded is a 503 OVERLOADED problem: the command service shed the request without running it, because
// more were waiting than it completes within a caller's patience. Retrying with the same Idempotency-Key
// is always safe (nothing was written), after Retry-After.
func Overloaded(detail string) *Problem {
	p := New(http.StatusServiceUnavailable, CodeOverloaded, detail)
	p.RetryAfter = OverloadedRetryAfter
	return p
}

// Internal is the 500 INTERNAL problem of an error nobody expected. Its detail says nothing: the error
// itself belongs in the service's log, not in the answer.
func Internal() *Problem {
	return New(http.StatusInternalServerError, CodeInternal, "internal error")
}

func (p *Problem) Error() string { return p.Code + ": " + p.Detail }

// Write sends p as the response.
func Write(w http.ResponseWriter, p *Problem) {
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	if p.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
