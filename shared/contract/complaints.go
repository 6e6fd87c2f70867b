package contract

import (
	"fmt"
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
	DueAt     *string `json:"due_at"`
	CreatedAt string  `json:"created_at"`
	UpdatedAt string  `json:"updated_at"`
	Position  string  `json:"position"`
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
