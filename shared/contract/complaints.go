package contract

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"upi/shared/contract/events"
	"upi/shared/contract/problem"
)

// ComplaintRequest is the body of POST /v1/payments/{payment_id}/complaints.
type ComplaintRequest struct {
	ReasonCode  string `json:"reason_code"`
	Description string `json:"description,omitempty"`
}

// RaiseComplaint is a validated ComplaintRequest.
type RaiseComplaint struct {
	PaymentID   uuid.UUID
	Reason      string
	Description string
}

// Validate checks the request for the payment named in the path.
func (r ComplaintRequest) Validate(paymentID string) (RaiseComplaint, *problem.Problem) {
	var errs []problem.FieldError
	pid, err := uuid.Parse(paymentID)
	if err != nil {
		errs = append(errs, problem.FieldError{Field: "payment_id", Message: "payment_id must be a uuid"})
	}
	if !events.ValidReason(r.ReasonCode) {
		errs = append(errs, problem.FieldError{Field: "reason_code",
			Message: "reason_code must be one of U005, U008, U009, U010, U021, U022, U023"})
	}
	if n := utf8.RuneCountInString(r.Description); n > 200 || hasControl(r.Description) {
		errs = append(errs, problem.FieldError{Field: "description", Message: "description must be up to 200 printable characters"})
	}
	if errs != nil {
		return RaiseComplaint{}, problem.Validation(errs...)
	}
	return RaiseComplaint{PaymentID: pid, Reason: r.ReasonCode, Description: r.Description}, nil
}

// Complaint is a complaint as clients and operators see it.
type Complaint struct {
	ComplaintID    string  `json:"complaint_id"`
	PaymentID      string  `json:"payment_id"`
	UPITxnID       string  `json:"upi_txn_id"`
	PayerVPA       string  `json:"payer_vpa"`
	PayeeVPA       string  `json:"payee_vpa"`
	AmountPaise    int64   `json:"amount_paise"`
	ReasonCode     string  `json:"reason_code"`
	Description    string  `json:"description,omitempty"`
	Status         string  `json:"status"`
	ResolutionCode *string `json:"resolution_code"`
	ResolvedBy     *string `json:"resolved_by"`
	// DueAt is when the merchant must have answered a dispute (COMPLAINT_TAT).
	DueAt *string `json:"due_at"`
	// Note is the merchant's: an accept's note, a rejection's reason.
	Note string `json:"note,omitempty"`
	// A settled dispute (accepted, or charged back): the refund of its latest attempt, and its status
	// (PENDING, COMPLETED, AWAITING_FUNDS: it failed for want of the merchant's funds and is tried again
	// when the merchant's balance covers it, FAILED: it failed otherwise and is tried again likewise).
	Chargeback   bool    `json:"chargeback"`
	RefundID     *string `json:"refund_id"`
	RefundStatus *string `json:"refund_status"`
	CreatedAt    string  `json:"created_at"`
	UpdatedAt    string  `json:"updated_at"`
	Position     string  `json:"position"`
}

// ComplaintList is the operators' complaint queue (GET /v1/ops/complaints).
type ComplaintList struct {
	Items []Complaint `json:"items"`
}

// PathComplaintResolutions is the command service's internal route on which event-consumers' complaints
// process resolves, from the log, complaints whose payment has ended (docs/internal-api.md).
const PathComplaintResolutions = "/internal/complaint-resolutions"

// ComplaintRef names a complaint and its payment (whose complaint stream holds it).
type ComplaintRef struct {
	ComplaintID uuid.UUID `json:"complaint_id"`
	PaymentID   uuid.UUID `json:"payment_id"`
}

// ComplaintResolutionsRequest is the body of POST PathComplaintResolutions.
type ComplaintResolutionsRequest struct {
	Complaints []ComplaintRef `json:"complaints"`
}

// ComplaintResolutionResult is the outcome of one resolution: the event that closed the complaint, or
// the problem that failed it (STEP_PRECONDITION while its payment is in flight).
type ComplaintResolutionResult struct {
	ComplaintID uuid.UUID        `json:"complaint_id"`
	EventType   string           `json:"event_type,omitempty"`
	Problem     *problem.Problem `json:"problem,omitempty"`
}

// ComplaintResolutionsResponse answers POST PathComplaintResolutions with 200, one result per complaint.
type ComplaintResolutionsResponse struct {
	Results []ComplaintResolutionResult `json:"results"`
}

// MaxComplaintResolutions bounds one call of PathComplaintResolutions.
const MaxComplaintResolutions = 500

// CheckComplaintResolutions checks the size of a resolutions request.
func (r ComplaintResolutionsRequest) Check() *problem.Problem {
	if len(r.Complaints) == 0 || len(r.Complaints) > MaxComplaintResolutions {
		return problem.New(400, problem.CodeValidation, fmt.Sprintf("complaints must hold 1 to %d complaints", MaxComplaintResolutions))
	}
	return nil
}

// Refund statuses of a settled dispute (Complaint.RefundStatus).
const (
	ComplaintRefundPending       = "PENDING"
	ComplaintRefundCompleted     = "COMPLETED"
	ComplaintRefundAwaitingFunds = "AWAITING_FUNDS"
	ComplaintRefundFailed        = "FAILED"
)

// AcceptComplaintRequest is the body of POST /v1/complaints/{complaint_id}/accept (optional).
type AcceptComplaintRequest struct {
	Note string `json:"note,omitempty"`
}

// RejectComplaintRequest is the body of POST /v1/complaints/{complaint_id}/reject.
type RejectComplaintRequest struct {
	Reason string `json:"reason"`
}

// AnswerComplaint is a validated accept or reject of a dispute by its merchant.
type AnswerComplaint struct {
	ComplaintID uuid.UUID
	Reject      bool
	Note        string
}

// complaintID is the complaint named in the path, or a 404.
func complaintID(id string) (uuid.UUID, *problem.Problem) {
	cid, err := uuid.Parse(id)
	if err != nil {
		return uuid.Nil, problem.New(404, problem.CodeComplaintNotFound, "no such complaint")
	}
	return cid, nil
}

// Validate checks an accept of complaint id.
func (r AcceptComplaintRequest) Validate(id string) (AnswerComplaint, *problem.Problem) {
	cid, p := complaintID(id)
	if p != nil {
		return AnswerComplaint{}, p
	}
	if n := utf8.RuneCountInString(r.Note); n > 200 || hasControl(r.Note) {
		return AnswerComplaint{}, problem.Validation(problem.FieldError{Field: "note", Message: "note must be up to 200 printable characters"})
	}
	return AnswerComplaint{ComplaintID: cid, Note: r.Note}, nil
}

// Validate checks a rejection of complaint id: its reason is required.
func (r RejectComplaintRequest) Validate(id string) (AnswerComplaint, *problem.Problem) {
	cid, p := complaintID(id)
	if p != nil {
		return AnswerComplaint{}, p
	}
	if n := utf8.RuneCountInString(r.Reason); n == 0 || n > 200 || hasControl(r.Reason) || strings.TrimSpace(r.Reason) == "" {
		return AnswerComplaint{}, problem.Validation(problem.FieldError{Field: "reason", Message: "reason must be 1 to 200 printable characters"})
	}
	return AnswerComplaint{ComplaintID: cid, Reject: true, Note: r.Reason}, nil
}

// PathComplaintChargebacks is the command service's internal route on which event-consumers' complaints
// process charges back the disputes left unanswered past their due_at (body ComplaintResolutionsRequest,
// answer ComplaintResolutionsResponse).
const PathComplaintChargebacks = "/internal/complaint-chargebacks"

// PathComplaintRefundRetries is the internal route on which it tries again the refunds of settled disputes
// whose latest attempt failed, once the merchant's balance covers them.
const PathComplaintRefundRetries = "/internal/complaint-refund-retries"

// ComplaintRetry names a settled dispute and the refund of its latest attempt, which failed.
type ComplaintRetry struct {
	ComplaintID uuid.UUID `json:"complaint_id"`
	PaymentID   uuid.UUID `json:"payment_id"`
	RefundID    uuid.UUID `json:"refund_id"`
	Attempt     int       `json:"attempt"`
}

// ComplaintRetriesRequest is the body of POST PathComplaintRefundRetries.
type ComplaintRetriesRequest struct {
	Retries []ComplaintRetry `json:"retries"`
}

// Check checks the size of a retries request.
func (r ComplaintRetriesRequest) Check() *problem.Problem {
	if len(r.Retries) == 0 || len(r.Retries) > MaxComplaintResolutions {
		return problem.New(400, problem.CodeValidation, fmt.Sprintf("retries must hold 1 to %d refunds", MaxComplaintResolutions))
	}
	for _, x := range r.Retries {
		if x.Attempt < 1 {
			return problem.New(400, problem.CodeValidation, "attempt must be at least 1")
		}
	}
	return nil
}
