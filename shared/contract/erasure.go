package contract

import (
	"upi/shared/contract/problem"
	"upi/shared/contract/vpa"
)

// Erasure of a person (POST /v1/ops/erasures, operators only): the account is closed for good and its
// holder's key destroyed, so that every sealed field naming the holder reads ErasedValue.

// PathErasures is the route of erasures, on the gateway and on the command service.
const PathErasures = "/v1/ops/erasures"

// ErasedValue is what erased personal data reads as, in every answer (holder names, notes, reasons).
const ErasedValue = "[erased]"

// AccountStatusClosed is the status of an erased account.
const AccountStatusClosed = "CLOSED"

// ErasureRequest is the body of POST /v1/ops/erasures.
type ErasureRequest struct {
	VPA string `json:"vpa"`
}

// Validate checks the request and returns the account to erase, or a 400 VALIDATION problem.
func (r ErasureRequest) Validate() (vpa.VPA, *problem.Problem) {
	v, err := vpa.Parse(r.VPA)
	if err != nil {
		return vpa.VPA{}, problem.Validation(problem.FieldError{Field: "vpa", Message: err.Error()})
	}
	return v, nil
}

// Erasure is the answer of an erasure, the same however often it is asked for.
type Erasure struct {
	VPA      string `json:"vpa"`
	Status   string `json:"status"` // CLOSED
	ErasedAt string `json:"erased_at"`
	Position string `json:"position"`
}
