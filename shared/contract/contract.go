// Package contract is the JSON of the public HTTP contract (docs/openapi.yaml) and of the internal calls
// between services: request bodies and their validation, resource bodies, and the headers services pass
// each other. The gateway validates with it at the edge; the command service validates again with the same
// code, so the two can never disagree on what a valid request is.
package contract

import (
	"encoding/json"
	"time"

	"upi/shared/contract/events"
	"upi/shared/contract/money"
)

// Headers between clients, the gateway and the services.
const (
	HeaderIdempotencyKey     = "Idempotency-Key"
	HeaderIdempotentReplayed = "Idempotent-Replayed"
	HeaderProjectionPosition = "X-Projection-Position"
	HeaderProjectionStale    = "X-Projection-Stale"
	// HeaderClientID names the authenticated client. Only the gateway sets it (always overwriting what a
	// client sent); the command and query services refuse requests without it.
	HeaderClientID = "X-Client-ID"
)

// MaxBodyBytes is the largest request body accepted.
const MaxBodyBytes = 64 << 10

// Limits are the configured amount limits.
type Limits struct {
	PaymentMaxPaise money.Paise
	DepositMaxPaise money.Paise
}

// Account is the account resource.
type Account struct {
	VPA          string `json:"vpa"`
	HolderName   string `json:"holder_name"`
	Type         string `json:"type"`
	MCC          string `json:"mcc,omitempty"`
	Status       string `json:"status"`
	BalancePaise int64  `json:"balance_paise"`
	Currency     string `json:"currency"`
	CreatedAt    string `json:"created_at"`
	UpdatedAt    string `json:"updated_at"`
	Position     string `json:"position"`
}

// AccountStatusActive is the only account status today.
const AccountStatusActive = "ACTIVE"

// Account types.
const (
	AccountPerson = events.AccountPerson
	AccountEntity = events.AccountEntity
)

// VPALookup is the answer of a payee lookup: what a payer is shown before paying, and nothing else.
type VPALookup struct {
	VPA  string `json:"vpa"`
	Name string `json:"name"`
	Type string `json:"type"`
	MCC  string `json:"mcc,omitempty"`
}

// Balance is the balance resource.
type Balance struct {
	VPA          string `json:"vpa"`
	BalancePaise int64  `json:"balance_paise"`
	Currency     string `json:"currency"`
	Position     string `json:"position"`
}

// Deposit is the answer to a deposit.
type Deposit struct {
	VPA         string `json:"vpa"`
	AmountPaise int64  `json:"amount_paise"`
	Reference   string `json:"reference"`
	Position    string `json:"position"`
	CreatedAt   string `json:"created_at"`
}

// PathWithdrawals is where withdrawals are read: GET PathWithdrawals/{withdrawal_id}.
const PathWithdrawals = "/v1/withdrawals"

// Withdrawal is the withdrawal resource: money leaving an account for its bank. FailureCode and NPCICode
// are null unless it FAILED; RRN is absent on a failed one.
type Withdrawal struct {
	WithdrawalID string  `json:"withdrawal_id"`
	VPA          string  `json:"vpa"`
	AmountPaise  int64   `json:"amount_paise"`
	Reference    string  `json:"reference"`
	Status       string  `json:"status"`
	FailureCode  *string `json:"failure_code"`
	NPCICode     *string `json:"npci_code"`
	RRN          string  `json:"rrn,omitempty"`
	CreatedAt    string  `json:"created_at"`
	UpdatedAt    string  `json:"updated_at"`
	Position     string  `json:"position"`
}

// SettlementAccount is a bank's settlement account, as operators see it: the bank's side of every deposit
// and withdrawal of the accounts on its handle. Negative: the bank owes its account holders that much.
type SettlementAccount struct {
	Bank         string `json:"bank"`
	BalancePaise int64  `json:"balance_paise"`
	Deposits     int64  `json:"deposits"`
	Withdrawals  int64  `json:"withdrawals"`
	UpdatedAt    string `json:"updated_at"`
	Position     string `json:"position"`
}

// SettlementAccountList is the answer of GET /v1/ops/settlement-accounts.
type SettlementAccountList struct {
	Items []SettlementAccount `json:"items"`
}

// Payment statuses.
const (
	PaymentPending   = "PENDING"
	PaymentCompleted = "COMPLETED"
	PaymentFailed    = "FAILED"
)

// Payment is the payment resource. FailureCode and NPCICode are null unless the payment FAILED; RRN is
// absent until the payer is debited.
type Payment struct {
	PaymentID   string  `json:"payment_id"`
	UPITxnID    string  `json:"upi_txn_id"`
	PayerVPA    string  `json:"payer_vpa"`
	PayeeVPA    string  `json:"payee_vpa"`
	AmountPaise int64   `json:"amount_paise"`
	Currency    string  `json:"currency"`
	Note        string  `json:"note"`
	Status      string  `json:"status"`
	FailureCode *string `json:"failure_code"`
	NPCICode    *string `json:"npci_code"`
	RRN         string  `json:"rrn,omitempty"`
	// RefundedPaise is the sum of the payment's completed refunds.
	RefundedPaise int64 `json:"refunded_paise"`
	// MerchantReference is the tr of the intent or QR the payment was made by; MandateID the mandate whose
	// debit it is. Absent on other payments.
	MerchantReference string `json:"merchant_reference,omitempty"`
	MandateID         string `json:"mandate_id,omitempty"`
	CreatedAt         string `json:"created_at"`
	UpdatedAt         string `json:"updated_at"`
	Position          string `json:"position"`
}

// Refund is the refund resource. FailureCode and NPCICode are null unless it FAILED; RRN is absent until
// the payee is debited.
type Refund struct {
	RefundID    string  `json:"refund_id"`
	PaymentID   string  `json:"payment_id"`
	UPITxnID    string  `json:"upi_txn_id"`
	AmountPaise int64   `json:"amount_paise"`
	Reason      string  `json:"reason"`
	Status      string  `json:"status"`
	FailureCode *string `json:"failure_code"`
	NPCICode    *string `json:"npci_code"`
	RRN         string  `json:"rrn,omitempty"`
	CreatedAt   string  `json:"created_at"`
	UpdatedAt   string  `json:"updated_at"`
	Position    string  `json:"position"`
}

// Collect request statuses.
const (
	CollectPending  = "PENDING"
	CollectApproved = "APPROVED"
	CollectDeclined = "DECLINED"
	CollectExpired  = "EXPIRED"
)

// Collect is the collect request resource. PaymentID is null until it is APPROVED; NPCICode is ZA once
// DECLINED, U69 once EXPIRED, else null.
type Collect struct {
	CollectID   string  `json:"collect_id"`
	PayeeVPA    string  `json:"payee_vpa"`
	PayerVPA    string  `json:"payer_vpa"`
	AmountPaise int64   `json:"amount_paise"`
	Note        string  `json:"note"`
	Status      string  `json:"status"`
	PaymentID   *string `json:"payment_id"`
	NPCICode    *string `json:"npci_code"`
	ExpiresAt   string  `json:"expires_at"`
	CreatedAt   string  `json:"created_at"`
	UpdatedAt   string  `json:"updated_at"`
	Position    string  `json:"position"`
}

// CollectPage is one page of the collect requests addressed to a payer, newest first.
type CollectPage struct {
	Items      []Collect `json:"items"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

// PaymentList is the answer of a payment search (GET /v1/payments?rrn=).
type PaymentList struct {
	Items []Payment `json:"items"`
}

// Transaction kinds: one row per money movement on an account.
const (
	KindDeposit  = "DEPOSIT"
	KindDebit    = "DEBIT"
	KindCredit   = "CREDIT"
	KindReversal = "REVERSAL"
	// A refund debits the payment's payee and credits its payer; a refund debit given back (its credit
	// impossible) is a REFUND_REVERSAL.
	KindRefundDebit    = "REFUND_DEBIT"
	KindRefundCredit   = "REFUND_CREDIT"
	KindRefundReversal = "REFUND_REVERSAL"
	// Money leaving to the account's bank.
	KindWithdrawal = "WITHDRAWAL"
)

// Transaction is one money movement on an account.
type Transaction struct {
	Kind              string `json:"kind"`
	AmountPaise       int64  `json:"amount_paise"`
	BalanceAfterPaise int64  `json:"balance_after_paise"`
	PaymentID         string `json:"payment_id,omitempty"`
	RefundID          string `json:"refund_id,omitempty"`
	WithdrawalID      string `json:"withdrawal_id,omitempty"`
	CounterpartyVPA   string `json:"counterparty_vpa,omitempty"`
	Reference         string `json:"reference,omitempty"`
	RRN               string `json:"rrn,omitempty"`
	At                string `json:"at"`
	Position          string `json:"position"`
}

// TransactionPage is one page of an account's transactions, newest first.
type TransactionPage struct {
	Items      []Transaction `json:"items"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

// PaymentEvent is one entry of a payment's audit trail.
type PaymentEvent struct {
	EventType string          `json:"event_type"`
	At        string          `json:"at"`
	Position  string          `json:"position"`
	Data      json.RawMessage `json:"data"`
}

// PaymentEventPage is a payment's audit trail, oldest first.
type PaymentEventPage struct {
	Items []PaymentEvent `json:"items"`
}

// NPCICode is the NPCI reason code beside a failure code: nil when there is no failure code.
func NPCICode(failureCode *string) *string {
	if failureCode == nil {
		return nil
	}
	c := events.NPCICode(*failureCode)
	return &c
}

// Time formats t as every time in the API: RFC 3339 in UTC.
func Time(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
