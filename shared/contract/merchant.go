package contract

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"upi/shared/contract/intent"
	"upi/shared/contract/money"
	"upi/shared/contract/problem"
	"upi/shared/contract/vpa"
)

// validateIntent checks a payment by intent: the payer, and the link in place of payee and amount. The
// link gives the amount (am); amount_paise is needed only when it has none (a static QR, or a minimum
// mam that the payer chooses to pay more than), and must agree with it otherwise.
func (r PaymentRequest) validateIntent(l Limits) (InitiatePayment, *problem.Problem) {
	var errs []problem.FieldError
	payer, err := vpa.Parse(r.PayerVPA)
	if err != nil {
		errs = append(errs, problem.FieldError{Field: "payer_vpa", Message: err.Error()})
	}
	if r.PayeeVPA != "" {
		errs = append(errs, problem.FieldError{Field: "payee_vpa", Message: "payee_vpa must be absent when intent is given: the link names the payee"})
	}
	in, err := intent.Parse(r.Intent)
	var pe *intent.Error
	if errors.As(err, &pe) {
		field := "intent"
		if pe.Param != "intent" {
			field = "intent." + pe.Param
		}
		errs = append(errs, problem.FieldError{Field: field, Message: fmt.Sprintf("intent parameter %s: %s", pe.Param, pe.Message)})
		return InitiatePayment{}, problem.Validation(errs...)
	}
	if payer == in.PayeeVPA {
		errs = append(errs, problem.FieldError{Field: "intent.pa", Message: "the link's payee must differ from payer_vpa"})
	}
	paise := in.AmountPaise
	switch {
	case paise > 0 && r.AmountPaise != 0 && r.AmountPaise != paise:
		errs = append(errs, problem.FieldError{Field: "amount_paise", Message: "amount_paise must be absent or equal to the link's am"})
	case paise == 0 && r.AmountPaise == 0:
		errs = append(errs, problem.FieldError{Field: "amount_paise", Message: "the link has no am: amount_paise is required"})
	case paise == 0:
		paise = r.AmountPaise
	}
	if in.MinPaise > 0 && paise > 0 && paise < in.MinPaise {
		errs = append(errs, problem.FieldError{Field: "amount_paise", Message: "the amount is below the link's minimum mam"})
	}
	amount, err := money.NewAmount(paise, l.PaymentMaxPaise)
	if err != nil && len(errs) == 0 {
		field := "intent.am"
		if in.AmountPaise == 0 {
			field = "amount_paise"
		}
		errs = append(errs, problem.FieldError{Field: field, Message: fmt.Sprintf("the amount must be from 1 to %d paise", l.PaymentMaxPaise)})
	}
	note := r.Note
	if note == "" {
		note = in.Note
	}
	if utf8.RuneCountInString(note) > 100 || hasControl(note) {
		errs = append(errs, problem.FieldError{Field: "note", Message: "note must be at most 100 printable characters"})
	}
	if errs != nil {
		return InitiatePayment{}, problem.Validation(errs...)
	}
	return InitiatePayment{Payer: payer, Payee: in.PayeeVPA, Amount: amount, Note: note, Intent: &in}, nil
}

// Path of the QR codes.
const PathQRCodes = "/v1/qr-codes"

// QR code limits.
const (
	QRExpiryMinSeconds     = 60
	QRExpiryMaxSeconds     = 3888000 // 45 days
	QRExpiryDefaultSeconds = 900
)

// QRRequest is the body of POST /v1/qr-codes: a dynamic QR for one order of the payee, an ENTITY the
// caller owns.
type QRRequest struct {
	PayeeVPA          string `json:"payee_vpa"`
	MerchantReference string `json:"merchant_reference"`
	AmountPaise       int64  `json:"amount_paise,omitempty"`
	MinAmountPaise    int64  `json:"min_amount_paise,omitempty"`
	Note              string `json:"note,omitempty"`
	ExpiresInSeconds  int64  `json:"expires_in_seconds,omitempty"`
}

// CreateQR is a validated QRRequest.
type CreateQR struct {
	Payee       vpa.VPA
	Ref         string
	AmountPaise int64
	MinPaise    int64
	Note        string
	ExpiresIn   time.Duration
}

// Validate checks the request.
func (r QRRequest) Validate(l Limits) (CreateQR, *problem.Problem) {
	var errs []problem.FieldError
	payee, err := vpa.Parse(r.PayeeVPA)
	if err != nil {
		errs = append(errs, problem.FieldError{Field: "payee_vpa", Message: err.Error()})
	}
	// The reference and note travel in the link: the link's own rules apply.
	probe := intent.Intent{PayeeVPA: payee, Ref: r.MerchantReference, Note: r.Note}
	if _, err := intent.Parse(probe.String()); err != nil && payee.String() != "" {
		var pe *intent.Error
		if errors.As(err, &pe) && pe.Param == "tr" || r.MerchantReference == "" {
			errs = append(errs, problem.FieldError{Field: "merchant_reference", Message: "merchant_reference must be 1 to 35 letters, digits, '.', '-' or '_'"})
		} else if errors.As(err, &pe) && pe.Param == "tn" {
			errs = append(errs, problem.FieldError{Field: "note", Message: "note must be at most 100 printable characters"})
		}
	} else if r.MerchantReference == "" {
		errs = append(errs, problem.FieldError{Field: "merchant_reference", Message: "merchant_reference is required"})
	}
	switch {
	case r.AmountPaise != 0 && r.MinAmountPaise != 0:
		errs = append(errs, problem.FieldError{Field: "min_amount_paise", Message: "give amount_paise or min_amount_paise, not both"})
	case r.AmountPaise < 0 || r.AmountPaise > int64(l.PaymentMaxPaise):
		errs = append(errs, amountError(l.PaymentMaxPaise))
	case r.MinAmountPaise < 0 || r.MinAmountPaise > int64(l.PaymentMaxPaise):
		errs = append(errs, problem.FieldError{Field: "min_amount_paise", Message: fmt.Sprintf("min_amount_paise must be from 1 to %d", l.PaymentMaxPaise)})
	}
	expires := r.ExpiresInSeconds
	if expires == 0 {
		expires = QRExpiryDefaultSeconds
	}
	if expires < QRExpiryMinSeconds || expires > QRExpiryMaxSeconds {
		errs = append(errs, problem.FieldError{Field: "expires_in_seconds",
			Message: fmt.Sprintf("expires_in_seconds must be from %d to %d", QRExpiryMinSeconds, QRExpiryMaxSeconds)})
	}
	if errs != nil {
		return CreateQR{}, problem.Validation(errs...)
	}
	return CreateQR{Payee: payee, Ref: r.MerchantReference, AmountPaise: r.AmountPaise, MinPaise: r.MinAmountPaise,
		Note: r.Note, ExpiresIn: time.Duration(expires) * time.Second}, nil
}

// QR statuses.
const (
	QRActive  = "ACTIVE"
	QRPaid    = "PAID"
	QRExpired = "EXPIRED"
	QRStatic  = "STATIC"
)

// QR is a QR code: a dynamic one (qr_id, merchant_reference, expiry, status) or an account's static one
// (status STATIC). Intent is the upi://pay link the code carries; ask for image/png to get the code.
type QR struct {
	QRID              string  `json:"qr_id,omitempty"`
	PayeeVPA          string  `json:"payee_vpa"`
	PayeeName         string  `json:"payee_name"`
	MCC               string  `json:"mcc,omitempty"`
	MerchantReference string  `json:"merchant_reference,omitempty"`
	AmountPaise       int64   `json:"amount_paise,omitempty"`
	MinAmountPaise    int64   `json:"min_amount_paise,omitempty"`
	Note              string  `json:"note,omitempty"`
	Intent            string  `json:"intent"`
	Status            string  `json:"status"`
	PaymentID         *string `json:"payment_id,omitempty"`
	ExpiresAt         string  `json:"expires_at,omitempty"`
	CreatedAt         string  `json:"created_at,omitempty"`
	Position          string  `json:"position,omitempty"`
}
