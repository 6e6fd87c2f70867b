package contract

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"upi/shared/contract/money"
	"upi/shared/contract/problem"
	"upi/shared/contract/vpa"
)

// PathMandates is the collection of mandates.
const PathMandates = "/v1/mandates"

// MandateFrequencies are the frequencies a mandate may have.
var MandateFrequencies = []string{"ONETIME", "DAILY", "WEEKLY", "FORTNIGHTLY", "MONTHLY", "BIMONTHLY", "QUARTERLY",
	"HALFYEARLY", "YEARLY", "ASPRESENTED"}

// Bounds of a mandate request's approval window (seconds).
const (
	MandateExpiryMinSeconds = 1
	MandateExpiryMaxSeconds = 3888000
)

// ist is India Standard Time, in which a mandate's validity dates are days.
var ist = time.FixedZone("IST", 5*3600+30*60)

// MandateRequestBody is the body of POST /v1/mandates.
type MandateRequestBody struct {
	PayerVPA    string `json:"payer_vpa"`
	PayeeVPA    string `json:"payee_vpa"`
	AmountPaise int64  `json:"amount_paise"`
	AmountRule  string `json:"amount_rule"`
	Frequency   string `json:"frequency"`
	ValidFrom   string `json:"valid_from"`
	ValidUntil  string `json:"valid_until"`
	Revocable   *bool  `json:"revocable,omitempty"`
	Purpose     string `json:"purpose"`
	// ExpiresInSeconds is how long the payer has to approve; absent: MANDATE_REQUEST_EXPIRY.
	ExpiresInSeconds int64 `json:"expires_in_seconds,omitempty"`
}

// RequestMandate is a validated MandateRequestBody.
type RequestMandate struct {
	Payer, Payee      vpa.VPA
	Amount            money.Amount
	AmountRule        string
	Frequency         string
	ValidFrom         time.Time
	ValidUntil        time.Time // exclusive
	Revocable         bool
	Purpose           string
	ExpiresIn         time.Duration // 0: the service's default
	ValidFromText     string        // as sent, for the fingerprint
	ValidUntilText    string
	RevocableExplicit bool
}

// ParseValidity reads a validity bound: a date (YYYY-MM-DD, IST; an end date includes its whole day) or
// an RFC 3339 time.
func ParseValidity(s string, end bool) (time.Time, bool) {
	if d, err := time.ParseInLocation("2006-01-02", s, ist); err == nil {
		if end {
			d = d.AddDate(0, 0, 1)
		}
		return d, true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// Validate checks the request.
func (r MandateRequestBody) Validate(l Limits) (RequestMandate, *problem.Problem) {
	var errs []problem.FieldError
	add := func(field, msg string) { errs = append(errs, problem.FieldError{Field: field, Message: msg}) }
	payer, err := vpa.Parse(r.PayerVPA)
	if err != nil {
		add("payer_vpa", err.Error())
	}
	payee, err2 := vpa.Parse(r.PayeeVPA)
	if err2 != nil {
		add("payee_vpa", err2.Error())
	}
	if err == nil && err2 == nil && payer == payee {
		add("payer_vpa", "payer_vpa must differ from payee_vpa")
	}
	amount, err := money.NewAmount(r.AmountPaise, l.PaymentMaxPaise)
	if err != nil {
		errs = append(errs, amountError(l.PaymentMaxPaise))
	}
	if r.AmountRule != "MAX" && r.AmountRule != "EXACT" {
		add("amount_rule", "amount_rule must be MAX or EXACT")
	}
	known := false
	for _, f := range MandateFrequencies {
		known = known || f == r.Frequency
	}
	if !known {
		add("frequency", "frequency must be one of "+strings.Join(MandateFrequencies, ", "))
	}
	from, ok1 := ParseValidity(r.ValidFrom, false)
	if !ok1 {
		add("valid_from", "valid_from must be a date (YYYY-MM-DD) or an RFC 3339 time")
	}
	until, ok2 := ParseValidity(r.ValidUntil, true)
	if !ok2 {
		add("valid_until", "valid_until must be a date (YYYY-MM-DD) or an RFC 3339 time")
	}
	if ok1 && ok2 && !until.After(from) {
		add("valid_until", "valid_until must be after valid_from")
	}
	revocable := r.Revocable == nil || *r.Revocable
	if !revocable && r.Frequency != "ONETIME" {
		add("revocable", "only a ONETIME mandate may be irrevocable")
	}
	if n := utf8.RuneCountInString(r.Purpose); n < 1 || n > 100 || hasControl(r.Purpose) {
		add("purpose", "purpose must be 1 to 100 printable characters")
	}
	if r.ExpiresInSeconds != 0 && (r.ExpiresInSeconds < MandateExpiryMinSeconds || r.ExpiresInSeconds > MandateExpiryMaxSeconds) {
		add("expires_in_seconds", fmt.Sprintf("expires_in_seconds must be from %d to %d", MandateExpiryMinSeconds, MandateExpiryMaxSeconds))
	}
	if errs != nil {
		return RequestMandate{}, problem.Validation(errs...)
	}
	return RequestMandate{Payer: payer, Payee: payee, Amount: amount, AmountRule: r.AmountRule, Frequency: r.Frequency,
		ValidFrom: from, ValidUntil: until, Revocable: revocable, Purpose: r.Purpose,
		ExpiresIn: time.Duration(r.ExpiresInSeconds) * time.Second, ValidFromText: r.ValidFrom, ValidUntilText: r.ValidUntil,
		RevocableExplicit: r.Revocable != nil}, nil
}

// MandateNotifyBody is the body of POST /v1/mandates/{mandate_id}/notifications: a pre-debit notification.
type MandateNotifyBody struct {
	AmountPaise int64  `json:"amount_paise"`
	DebitAt     string `json:"debit_at"`
}

// NotifyDebit is a validated MandateNotifyBody.
type NotifyDebit struct {
	MandateID uuid.UUID
	Amount    money.Amount
	DebitAt   time.Time
}

// Validate checks the notification of mandate id.
func (r MandateNotifyBody) Validate(id string, l Limits) (NotifyDebit, *problem.Problem) {
	var errs []problem.FieldError
	mid, err := uuid.Parse(id)
	if err != nil {
		return NotifyDebit{}, problem.New(404, problem.CodeMandateNotFound, "no such mandate")
	}
	amount, err := money.NewAmount(r.AmountPaise, l.PaymentMaxPaise)
	if err != nil {
		errs = append(errs, amountError(l.PaymentMaxPaise))
	}
	at, err := time.Parse(time.RFC3339Nano, r.DebitAt)
	if err != nil {
		errs = append(errs, problem.FieldError{Field: "debit_at", Message: "debit_at must be an RFC 3339 time"})
	}
	if errs != nil {
		return NotifyDebit{}, problem.Validation(errs...)
	}
	return NotifyDebit{MandateID: mid, Amount: amount, DebitAt: at}, nil
}

// MandateDebit is one notified debit of a mandate.
type MandateDebit struct {
	NotificationID string  `json:"notification_id"`
	MandateID      string  `json:"mandate_id"`
	AmountPaise    int64   `json:"amount_paise"`
	DebitAt        string  `json:"debit_at"`
	ExecuteAt      string  `json:"execute_at"`
	NeedsApproval  bool    `json:"needs_approval"`
	ApproveBy      string  `json:"approve_by,omitempty"`
	Approved       bool    `json:"approved"`
	Status         string  `json:"status"`
	Attempt        int     `json:"attempt"`
	PaymentID      *string `json:"payment_id"`
	FailureCode    *string `json:"failure_code"`
	Position       string  `json:"position,omitempty"`
}

// Mandate is the mandate resource.
type Mandate struct {
	MandateID   string         `json:"mandate_id"`
	UMN         string         `json:"umn"`
	PayerVPA    string         `json:"payer_vpa"`
	PayeeVPA    string         `json:"payee_vpa"`
	AmountPaise int64          `json:"amount_paise"`
	AmountRule  string         `json:"amount_rule"`
	Frequency   string         `json:"frequency"`
	ValidFrom   string         `json:"valid_from"`
	ValidUntil  string         `json:"valid_until"`
	Revocable   bool           `json:"revocable"`
	Purpose     string         `json:"purpose"`
	Status      string         `json:"status"`
	NPCICode    *string        `json:"npci_code"`
	RevokedBy   string         `json:"revoked_by,omitempty"`
	ExpiresAt   string         `json:"expires_at"`
	Debits      []MandateDebit `json:"debits"`
	CreatedAt   string         `json:"created_at,omitempty"`
	UpdatedAt   string         `json:"updated_at,omitempty"`
	Position    string         `json:"position"`
}

// PathMandateTimers is the command service's internal route on which event-consumers' mandate timer has
// what is due decided (docs/internal-api.md).
const PathMandateTimers = "/internal/mandate-timers"

// MaxMandateTimers bounds the items of one call.
const MaxMandateTimers = 100

// MandateTimer names a mandate, and one of its debits (or uuid.Nil), whose due step is asked for.
type MandateTimer struct {
	MandateID      uuid.UUID `json:"mandate_id"`
	NotificationID uuid.UUID `json:"notification_id"`
}

// MandateTimersRequest is the body of POST PathMandateTimers.
type MandateTimersRequest struct {
	Items []MandateTimer `json:"items"`
}

// MandateTimerResult is what one item's step appended (event types; none when nothing was due), or why it
// failed.
type MandateTimerResult struct {
	MandateTimer
	EventTypes []string         `json:"event_types"`
	Problem    *problem.Problem `json:"problem,omitempty"`
}

// MandateTimersResponse answers MandateTimersRequest, one result per item, in order.
type MandateTimersResponse struct {
	Results []MandateTimerResult `json:"results"`
}
