// Package events is the contract of the event log: every event type the system appends, its payload, and
// the metadata every event carries. Consumers decode payloads with Decode; producers build them with the
// typed structs below. Changing a payload incompatibly means a new SchemaVersion and an upcaster here,
// never a rewrite of stored events (see docs/events.md).
package events

import (
	"encoding/json"
	"fmt"
	"time"
)

// Aggregate types, stored in events.aggregate_type.
const (
	AggregateAccount = "account" // aggregate id: the VPA
	AggregatePayment = "payment" // aggregate id: the payment UUID
	AggregateRefund  = "refund"  // aggregate id: the refund UUID
	AggregateCollect = "collect" // aggregate id: the collect request UUID
	// AggregateSettlement is one shard of a bank's settlement account: the bank's side of every deposit
	// and withdrawal of the accounts on its handle (aggregate id: SettlementStream). A bank's balance is
	// the sum of its shards; it may go negative (it is what the bank owes its account holders).
	AggregateSettlement = "settlement"
	// AggregateComplaint is the complaints about one payment (aggregate id: ComplaintStream of the payment
	// id): its lock makes "one open complaint per payment" exact under concurrency.
	AggregateComplaint = "complaint"
)

// Event types, stored in events.event_type.
const (
	AccountOpened   = "AccountOpened"
	FundsDeposited  = "FundsDeposited"
	AccountDebited  = "AccountDebited"
	DebitRejected   = "DebitRejected"
	AccountCredited = "AccountCredited"
	DebitReversed   = "DebitReversed"

	PaymentInitiated = "PaymentInitiated"
	PaymentCompleted = "PaymentCompleted"
	PaymentFailed    = "PaymentFailed"

	// A refund: reserved on its payment's stream (under the payment's lock), opened on its own stream,
	// money moved on the two accounts, closed on its own stream, and its outcome recorded on the payment's.
	RefundReserved      = "RefundReserved"      // payment stream; event id = refund id
	RefundInitiated     = "RefundInitiated"     // refund stream
	RefundDebited       = "RefundDebited"       // payee account (the merchant gives the money back)
	RefundDebitRejected = "RefundDebitRejected" // payee account; no money moved
	RefundCredited      = "RefundCredited"      // payer account
	RefundDebitReversed = "RefundDebitReversed" // payee account; the refund's debit given back
	RefundCompleted     = "RefundCompleted"     // refund stream
	RefundFailed        = "RefundFailed"        // refund stream
	RefundSettled       = "RefundSettled"       // payment stream: the refund's outcome; a failure releases its reservation

	// A collect request: a merchant asks a payer for money. Opened on its own stream, it is closed once,
	// by exactly one of approval, decline or expiry (the three share one event id, ids.StepClose of the
	// collect id, so two outcomes can never both be recorded). An approval's payment is initiated in the
	// same transaction, with an id derived from the collect id.
	CollectRequested = "CollectRequested" // collect stream; event id = collect id
	CollectApproved  = "CollectApproved"  // collect stream
	CollectDeclined  = "CollectDeclined"  // collect stream
	CollectExpired   = "CollectExpired"   // collect stream; appended by event-consumers' expiry watcher

	// Money entering and leaving the system: each movement has two sides in one transaction, the
	// account's event and its bank's settlement event (event id ids.SettlementLeg of the account's).
	FundsWithdrawn     = "FundsWithdrawn"     // account stream; event id = withdrawal id
	WithdrawalRejected = "WithdrawalRejected" // account stream; event id = withdrawal id; no money moved
	SettlementDebited  = "SettlementDebited"  // settlement stream: a deposit's money leaves the bank's side
	SettlementCredited = "SettlementCredited" // settlement stream: a withdrawal's money returns to it

	// Complaints (UDIR-like): raised by the payer's owner on a payment, resolved once (event id
	// ids.StepEvent(complaint, "close")), at once from the payment's history when the log knows the answer.
	ComplaintRaised   = "ComplaintRaised"   // complaint stream; event id = complaint id
	ComplaintResolved = "ComplaintResolved" // complaint stream
	// A dispute's settlement: the merchant's accept, or the chargeback once COMPLAINT_TAT has passed, share
	// one event id (ids.StepEvent(complaint, "settle")) and one refund id (ComplaintRefundID), so exactly
	// one of them is recorded and the payer is refunded once. A refund that failed for want of the
	// merchant's funds is tried again (ComplaintRefundRetried, a new refund id per attempt).
	ComplaintAccepted      = "ComplaintAccepted"      // complaint stream; event id = ids.StepEvent(complaint, "settle")
	ChargebackRaised       = "ChargebackRaised"       // complaint stream; event id = ids.StepEvent(complaint, "settle")
	ComplaintRefundRetried = "ComplaintRefundRetried" // complaint stream; event id = the attempt's refund id's step
)

// NPCI codes of a collect request's endings.
const (
	NPCICollectDeclined = "ZA"
	NPCICollectExpired  = "U69"
)

// SchemaVersion is the payload version every type is written with today.
const SchemaVersion = 1

// Failure codes a payment can end with (PaymentFailed.Code, DebitRejected.Code). Stable: clients see them.
const (
	CodeInsufficientFunds = "INSUFFICIENT_FUNDS" // the payer's balance did not cover the amount
	CodePayeeUnavailable  = "PAYEE_UNAVAILABLE"  // the payee could not be credited; the debit was reversed
	CodeProcessingError   = "PROCESSING_ERROR"   // a step kept failing and was parked; any debit was reversed
	// Limits of the payer's account, checked by the debit (DebitRejected.Code).
	CodeDailyLimitExceeded      = "DAILY_LIMIT_EXCEEDED"       // debits of the last 24 hours would pass the daily amount
	CodeCountLimitExceeded      = "COUNT_LIMIT_EXCEEDED"       // payments to persons of the last 24 hours would pass the count
	CodeNewAccountLimitExceeded = "NEW_ACCOUNT_LIMIT_EXCEEDED" // an account's first 24 hours would pass its amount
)

// NPCICode is the NPCI reason code clients see beside a failure code ("" for an unknown code).
func NPCICode(code string) string {
	switch code {
	case CodeInsufficientFunds:
		return "Z9"
	case CodePayeeUnavailable:
		return "XI"
	case CodeDailyLimitExceeded:
		return "Z8"
	case CodeCountLimitExceeded:
		return "Z7"
	case CodeNewAccountLimitExceeded:
		return "U16"
	case CodeProcessingError:
		return "U30"
	case CodeAccountClosed:
		return NPCICodeAccountClosed
	}
	return ""
}

// Account kinds (AccountOpened.Type). An opening without a type, written before kinds existed, is a PERSON.
const (
	AccountPerson = "PERSON"
	AccountEntity = "ENTITY" // a merchant, with a merchant category code
)

// Payload is implemented by every event payload.
type Payload interface{ EventType() string }

// AccountOpenedV1 opens an account. The client that opened it owns it.
type AccountOpenedV1 struct {
	VPA           string `json:"vpa"`
	HolderName    string `json:"holder_name"`
	OwnerClientID string `json:"owner_client_id"`
	// Type is PERSON or ENTITY; absent (older events) means PERSON. MCC is an entity's merchant category.
	Type string `json:"type,omitempty"`
	MCC  string `json:"mcc,omitempty"`
}

// Kind is the account's type, PERSON for an opening written before kinds existed.
func (e AccountOpenedV1) Kind() string {
	if e.Type == "" {
		return AccountPerson
	}
	return e.Type
}

// FundsDepositedV1 credits money that came from the account's bank: its settlement account is debited in
// the same transaction (SettlementDebitedV1). Its event id is ids.Deposit of the account and reference.
type FundsDepositedV1 struct {
	VPA               string `json:"vpa"`
	AmountPaise       int64  `json:"amount_paise"`
	Reference         string `json:"reference"`
	BalanceAfterPaise int64  `json:"balance_after_paise"`
	// Settlement is the settlement stream debited for it (absent on deposits written before double
	// entry, which had no other side).
	Settlement string `json:"settlement,omitempty"`
}

// FundsWithdrawnV1 takes money out of an account to its bank: the bank's settlement account is credited in
// the same transaction (SettlementCreditedV1). Its event id is the withdrawal id.
type FundsWithdrawnV1 struct {
	WithdrawalID      string `json:"withdrawal_id"`
	VPA               string `json:"vpa"`
	AmountPaise       int64  `json:"amount_paise"`
	Reference         string `json:"reference"`
	BalanceAfterPaise int64  `json:"balance_after_paise"`
	RRN               string `json:"rrn"`
	Settlement        string `json:"settlement"`
	ClientID          string `json:"client_id"`
}

// WithdrawalRejectedV1 records a withdrawal the account could not pay (Code, such as INSUFFICIENT_FUNDS).
// No money moved.
type WithdrawalRejectedV1 struct {
	WithdrawalID string `json:"withdrawal_id"`
	VPA          string `json:"vpa"`
	AmountPaise  int64  `json:"amount_paise"`
	Reference    string `json:"reference"`
	Code         string `json:"code"`
	BalancePaise int64  `json:"balance_paise"`
	ClientID     string `json:"client_id"`
}

// SettlementMove is what both settlement events carry: the bank, the account on the other side, the event
// id of the account's side (Leg), the amount, and the shard's balance after it.
type SettlementMove struct {
	Bank              string `json:"bank"`
	VPA               string `json:"vpa"`
	Leg               string `json:"leg"`
	AmountPaise       int64  `json:"amount_paise"`
	BalanceAfterPaise int64  `json:"balance_after_paise"`
}

// SettlementDebitedV1 is the bank's side of a deposit: money leaves the bank's settlement account for one
// of its account holders.
type SettlementDebitedV1 struct{ SettlementMove }

// SettlementCreditedV1 is the bank's side of a withdrawal: money returns from an account holder.
type SettlementCreditedV1 struct{ SettlementMove }

func (FundsWithdrawnV1) EventType() string     { return FundsWithdrawn }
func (WithdrawalRejectedV1) EventType() string { return WithdrawalRejected }
func (SettlementDebitedV1) EventType() string  { return SettlementDebited }
func (SettlementCreditedV1) EventType() string { return SettlementCredited }

// AccountDebitedV1 takes a payment's amount from its payer.
type AccountDebitedV1 struct {
	VPA               string `json:"vpa"`
	PaymentID         string `json:"payment_id"`
	AmountPaise       int64  `json:"amount_paise"`
	CounterpartyVPA   string `json:"counterparty_vpa"`
	BalanceAfterPaise int64  `json:"balance_after_paise"`
	// RRN is the payment's retrieval reference number, given by the debit (absent on older events).
	RRN string `json:"rrn,omitempty"`
	// PayeeType is the kind of the payee (absent on older events: PERSON), so that the payer's daily count
	// of payments to persons can be kept from its own stream.
	PayeeType string `json:"payee_type,omitempty"`
}

// DebitRejectedV1 records that a payer could not be debited. No money moved.
type DebitRejectedV1 struct {
	VPA          string `json:"vpa"`
	PaymentID    string `json:"payment_id"`
	AmountPaise  int64  `json:"amount_paise"`
	Code         string `json:"code"`
	BalancePaise int64  `json:"balance_paise"`
}

// AccountCreditedV1 gives a payment's amount to its payee.
type AccountCreditedV1 struct {
	VPA               string `json:"vpa"`
	PaymentID         string `json:"payment_id"`
	AmountPaise       int64  `json:"amount_paise"`
	CounterpartyVPA   string `json:"counterparty_vpa"`
	BalanceAfterPaise int64  `json:"balance_after_paise"`
}

// DebitReversedV1 gives a payer back a debit whose payment could not be credited to its payee.
type DebitReversedV1 struct {
	VPA               string `json:"vpa"`
	PaymentID         string `json:"payment_id"`
	AmountPaise       int64  `json:"amount_paise"`
	CounterpartyVPA   string `json:"counterparty_vpa"`
	Code              string `json:"code"`
	BalanceAfterPaise int64  `json:"balance_after_paise"`
	// DebitedAt and PayeeType are those of the debit it reverses (absent on older events), so that the
	// reversal nets the debit out of the payer's rolling window.
	DebitedAt *time.Time `json:"debited_at,omitempty"`
	PayeeType string     `json:"payee_type,omitempty"`
}

// PaymentInitiatedV1 starts a payment. Money moves later, in the workflow.
type PaymentInitiatedV1 struct {
	PaymentID   string `json:"payment_id"`
	PayerVPA    string `json:"payer_vpa"`
	PayeeVPA    string `json:"payee_vpa"`
	AmountPaise int64  `json:"amount_paise"`
	Note        string `json:"note,omitempty"`
	ClientID    string `json:"client_id"`
	// UPITxnID is the payment's UPI transaction id (ids.UPITxnID of the payment id; absent on older events).
	UPITxnID string `json:"upi_txn_id,omitempty"`
	// PayeeType is the payee's kind at initiation (absent on older events: PERSON).
	PayeeType string `json:"payee_type,omitempty"`

	// Merchant features (optional; absent on other payments): the QR or intent's merchant reference (tr)
	// and QR id, or the mandate whose debit this payment is.
	MerchantReference string `json:"merchant_reference,omitempty"`
	QRID              string `json:"qr_id,omitempty"`
	MandateID         string `json:"mandate_id,omitempty"`
}

// PaymentCompletedV1 ends a payment whose payee was credited.
type PaymentCompletedV1 struct {
	PaymentID string `json:"payment_id"`
}

// PaymentFailedV1 ends a payment with no money moved.
type PaymentFailedV1 struct {
	PaymentID string `json:"payment_id"`
	Code      string `json:"code"`
	Reason    string `json:"reason,omitempty"`
}

func (AccountOpenedV1) EventType() string    { return AccountOpened }
func (FundsDepositedV1) EventType() string   { return FundsDeposited }
func (AccountDebitedV1) EventType() string   { return AccountDebited }
func (DebitRejectedV1) EventType() string    { return DebitRejected }
func (AccountCreditedV1) EventType() string  { return AccountCredited }
func (DebitReversedV1) EventType() string    { return DebitReversed }
func (PaymentInitiatedV1) EventType() string { return PaymentInitiated }
func (PaymentCompletedV1) EventType() string { return PaymentCompleted }
func (PaymentFailedV1) EventType() string    { return PaymentFailed }

// RefundTerms are what every refund event repeats about its refund: enough for any consumer to act on
// one event alone. PayerVPA and PayeeVPA are those of the payment: the refund debits the payee and
// credits the payer.
type RefundTerms struct {
	RefundID    string `json:"refund_id"`
	PaymentID   string `json:"payment_id"`
	PayerVPA    string `json:"payer_vpa"`
	PayeeVPA    string `json:"payee_vpa"`
	AmountPaise int64  `json:"amount_paise"`
}

// RefundReservedV1 reserves part of a completed payment's amount for a refund, on the payment's stream.
// Its event id is the refund id. Completed and pending refunds never together pass the payment's amount.
type RefundReservedV1 struct {
	RefundTerms
	Reason   string `json:"reason"`
	ClientID string `json:"client_id"`
	UPITxnID string `json:"upi_txn_id"`
	// ComplaintID names the dispute a refund settles (its accept or its chargeback); Chargeback marks the
	// refund of a chargeback, which settlement files type CHARGEBACK. Both absent on a merchant's own refund.
	ComplaintID string `json:"complaint_id,omitempty"`
	Chargeback  bool   `json:"chargeback,omitempty"`
}

// RefundInitiatedV1 opens the refund's own stream, from its reservation.
type RefundInitiatedV1 struct {
	RefundTerms
	Reason      string `json:"reason"`
	ClientID    string `json:"client_id"`
	UPITxnID    string `json:"upi_txn_id"`
	ComplaintID string `json:"complaint_id,omitempty"` // as reserved
	Chargeback  bool   `json:"chargeback,omitempty"`   // as reserved
}

// RefundDebitedV1 takes the refund's amount from the payment's payee. Refunds are not subject to the
// payer limits of the account and do not count in its rolling window.
type RefundDebitedV1 struct {
	RefundTerms
	VPA               string `json:"vpa"`
	BalanceAfterPaise int64  `json:"balance_after_paise"`
	RRN               string `json:"rrn"`
}

// RefundDebitRejectedV1 records that the payee could not be debited for the refund. No money moved.
type RefundDebitRejectedV1 struct {
	RefundTerms
	VPA          string `json:"vpa"`
	Code         string `json:"code"`
	BalancePaise int64  `json:"balance_paise"`
}

// RefundCreditedV1 gives the refund's amount to the payment's payer.
type RefundCreditedV1 struct {
	RefundTerms
	VPA               string `json:"vpa"`
	BalanceAfterPaise int64  `json:"balance_after_paise"`
}

// RefundDebitReversedV1 gives the payee back a refund debit whose credit could not be made.
type RefundDebitReversedV1 struct {
	RefundTerms
	VPA               string `json:"vpa"`
	Code              string `json:"code"`
	BalanceAfterPaise int64  `json:"balance_after_paise"`
}

// RefundCompletedV1 ends a refund whose payer was credited.
type RefundCompletedV1 struct {
	RefundTerms
}

// RefundFailedV1 ends a refund with no money moved.
type RefundFailedV1 struct {
	RefundTerms
	Code   string `json:"code"`
	Reason string `json:"reason,omitempty"`
}

// Refund outcomes (RefundSettled.Status).
const (
	RefundStatusCompleted = "COMPLETED"
	RefundStatusFailed    = "FAILED"
)

// RefundSettledV1 records a refund's outcome on its payment's stream: a completed refund counts in the
// payment's refunded amount, a failed one releases its reservation.
type RefundSettledV1 struct {
	RefundTerms
	Status string `json:"status"`
	Code   string `json:"code,omitempty"`
}

func (RefundReservedV1) EventType() string      { return RefundReserved }
func (RefundInitiatedV1) EventType() string     { return RefundInitiated }
func (RefundDebitedV1) EventType() string       { return RefundDebited }
func (RefundDebitRejectedV1) EventType() string { return RefundDebitRejected }
func (RefundCreditedV1) EventType() string      { return RefundCredited }
func (RefundDebitReversedV1) EventType() string { return RefundDebitReversed }
func (RefundCompletedV1) EventType() string     { return RefundCompleted }
func (RefundFailedV1) EventType() string        { return RefundFailed }
func (RefundSettledV1) EventType() string       { return RefundSettled }

// Refund returns the terms every refund event carries, and whether p is a refund event.
func Refund(p Payload) (RefundTerms, bool) {
	if r, ok := p.(interface{ refundTerms() RefundTerms }); ok {
		return r.refundTerms(), true
	}
	return RefundTerms{}, false
}

// refundTerms makes every payload that embeds RefundTerms a refund event for Refund, with no list to keep.
func (t RefundTerms) refundTerms() RefundTerms { return t }

// CollectTerms are what every collect event repeats about its request.
type CollectTerms struct {
	CollectID   string `json:"collect_id"`
	PayeeVPA    string `json:"payee_vpa"`
	PayerVPA    string `json:"payer_vpa"`
	AmountPaise int64  `json:"amount_paise"`
}

// CollectRequestedV1 opens a collect request: the payee's owner asks the payer for AmountPaise, until
// ExpiresAt.
type CollectRequestedV1 struct {
	CollectTerms
	Note     string `json:"note"`
	ClientID string `json:"client_id"`
	// ExpiresAt is RFC 3339 UTC.
	ExpiresAt string `json:"expires_at"`
}

// CollectApprovedV1 records the payer's approval and the payment it started.
type CollectApprovedV1 struct {
	CollectTerms
	PaymentID string `json:"payment_id"`
	ClientID  string `json:"client_id"`
}

// CollectDeclinedV1 records the payer's refusal (NPCI ZA).
type CollectDeclinedV1 struct {
	CollectTerms
	ClientID string `json:"client_id"`
}

// CollectExpiredV1 records that the request was still pending at its expiry (NPCI U69).
type CollectExpiredV1 struct {
	CollectTerms
	ExpiresAt string `json:"expires_at"`
}

func (CollectRequestedV1) EventType() string { return CollectRequested }
func (CollectApprovedV1) EventType() string  { return CollectApproved }
func (CollectDeclinedV1) EventType() string  { return CollectDeclined }
func (CollectExpiredV1) EventType() string   { return CollectExpired }

// Collect returns the terms every collect event carries, and whether p is a collect event.
func Collect(p Payload) (CollectTerms, bool) {
	if c, ok := p.(interface{ collectTerms() CollectTerms }); ok {
		return c.collectTerms(), true
	}
	return CollectTerms{}, false
}

// collectTerms makes every payload that embeds CollectTerms a collect event for Collect, with no list to
// keep.
func (t CollectTerms) collectTerms() CollectTerms { return t }

// ComplaintStream is the aggregate id of the complaints about payment paymentID: "complaint:" and the
// payment id (a name no VPA or UUID stream can take).
func ComplaintStream(paymentID string) string { return "complaint:" + paymentID }

// Complaint reason codes (NPCI UDIR). The first four are answered from the payment's history; the others
// are disputes with the merchant (the owner of the payee).
const (
	ReasonP2PNotReversed     = "U005" // P2P: failed, not reversed
	ReasonP2MNotReversed     = "U009" // P2M: failed, not reversed
	ReasonNotCredited        = "U010" // beneficiary not credited
	ReasonMerchantNotConfirm = "U022" // debited, merchant did not confirm
	ReasonGoodsNotProvided   = "U008" // goods or services not provided
	ReasonRefundNotProcessed = "U021" // refund not processed
	ReasonDuplicatePayment   = "U023" // duplicate payment
)

// ReasonFromLog reports whether a reason code is answered from the payment's history (the others go to
// the merchant), and ValidReason whether it is a reason code at all.
func ReasonFromLog(code string) bool {
	switch code {
	case ReasonP2PNotReversed, ReasonP2MNotReversed, ReasonNotCredited, ReasonMerchantNotConfirm:
		return true
	}
	return false
}

// ValidReason reports whether code is one of the reason codes above.
func ValidReason(code string) bool {
	switch code {
	case ReasonGoodsNotProvided, ReasonRefundNotProcessed, ReasonDuplicatePayment:
		return true
	}
	return ReasonFromLog(code)
}

// Complaint statuses and resolution codes: a complaint answered from the log is RESOLVED with 102 (the
// debit was reversed), 107 (the payee was credited) or 144 (the payer was never debited).
const (
	ComplaintStatusRaised   = "RAISED"
	ComplaintStatusResolved = "RESOLVED"
	ComplaintStatusRejected = "REJECTED"

	ResolutionReversed    = "102"
	ResolutionCredited    = "107"
	ResolutionNotDebited  = "144"
	ResolutionByMerchant  = "MERCHANT"
	ResolutionNoMerchant  = "NOT_A_MERCHANT_PAYMENT"
	ResolutionNotComplete = "PAYMENT_NOT_COMPLETED"

	// A dispute's answers: RET (the merchant accepted; the disputed amount is returned to the payer),
	// CHARGEBACK (COMPLAINT_TAT passed unanswered: deemed accepted, the payer is refunded from the
	// merchant), MERCHANT_REJECTED (the merchant rejected it, with a reason).
	ResolutionReturned         = "RET"
	ResolutionChargeback       = "CHARGEBACK"
	ResolutionMerchantRejected = "MERCHANT_REJECTED"
)

// ComplaintTerms are what every complaint event repeats about its complaint.
type ComplaintTerms struct {
	ComplaintID string `json:"complaint_id"`
	PaymentID   string `json:"payment_id"`
	PayerVPA    string `json:"payer_vpa"`
	PayeeVPA    string `json:"payee_vpa"`
	AmountPaise int64  `json:"amount_paise"`
	Reason      string `json:"reason_code"`
}

// ComplaintRaisedV1 opens a complaint on a payment (POST /v1/payments/{id}/complaints by the payer's
// owner). A dispute with the merchant (U008, U021, U023 on a completed payment to an ENTITY) is due by
// DueAt (COMPLAINT_TAT).
type ComplaintRaisedV1 struct {
	ComplaintTerms
	Description string `json:"description,omitempty"`
	ClientID    string `json:"client_id"`
	UPITxnID    string `json:"upi_txn_id"`
	DueAt       string `json:"due_at,omitempty"`
}

// ComplaintResolvedV1 closes a complaint: Status RESOLVED or REJECTED, with its resolution code. By is
// SYSTEM (from the log) or MERCHANT.
type ComplaintResolvedV1 struct {
	ComplaintTerms
	Status     string `json:"status"`
	Resolution string `json:"resolution_code"`
	By         string `json:"by"`
	Note       string `json:"note,omitempty"`
}

// ComplaintSettlementV1 is what a dispute's settlement records: the refund that returns the disputed amount
// (the payment's amount less what was refunded before; RefundID is "" when nothing was left to refund) and
// the refund attempt (1 for the first).
type ComplaintSettlementV1 struct {
	ComplaintTerms
	RefundID          string `json:"refund_id,omitempty"`
	RefundAmountPaise int64  `json:"refund_amount_paise"`
	Attempt           int    `json:"attempt"`
}

// ComplaintAcceptedV1 is the merchant's accept of a dispute (POST /v1/complaints/{id}/accept by the owner of
// the payee), in one commit with its refund's reservation and the complaint's resolution (RET).
type ComplaintAcceptedV1 struct {
	ComplaintSettlementV1
	ClientID string `json:"client_id"`
	Note     string `json:"note,omitempty"`
}

// ChargebackRaisedV1 is the automatic chargeback of a dispute the merchant left unanswered past its DueAt,
// in one commit with its refund's reservation and the complaint's resolution (CHARGEBACK).
type ChargebackRaisedV1 struct {
	ComplaintSettlementV1
}

// ComplaintRefundRetriedV1 is a new attempt at a settlement's refund whose previous attempt failed (the
// merchant's balance did not cover it and now does), in one commit with the new refund's reservation.
type ComplaintRefundRetriedV1 struct {
	ComplaintSettlementV1
	Chargeback bool `json:"chargeback,omitempty"`
}

func (ComplaintRaisedV1) EventType() string        { return ComplaintRaised }
func (ComplaintResolvedV1) EventType() string      { return ComplaintResolved }
func (ComplaintAcceptedV1) EventType() string      { return ComplaintAccepted }
func (ChargebackRaisedV1) EventType() string       { return ChargebackRaised }
func (ComplaintRefundRetriedV1) EventType() string { return ComplaintRefundRetried }

// Complaint returns the terms every complaint event carries, and whether p is a complaint event.
func Complaint(p Payload) (ComplaintTerms, bool) {
	if c, ok := p.(interface{ complaintTerms() ComplaintTerms }); ok {
		return c.complaintTerms(), true
	}
	return ComplaintTerms{}, false
}

func (t ComplaintTerms) complaintTerms() ComplaintTerms { return t }

// Metadata travels with every event: who caused it and why, for tracing and for idempotency checks.
type Metadata struct {
	SchemaVersion int    `json:"schema_version"`
	CorrelationID string `json:"correlation_id,omitempty"` // the payment id for workflow events, else the request id
	CausationID   string `json:"causation_id,omitempty"`   // the event id that caused this one (workflow steps)
	RequestID     string `json:"request_id,omitempty"`
	ClientID      string `json:"client_id,omitempty"`
	// Fingerprint is the SHA-256 of the canonical request that produced the event (client commands only),
	// so that a repeated idempotency key with a different request can be told apart.
	Fingerprint string `json:"fingerprint,omitempty"`
	// TraceParent is the W3C traceparent of the span that appended the event (the command's request, or
	// the workflow step's span), when it was traced: the workflow starts the next step's span under it, so
	// one payment's steps form one trace across the log. Optional; absent when tracing is off.
	TraceParent string `json:"traceparent,omitempty"`
}

// decoders is the one place an event type is registered for reading: its stored name and the struct its
// payload decodes into. Decode refuses a type that is not here. An upcaster (docs/events.md, "Versioning
// policy") goes in the type's entry.
var decoders = map[string]func(payload []byte) (Payload, error){
	AccountOpened:   decodeAs[AccountOpenedV1],
	FundsDeposited:  decodeAs[FundsDepositedV1],
	AccountDebited:  decodeAs[AccountDebitedV1],
	DebitRejected:   decodeAs[DebitRejectedV1],
	AccountCredited: decodeAs[AccountCreditedV1],
	DebitReversed:   decodeAs[DebitReversedV1],

	PaymentInitiated: decodeAs[PaymentInitiatedV1],
	PaymentCompleted: decodeAs[PaymentCompletedV1],
	PaymentFailed:    decodeAs[PaymentFailedV1],

	RefundReserved:      decodeAs[RefundReservedV1],
	RefundInitiated:     decodeAs[RefundInitiatedV1],
	RefundDebited:       decodeAs[RefundDebitedV1],
	RefundDebitRejected: decodeAs[RefundDebitRejectedV1],
	RefundCredited:      decodeAs[RefundCreditedV1],
	RefundDebitReversed: decodeAs[RefundDebitReversedV1],
	RefundCompleted:     decodeAs[RefundCompletedV1],
	RefundFailed:        decodeAs[RefundFailedV1],
	RefundSettled:       decodeAs[RefundSettledV1],

	CollectRequested: decodeAs[CollectRequestedV1],
	CollectApproved:  decodeAs[CollectApprovedV1],
	CollectDeclined:  decodeAs[CollectDeclinedV1],
	CollectExpired:   decodeAs[CollectExpiredV1],

	FundsWithdrawn:     decodeAs[FundsWithdrawnV1],
	WithdrawalRejected: decodeAs[WithdrawalRejectedV1],
	SettlementDebited:  decodeAs[SettlementDebitedV1],
	SettlementCredited: decodeAs[SettlementCreditedV1],

	// Erasure (erasure.go).
	AccountErased:     decodeAs[AccountErasedV1],
	ComplaintRaised:   decodeAs[ComplaintRaisedV1],
	ComplaintResolved: decodeAs[ComplaintResolvedV1],

	ComplaintAccepted:      decodeAs[ComplaintAcceptedV1],
	ChargebackRaised:       decodeAs[ChargebackRaisedV1],
	ComplaintRefundRetried: decodeAs[ComplaintRefundRetriedV1],
}

// Decode turns a stored payload into its typed struct, by event type. The struct is returned by value, so
// that callers switch on value types.
func Decode(eventType string, payload []byte) (Payload, error) {
	decode, ok := decoders[eventType]
	if !ok {
		return nil, fmt.Errorf("unknown event type %q", eventType)
	}
	p, err := decode(payload)
	if err != nil {
		return nil, fmt.Errorf("decode %s payload: %w", eventType, err)
	}
	return p, nil
}

// decodeAs decodes a payload of the current shape of P.
func decodeAs[P Payload](payload []byte) (Payload, error) {
	var p P
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, err
	}
	return p, nil
}

// Time formats t as the API does: RFC 3339 in UTC.
func Time(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// SettlementStream is the aggregate id of shard shard of bank's settlement account: "settlement:" and the
// bank's handle and shard, a name no VPA can take (a VPA has no ':'). A bank's side is spread over shards so
// that its deposits and withdrawals do not queue on one stream's lock; an account always uses the shard its
// VPA hashes to (SettlementShard), and the bank's balance is the sum of every shard it ever used.
func SettlementStream(bank string, shard int) string {
	return fmt.Sprintf("settlement:%s:%02d", bank, shard)
}

// SettlementShard is the shard, of shards, that account vpa's movements use (FNV-1a of the VPA).
func SettlementShard(vpa string, shards int) int {
	if shards <= 1 {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(vpa); i++ {
		h ^= uint32(vpa[i])
		h *= 16777619
	}
	return int(h % uint32(shards))
}

// BankOf is the bank of an account: its VPA's handle ("okbank" of "alice@okbank").
func BankOf(vpa string) string {
	for i := len(vpa) - 1; i >= 0; i-- {
		if vpa[i] == '@' {
			return vpa[i+1:]
		}
	}
	return vpa
}
