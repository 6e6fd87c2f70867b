package events

// Events of what UPI merchants use beyond payments: QR codes and intent payments, and AutoPay mandates
// (docs/events.md, "QR codes" and "Mandates"). Every one of them embeds QRTerms or MandateTerms, which is
// how Merchant recognises them.

// Aggregate types of the merchant features.
const (
	AggregateQR      = "qr"      // aggregate id: the QR id, ids.QR(payee, merchant reference)
	AggregateMandate = "mandate" // aggregate id: the mandate UUID
)

// Event types of the merchant features.
const (
	QRCreated = "QRCreated" // qr stream; event id = the creating request's effect id
	QRPaid    = "QRPaid"    // qr stream; event id = ids.StepEvent(qr, "close"): a dynamic QR pays once

	MandateRequested           = "MandateRequested" // mandate stream; event id = mandate id
	MandateApproved            = "MandateApproved"
	MandateDeclined            = "MandateDeclined"
	MandateExpired             = "MandateExpired"
	MandatePaused              = "MandatePaused"
	MandateResumed             = "MandateResumed"
	MandateRevoked             = "MandateRevoked"
	MandateCompleted           = "MandateCompleted"
	MandateDebitNotified       = "MandateDebitNotified"
	MandateDebitApproved       = "MandateDebitApproved"
	MandateDebitAttempted      = "MandateDebitAttempted" // with the PaymentInitiated of the attempt
	MandateDebitRetryScheduled = "MandateDebitRetryScheduled"
	MandateDebitSucceeded      = "MandateDebitSucceeded"
	MandateDebitFailed         = "MandateDebitFailed"
)

// NPCI codes of mandates' endings.
const (
	NPCIMandateDeclined = "ZA"
	NPCIMandateExpired  = "U69"
)

// QRTerms are what every QR event repeats.
type QRTerms struct {
	QRID     string `json:"qr_id"`
	PayeeVPA string `json:"payee_vpa"`
	Ref      string `json:"merchant_reference"`
}

func (t QRTerms) merchantEvent() {}

// QRCreatedV1 opens a dynamic QR for one order.
type QRCreatedV1 struct {
	QRTerms
	PayeeName   string `json:"payee_name"`
	MCC         string `json:"mcc,omitempty"`
	AmountPaise int64  `json:"amount_paise,omitempty"`     // am: the fixed amount
	MinPaise    int64  `json:"min_amount_paise,omitempty"` // mam: the minimum
	Note        string `json:"note,omitempty"`             // tn
	ExpiresAt   string `json:"expires_at"`                 // RFC 3339
	ClientID    string `json:"client_id"`
}

// QRPaidV1 records the one payment of a dynamic QR; it is appended with that payment's PaymentInitiated.
type QRPaidV1 struct {
	QRTerms
	PaymentID   string `json:"payment_id"`
	AmountPaise int64  `json:"amount_paise"`
}

func (QRCreatedV1) EventType() string { return QRCreated }
func (QRPaidV1) EventType() string    { return QRPaid }

// MandateTerms are what every mandate event repeats.
type MandateTerms struct {
	MandateID string `json:"mandate_id"`
}

func (t MandateTerms) merchantEvent() {}

// MandateRequestedV1 opens a mandate: the payee's owner asks the payer for recurring debits.
type MandateRequestedV1 struct {
	MandateTerms
	UMN         string `json:"umn"`
	PayerVPA    string `json:"payer_vpa"`
	PayeeVPA    string `json:"payee_vpa"`
	AmountPaise int64  `json:"amount_paise"`
	AmountRule  string `json:"amount_rule"` // MAX or EXACT
	Frequency   string `json:"frequency"`
	ValidFrom   string `json:"valid_from"`  // RFC 3339
	ValidUntil  string `json:"valid_until"` // RFC 3339
	Revocable   bool   `json:"revocable"`
	Purpose     string `json:"purpose"`
	ClientID    string `json:"client_id"`       // the payee's owner, who asked
	PayerClient string `json:"payer_client_id"` // the payer's owner, who may approve
	ExpiresAt   string `json:"expires_at"`      // RFC 3339: approve by then
}

// MandateDecisionV1 is a change of a mandate's state by one party (approve, decline, pause, resume,
// revoke), or by the system (expiry, completion; no client).
type MandateDecisionV1 struct {
	MandateTerms
	ClientID string `json:"client_id,omitempty"`
	By       string `json:"by,omitempty"`     // PAYER or PAYEE (revocations)
	Reason   string `json:"reason,omitempty"` // completions: VALIDITY_ENDED or DEBITED
}

// MandateApprovedV1 .. MandateCompletedV1 are the decisions, one type each.
type (
	MandateApprovedV1  struct{ MandateDecisionV1 }
	MandateDeclinedV1  struct{ MandateDecisionV1 }
	MandateExpiredV1   struct{ MandateDecisionV1 }
	MandatePausedV1    struct{ MandateDecisionV1 }
	MandateResumedV1   struct{ MandateDecisionV1 }
	MandateRevokedV1   struct{ MandateDecisionV1 }
	MandateCompletedV1 struct{ MandateDecisionV1 }
)

// MandateDebitNotifiedV1 is the merchant's pre-debit notification of one debit.
type MandateDebitNotifiedV1 struct {
	MandateTerms
	NotificationID string `json:"notification_id"`
	AmountPaise    int64  `json:"amount_paise"`
	DebitAt        string `json:"debit_at"`   // RFC 3339, as notified
	ExecuteAt      string `json:"execute_at"` // debit_at moved out of a peak window
	NeedsApproval  bool   `json:"needs_approval,omitempty"`
	ApproveBy      string `json:"approve_by,omitempty"` // RFC 3339, when NeedsApproval
	ClientID       string `json:"client_id"`
}

// MandateDebitApprovedV1 is the payer's approval of a debit above the no-authentication limit.
type MandateDebitApprovedV1 struct {
	MandateTerms
	NotificationID string `json:"notification_id"`
	ClientID       string `json:"client_id"`
}

// MandateDebitAttemptedV1 starts one attempt of a debit: the payment PaymentID, initiated in the same
// transaction.
type MandateDebitAttemptedV1 struct {
	MandateTerms
	NotificationID string `json:"notification_id"`
	Attempt        int    `json:"attempt"`
	PaymentID      string `json:"payment_id"`
}

// MandateDebitRetryScheduledV1 records an attempt failed for the payer's funds, and when the next one runs.
type MandateDebitRetryScheduledV1 struct {
	MandateTerms
	NotificationID string `json:"notification_id"`
	Attempt        int    `json:"attempt"`
	PaymentID      string `json:"payment_id"`
	Code           string `json:"code"`
	RetryAt        string `json:"retry_at"`
}

// MandateDebitSucceededV1 ends a debit whose payment completed.
type MandateDebitSucceededV1 struct {
	MandateTerms
	NotificationID string `json:"notification_id"`
	Attempt        int    `json:"attempt"`
	PaymentID      string `json:"payment_id"`
}

// MandateDebitFailedV1 ends a debit that moved no money: its last attempt failed, its approval never came,
// or the mandate stopped (paused, revoked, over) before it ran.
type MandateDebitFailedV1 struct {
	MandateTerms
	NotificationID string `json:"notification_id"`
	Attempt        int    `json:"attempt,omitempty"`
	PaymentID      string `json:"payment_id,omitempty"`
	Code           string `json:"code"`
}

func (MandateRequestedV1) EventType() string           { return MandateRequested }
func (MandateApprovedV1) EventType() string            { return MandateApproved }
func (MandateDeclinedV1) EventType() string            { return MandateDeclined }
func (MandateExpiredV1) EventType() string             { return MandateExpired }
func (MandatePausedV1) EventType() string              { return MandatePaused }
func (MandateResumedV1) EventType() string             { return MandateResumed }
func (MandateRevokedV1) EventType() string             { return MandateRevoked }
func (MandateCompletedV1) EventType() string           { return MandateCompleted }
func (MandateDebitNotifiedV1) EventType() string       { return MandateDebitNotified }
func (MandateDebitApprovedV1) EventType() string       { return MandateDebitApproved }
func (MandateDebitAttemptedV1) EventType() string      { return MandateDebitAttempted }
func (MandateDebitRetryScheduledV1) EventType() string { return MandateDebitRetryScheduled }
func (MandateDebitSucceededV1) EventType() string      { return MandateDebitSucceeded }
func (MandateDebitFailedV1) EventType() string         { return MandateDebitFailed }

// Merchant reports whether p is an event of a QR code or a mandate (the merchant projection's, and no
// other's).
func Merchant(p Payload) bool {
	_, ok := p.(interface{ merchantEvent() })
	return ok
}

// merchantDecoders are the merchant features' lines of the decoder table.
var merchantDecoders = map[string]func(payload []byte) (Payload, error){
	QRCreated:                  decodeAs[QRCreatedV1],
	QRPaid:                     decodeAs[QRPaidV1],
	MandateRequested:           decodeAs[MandateRequestedV1],
	MandateApproved:            decodeAs[MandateApprovedV1],
	MandateDeclined:            decodeAs[MandateDeclinedV1],
	MandateExpired:             decodeAs[MandateExpiredV1],
	MandatePaused:              decodeAs[MandatePausedV1],
	MandateResumed:             decodeAs[MandateResumedV1],
	MandateRevoked:             decodeAs[MandateRevokedV1],
	MandateCompleted:           decodeAs[MandateCompletedV1],
	MandateDebitNotified:       decodeAs[MandateDebitNotifiedV1],
	MandateDebitApproved:       decodeAs[MandateDebitApprovedV1],
	MandateDebitAttempted:      decodeAs[MandateDebitAttemptedV1],
	MandateDebitRetryScheduled: decodeAs[MandateDebitRetryScheduledV1],
	MandateDebitSucceeded:      decodeAs[MandateDebitSucceededV1],
	MandateDebitFailed:         decodeAs[MandateDebitFailedV1],
}

func init() {
	for t, d := range merchantDecoders {
		decoders[t] = d
	}
}
