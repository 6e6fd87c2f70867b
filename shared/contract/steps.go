package contract

import (
	"encoding/json"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/google/uuid"

	"upi/shared/contract/events"
	"upi/shared/contract/problem"
)

// PathSteps is the command service's route for the payment workflow: one POST carries the steps of a log
// batch, and the service applies them together (docs/internal-api.md).
const PathSteps = "/internal/steps"

// StepName names a step of the payment workflow.
type StepName string

// The workflow's steps. Each appends at most one event, whose id is ids.StepEvent(payment, step's slot).
const (
	// StepDebit: AccountDebited or DebitRejected on the payer. Needs the payment initiated, not ended.
	StepDebit StepName = "debit"
	// StepRejectDebit: DebitRejected on the payer, burning the debit slot so no later debit can happen.
	StepRejectDebit StepName = "reject-debit"
	// StepCredit: AccountCredited on the payee. Needs the debit slot to be AccountDebited.
	StepCredit StepName = "credit"
	// StepReverse: DebitReversed on the payer. Needs the debit slot to be AccountDebited.
	StepReverse StepName = "reverse"
	// StepComplete: PaymentCompleted. Needs the settle slot to be AccountCredited.
	StepComplete StepName = "complete"
	// StepFail: PaymentFailed. Needs the debit slot DebitRejected, or the settle slot DebitReversed.
	StepFail StepName = "fail"
)

// The refund saga's steps, the payment's in reverse. Each names its refund (Step.RefundID) and the
// payment it refunds; its event id is ids.StepEvent(refund, step's slot).
const (
	// StepRefundOpen: RefundInitiated on the refund's stream. Needs the RefundReserved (event id: refund id).
	StepRefundOpen StepName = "refund-open"
	// StepRefundDebit: RefundDebited or RefundDebitRejected on the payment's payee. Needs the refund opened.
	StepRefundDebit StepName = "refund-debit"
	// StepRefundRejectDebit: RefundDebitRejected on the payee, burning the refund's debit slot.
	StepRefundRejectDebit StepName = "refund-reject-debit"
	// StepRefundCredit: RefundCredited on the payment's payer. Needs the debit slot to be RefundDebited.
	StepRefundCredit StepName = "refund-credit"
	// StepRefundReverse: RefundDebitReversed on the payee. Needs the debit slot to be RefundDebited.
	StepRefundReverse StepName = "refund-reverse"
	// StepRefundComplete: RefundCompleted. Needs the settle slot to be RefundCredited.
	StepRefundComplete StepName = "refund-complete"
	// StepRefundFail: RefundFailed. Needs the debit slot RefundDebitRejected, or the settle slot
	// RefundDebitReversed.
	StepRefundFail StepName = "refund-fail"
	// StepRefundRecord: RefundSettled on the payment's stream. Needs the close slot filled.
	StepRefundRecord StepName = "refund-record"
)

// NeedsCode reports whether the step must carry a failure code.
func (n StepName) NeedsCode() bool {
	switch n {
	case StepRejectDebit, StepReverse, StepFail, StepRefundRejectDebit, StepRefundReverse, StepRefundFail:
		return true
	}
	return false
}

// Refund reports whether the step is one of a refund's.
func (n StepName) Refund() bool {
	switch n {
	case StepRefundOpen, StepRefundDebit, StepRefundRejectDebit, StepRefundCredit, StepRefundReverse,
		StepRefundComplete, StepRefundFail, StepRefundRecord:
		return true
	}
	return false
}

func (n StepName) known() bool {
	switch n {
	case StepDebit, StepRejectDebit, StepCredit, StepReverse, StepComplete, StepFail:
		return true
	}
	return n.Refund()
}

// Step is one workflow step of a payment.
type Step struct {
	PaymentID uuid.UUID `json:"payment_id"`
	// RefundID names the refund of a refund step (and only there); PaymentID is then the refunded payment.
	RefundID uuid.UUID `json:"refund_id,omitzero"`
	Step     StepName  `json:"step"`
	// Account is the account the step moves money on (the payer for debit, reject-debit and reverse; the
	// payee for credit), as the event that called for the step names it; the service checks it against
	// the payment. Without it the service looks the payment up first, at the cost of a round trip.
	Account string `json:"account,omitempty"`
	// Code is the failure code of reject-debit, reverse and fail; Reason the failure's words (fail).
	Code   string `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	// CausationID is the event that called for the step, recorded in the new event's metadata.
	CausationID string `json:"causation_id,omitempty"`
	// TraceParent is the W3C traceparent of the workflow's span for this step (optional): the step's event
	// records it in its metadata rather than the call's, since one call may serve many payments' traces.
	TraceParent string `json:"traceparent,omitempty"`
}

// StepsRequest is the body of POST PathSteps.
type StepsRequest struct {
	Steps []Step `json:"steps"`
}

// StepResult is the outcome of one step, in the order of the request: the event that stands in the log
// for the step (just appended, or there already: Replayed, possibly the other branch's when two steps
// share a slot), with its payload, or the Problem that failed this step alone. The payload lets the
// workflow take the step that event calls for at once, without waiting for it to come round in the log.
type StepResult struct {
	PaymentID uuid.UUID        `json:"payment_id"`
	RefundID  uuid.UUID        `json:"refund_id,omitzero"`
	Step      StepName         `json:"step"`
	EventType string           `json:"event_type,omitempty"`
	EventID   string           `json:"event_id,omitempty"`
	Position  string           `json:"position,omitempty"`
	Payload   json.RawMessage  `json:"payload,omitempty"`
	Replayed  bool             `json:"replayed,omitempty"`
	Problem   *problem.Problem `json:"problem,omitempty"`
}

// StepsResponse answers POST PathSteps with 200 whenever the steps were tried; a failure of the whole
// call (the database unavailable) is a problem+json of its own.
type StepsResponse struct {
	Results []StepResult `json:"results"`
}

// MaxSteps bounds one request: a log batch's steps.
const MaxSteps = 1000

// MaxStepsBodyBytes bounds the body of one request of MaxSteps steps.
const MaxStepsBodyBytes = 8 << 20

const maxStepReason = 500

// Check validates one step on its own; a step that fails it is answered with the problem and not tried.
func (s Step) Check() *problem.Problem {
	var errs []problem.FieldError
	if s.PaymentID == uuid.Nil {
		errs = append(errs, problem.FieldError{Field: "payment_id", Message: "payment_id is required"})
	}
	if !s.Step.known() {
		errs = append(errs, problem.FieldError{Field: "step", Message: fmt.Sprintf("unknown step %q", s.Step)})
	}
	if s.Step.Refund() && s.RefundID == uuid.Nil {
		errs = append(errs, problem.FieldError{Field: "refund_id", Message: "a refund step needs refund_id"})
	} else if !s.Step.Refund() && s.RefundID != uuid.Nil {
		errs = append(errs, problem.FieldError{Field: "refund_id", Message: "only refund steps take a refund_id"})
	}
	if s.Step.NeedsCode() && !failureCode(s.Code) {
		errs = append(errs, problem.FieldError{Field: "code", Message: "code must be a documented failure code"})
	} else if !s.Step.NeedsCode() && s.Code != "" {
		errs = append(errs, problem.FieldError{Field: "code", Message: "only reject-debit, reverse and fail (and their refund steps) take a code"})
	}
	if utf8.RuneCountInString(s.Reason) > maxStepReason || !utf8.ValidString(s.Reason) {
		errs = append(errs, problem.FieldError{Field: "reason", Message: "reason must be at most 500 characters"})
	}
	if s.CausationID != "" {
		if _, err := uuid.Parse(s.CausationID); err != nil {
			errs = append(errs, problem.FieldError{Field: "causation_id", Message: "causation_id must be an event id"})
		}
	}
	if len(s.Account) > 255 || !utf8.ValidString(s.Account) {
		errs = append(errs, problem.FieldError{Field: "account", Message: "account must be a vpa"})
	}
	if errs != nil {
		return problem.Validation(errs...)
	}
	return nil
}

// Key is the id the step's saga is known by: its refund's for a refund step, else its payment's.
func (s Step) Key() uuid.UUID {
	if s.Step.Refund() {
		return s.RefundID
	}
	return s.PaymentID
}

// Check validates the request as a whole.
func (r StepsRequest) Check() *problem.Problem {
	if len(r.Steps) == 0 || len(r.Steps) > MaxSteps {
		return problem.New(http.StatusBadRequest, problem.CodeValidation,
			fmt.Sprintf("steps must hold 1 to %d steps", MaxSteps))
	}
	return nil
}

// failureCode reports whether code is one a payment may fail with; it reaches clients as failure_code, so
// only the documented ones are accepted.
func failureCode(code string) bool {
	switch code {
	case events.CodeInsufficientFunds, events.CodePayeeUnavailable, events.CodeProcessingError,
		events.CodeDailyLimitExceeded, events.CodeCountLimitExceeded, events.CodeNewAccountLimitExceeded,
		events.CodeAccountClosed:
		return true
	}
	return false
}
