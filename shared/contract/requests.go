package contract

import (
	"errors"
	"fmt"
	"github.com/google/uuid"
	"strings"
	"unicode/utf8"

	"upi/shared/contract/intent"
	"upi/shared/contract/money"
	"upi/shared/contract/problem"
	"upi/shared/contract/vpa"
)

// OpenAccountRequest is the body of POST /v1/accounts.
type OpenAccountRequest struct {
	VPA        string `json:"vpa"`
	HolderName string `json:"holder_name"`
	// Type is PERSON (the default) or ENTITY; an ENTITY needs MCC, a PERSON may not have one.
	Type string `json:"type,omitempty"`
	MCC  string `json:"mcc,omitempty"`
}

// OpenAccount is a validated OpenAccountRequest.
type OpenAccount struct {
	VPA        vpa.VPA
	HolderName string
	Type       string // PERSON or ENTITY
	MCC        string // an ENTITY's 4-digit merchant category code; "" for a PERSON
}

// Validate checks the request and returns the command, or a 400 VALIDATION problem.
func (r OpenAccountRequest) Validate() (OpenAccount, *problem.Problem) {
	var errs []problem.FieldError
	v, err := vpa.Parse(r.VPA)
	if err != nil {
		errs = append(errs, problem.FieldError{Field: "vpa", Message: err.Error()})
	}
	name := strings.TrimSpace(r.HolderName)
	if n := utf8.RuneCountInString(name); n < 1 || n > 100 || !utf8.ValidString(name) || hasControl(name) {
		errs = append(errs, problem.FieldError{Field: "holder_name", Message: "holder_name must be 1 to 100 printable characters"})
	}
	kind := r.Type
	switch kind {
	case "":
		kind = AccountPerson
		fallthrough
	case AccountPerson:
		if r.MCC != "" {
			errs = append(errs, problem.FieldError{Field: "mcc", Message: "a PERSON account has no mcc"})
		}
	case AccountEntity:
		if !isMCC(r.MCC) {
			errs = append(errs, problem.FieldError{Field: "mcc", Message: "an ENTITY account needs mcc, a 4-digit merchant category code"})
		}
	default:
		errs = append(errs, problem.FieldError{Field: "type", Message: "type must be PERSON or ENTITY"})
	}
	if errs != nil {
		return OpenAccount{}, problem.Validation(errs...)
	}
	return OpenAccount{VPA: v, HolderName: name, Type: kind, MCC: r.MCC}, nil
}

// DepositRequest is the body of POST /v1/accounts/{vpa}/deposits.
type DepositRequest struct {
	AmountPaise int64  `json:"amount_paise"`
	Reference   string `json:"reference"`
}

// Deposit is a validated DepositRequest for one account.
type DepositCommand struct {
	VPA       vpa.VPA
	Amount    money.Amount
	Reference string
}

// Validate checks the request for the account named in the path.
func (r DepositRequest) Validate(account string, l Limits) (DepositCommand, *problem.Problem) {
	var errs []problem.FieldError
	v, err := vpa.Parse(account)
	if err != nil {
		errs = append(errs, problem.FieldError{Field: "vpa", Message: err.Error()})
	}
	amount, err := money.NewAmount(r.AmountPaise, l.DepositMaxPaise)
	if err != nil {
		errs = append(errs, amountError(l.DepositMaxPaise))
	}
	ref := r.Reference
	if n := utf8.RuneCountInString(ref); n < 1 || n > 64 || strings.TrimSpace(ref) == "" || hasControl(ref) {
		errs = append(errs, problem.FieldError{Field: "reference", Message: "reference must be 1 to 64 printable characters"})
	}
	if errs != nil {
		return DepositCommand{}, problem.Validation(errs...)
	}
	return DepositCommand{VPA: v, Amount: amount, Reference: ref}, nil
}

// WithdrawalRequest is the body of POST /v1/accounts/{vpa}/withdrawals: the same shape and rules as a
// deposit (the amount up to DepositMaxPaise).
type WithdrawalRequest DepositRequest

// WithdrawCommand is a validated WithdrawalRequest for one account.
type WithdrawCommand DepositCommand

// Validate checks the request for the account named in the path.
func (r WithdrawalRequest) Validate(account string, l Limits) (WithdrawCommand, *problem.Problem) {
	cmd, p := DepositRequest(r).Validate(account, l)
	return WithdrawCommand(cmd), p
}

// PaymentRequest is the body of POST /v1/payments.
type PaymentRequest struct {
	PayerVPA    string `json:"payer_vpa"`
	PayeeVPA    string `json:"payee_vpa"`
	AmountPaise int64  `json:"amount_paise"`
	Note        string `json:"note,omitempty"`
	// Intent, a upi://pay link (a scanned QR), stands for the payee and the amount (ValidateIntent).
	Intent string `json:"intent,omitempty"`
}

// InitiatePayment is a validated PaymentRequest.
type InitiatePayment struct {
	Payer  vpa.VPA
	Payee  vpa.VPA
	Amount money.Amount
	Note   string
	// Intent is the parsed link of a payment by intent (nil otherwise).
	Intent *intent.Intent
}

// Validate checks the request.
func (r PaymentRequest) Validate(l Limits) (InitiatePayment, *problem.Problem) {
	if r.Intent != "" {
		return r.validateIntent(l)
	}
	var errs []problem.FieldError
	payer, err := vpa.Parse(r.PayerVPA)
	if err != nil {
		errs = append(errs, problem.FieldError{Field: "payer_vpa", Message: err.Error()})
	}
	payee, err2 := vpa.Parse(r.PayeeVPA)
	if err2 != nil {
		errs = append(errs, problem.FieldError{Field: "payee_vpa", Message: err2.Error()})
	}
	if err == nil && err2 == nil && payer == payee {
		errs = append(errs, problem.FieldError{Field: "payee_vpa", Message: "payee_vpa must differ from payer_vpa"})
	}
	amount, err := money.NewAmount(r.AmountPaise, l.PaymentMaxPaise)
	if err != nil {
		errs = append(errs, amountError(l.PaymentMaxPaise))
	}
	if utf8.RuneCountInString(r.Note) > 100 || hasControl(r.Note) {
		errs = append(errs, problem.FieldError{Field: "note", Message: "note must be at most 100 printable characters"})
	}
	if errs != nil {
		return InitiatePayment{}, problem.Validation(errs...)
	}
	return InitiatePayment{Payer: payer, Payee: payee, Amount: amount, Note: r.Note}, nil
}

// RefundRequest is the body of POST /v1/payments/{payment_id}/refunds.
type RefundRequest struct {
	AmountPaise int64  `json:"amount_paise"`
	Reason      string `json:"reason"`
}

// RequestRefund is a validated RefundRequest.
type RequestRefund struct {
	PaymentID uuid.UUID
	Amount    money.Amount
	Reason    string
}

// Validate checks the request for the payment named in the path.
func (r RefundRequest) Validate(paymentID string, l Limits) (RequestRefund, *problem.Problem) {
	var errs []problem.FieldError
	pid, err := uuid.Parse(paymentID)
	if err != nil {
		errs = append(errs, problem.FieldError{Field: "payment_id", Message: "payment_id must be a uuid"})
	}
	amount, err := money.NewAmount(r.AmountPaise, l.PaymentMaxPaise)
	if err != nil {
		errs = append(errs, amountError(l.PaymentMaxPaise))
	}
	if n := utf8.RuneCountInString(r.Reason); n < 1 || n > 100 || hasControl(r.Reason) {
		errs = append(errs, problem.FieldError{Field: "reason", Message: "reason must be 1 to 100 printable characters"})
	}
	if errs != nil {
		return RequestRefund{}, problem.Validation(errs...)
	}
	return RequestRefund{PaymentID: pid, Amount: amount, Reason: r.Reason}, nil
}

func amountError(max money.Paise) problem.FieldError {
	return problem.FieldError{Field: "amount_paise",
		Message: fmt.Sprintf("amount_paise must be a whole number of paise from 1 to %d", max)}
}

func isMCC(s string) bool { return isDigits(s, 4) }

// isDigits reports whether s is n ASCII digits.
func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return true
		}
	}
	return false
}

// ErrInvalidIdempotencyKey is returned by CheckIdempotencyKey.
var ErrInvalidIdempotencyKey = errors.New("Idempotency-Key must be 1 to 255 printable ASCII characters")

// CheckIdempotencyKey validates an Idempotency-Key header value.
func CheckIdempotencyKey(key string) error {
	if len(key) < 1 || len(key) > 255 {
		return ErrInvalidIdempotencyKey
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return ErrInvalidIdempotencyKey
		}
	}
	return nil
}

// Bounds and default of a collect request's expires_in_seconds.
const (
	CollectExpiryMinSeconds     = 60
	CollectExpiryMaxSeconds     = 3888000 // 45 days
	CollectExpiryDefaultSeconds = 1800
)

// CollectRequestBody is the body of POST /v1/collect-requests.
type CollectRequestBody struct {
	PayeeVPA    string `json:"payee_vpa"`
	PayerVPA    string `json:"payer_vpa"`
	AmountPaise int64  `json:"amount_paise"`
	Note        string `json:"note,omitempty"`
	// ExpiresInSeconds is 60 to 3888000; absent (0) means the default, 1800.
	ExpiresInSeconds int64 `json:"expires_in_seconds,omitempty"`
}

// RequestCollect is a validated CollectRequestBody.
type RequestCollect struct {
	Payee     vpa.VPA
	Payer     vpa.VPA
	Amount    money.Amount
	Note      string
	ExpiresIn int64 // seconds
}

// Validate checks the request.
func (r CollectRequestBody) Validate(l Limits) (RequestCollect, *problem.Problem) {
	var errs []problem.FieldError
	payee, err := vpa.Parse(r.PayeeVPA)
	if err != nil {
		errs = append(errs, problem.FieldError{Field: "payee_vpa", Message: err.Error()})
	}
	payer, err2 := vpa.Parse(r.PayerVPA)
	if err2 != nil {
		errs = append(errs, problem.FieldError{Field: "payer_vpa", Message: err2.Error()})
	}
	if err == nil && err2 == nil && payer == payee {
		errs = append(errs, problem.FieldError{Field: "payer_vpa", Message: "payer_vpa must differ from payee_vpa"})
	}
	amount, err := money.NewAmount(r.AmountPaise, l.PaymentMaxPaise)
	if err != nil {
		errs = append(errs, amountError(l.PaymentMaxPaise))
	}
	if utf8.RuneCountInString(r.Note) > 100 || hasControl(r.Note) {
		errs = append(errs, problem.FieldError{Field: "note", Message: "note must be at most 100 printable characters"})
	}
	expires := r.ExpiresInSeconds
	if expires == 0 {
		expires = CollectExpiryDefaultSeconds
	}
	if expires < CollectExpiryMinSeconds || expires > CollectExpiryMaxSeconds {
		errs = append(errs, problem.FieldError{Field: "expires_in_seconds",
			Message: fmt.Sprintf("expires_in_seconds must be from %d to %d", CollectExpiryMinSeconds, CollectExpiryMaxSeconds)})
	}
	if errs != nil {
		return RequestCollect{}, problem.Validation(errs...)
	}
	return RequestCollect{Payee: payee, Payer: payer, Amount: amount, Note: r.Note, ExpiresIn: expires}, nil
}

// PathCollectExpiries is the command service's internal route on which event-consumers' expiry watcher
// expires the collect requests that are due (docs/internal-api.md).
const PathCollectExpiries = "/internal/collect-expiries"

// CollectExpiriesRequest is the body of POST PathCollectExpiries.
type CollectExpiriesRequest struct {
	CollectIDs []uuid.UUID `json:"collect_ids"`
}

// CollectExpiryResult is the outcome of one expiry: the event that closes the request (CollectExpired,
// or the approval or decline that closed it first), or the problem that failed it (COLLECT_NOT_FOUND,
// STEP_PRECONDITION when it is not due yet).
type CollectExpiryResult struct {
	CollectID uuid.UUID        `json:"collect_id"`
	EventType string           `json:"event_type,omitempty"`
	Problem   *problem.Problem `json:"problem,omitempty"`
}

// CollectExpiriesResponse answers POST PathCollectExpiries with 200, one result per id, in order.
type CollectExpiriesResponse struct {
	Results []CollectExpiryResult `json:"results"`
}

// MaxCollectExpiries bounds one call of PathCollectExpiries.
const MaxCollectExpiries = 500
