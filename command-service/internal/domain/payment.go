package domain

import (
	"fmt"
	"time"

	"upi/shared/contract/events"
	"upi/shared/contract/money"
	"upi/shared/contract/vpa"
)

// Payment statuses. The zero status is a payment that was never initiated.
const (
	StatusPending   = "PENDING"
	StatusCompleted = "COMPLETED"
	StatusFailed    = "FAILED"
)

// Payment is the state of one payment stream (keyed by the payment id).
type Payment struct {
	ID          string      `json:"payment_id"`
	Payer       string      `json:"payer_vpa"`
	Payee       string      `json:"payee_vpa"`
	Amount      money.Paise `json:"amount_paise"`
	Note        string      `json:"note"`
	Client      string      `json:"client_id"`
	Status      string      `json:"status"`
	FailureCode string      `json:"failure_code"`
	UPITxnID    string      `json:"upi_txn_id"`
	// PayeeType is the payee's kind at initiation ("" for payments initiated before kinds: a PERSON).
	PayeeType string    `json:"payee_type"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// RefundedPaise sums the completed refunds; PendingRefunds holds the reservations of refunds not yet
	// settled, by refund id. Shared between states: replaced, never written in place.
	RefundedPaise  money.Paise            `json:"refunded_paise"`
	PendingRefunds map[string]money.Paise `json:"pending_refunds,omitempty"`
}

// Initiated reports whether the payment exists.
func (p Payment) Initiated() bool { return p.Status != "" }

// Terminal reports whether the payment has completed or failed; nothing moves it on from there.
func (p Payment) Terminal() bool { return p.Status == StatusCompleted || p.Status == StatusFailed }

// Evolve folds one event, appended at `at`, into the payment.
func (p Payment) Evolve(e events.Payload, at time.Time) (Payment, error) {
	switch e := e.(type) {
	case events.PaymentInitiatedV1:
		if p.Initiated() {
			return p, fmt.Errorf("%w: payment %s initiated twice", ErrCorruptStream, e.PaymentID)
		}
		p = Payment{ID: e.PaymentID, Payer: e.PayerVPA, Payee: e.PayeeVPA, Amount: money.Paise(e.AmountPaise),
			Note: e.Note, Client: e.ClientID, Status: StatusPending, CreatedAt: at, UPITxnID: e.UPITxnID,
			PayeeType: e.PayeeType}
	case events.PaymentCompletedV1:
		if p.Status != StatusPending {
			return p, fmt.Errorf("%w: PaymentCompleted on a %q payment", ErrCorruptStream, p.Status)
		}
		p.Status = StatusCompleted
	case events.PaymentFailedV1:
		if p.Status != StatusPending {
			return p, fmt.Errorf("%w: PaymentFailed on a %q payment", ErrCorruptStream, p.Status)
		}
		p.Status, p.FailureCode = StatusFailed, e.Code
	case events.RefundReservedV1, events.RefundSettledV1:
		// A refund does not change when the payment itself was last updated.
		return p.evolveRefund(e)
	default:
		return p, fmt.Errorf("%w: %s on a payment", ErrCorruptStream, e.EventType())
	}
	p.UpdatedAt = at
	return p, nil
}

// InitiatePayment is the command to start a payment. The caller has checked that the payer is the
// client's and that the payee exists; the payment records the intent, money moves in the workflow.
type InitiatePayment struct {
	ID     string
	Payer  vpa.VPA
	Payee  vpa.VPA
	Amount money.Amount
	Note   string
	Client string
	// UPITxnID is the payment's UPI transaction id; PayeeType the payee's kind, from its opening.
	UPITxnID  string
	PayeeType string
}

// Initiate starts the payment.
func (p Payment) Initiate(cmd InitiatePayment) (events.PaymentInitiatedV1, error) {
	if p.Initiated() {
		return events.PaymentInitiatedV1{}, ErrPaymentExists
	}
	if cmd.Amount.IsZero() {
		return events.PaymentInitiatedV1{}, ErrInvalidAmount
	}
	if cmd.Payer == cmd.Payee {
		return events.PaymentInitiatedV1{}, fmt.Errorf("%w: payer and payee are both %s", ErrWrongAccount, cmd.Payer)
	}
	return events.PaymentInitiatedV1{PaymentID: cmd.ID, PayerVPA: cmd.Payer.String(), PayeeVPA: cmd.Payee.String(),
		AmountPaise: int64(cmd.Amount.Paise()), Note: cmd.Note, ClientID: cmd.Client, UPITxnID: cmd.UPITxnID,
		PayeeType: cmd.PayeeType}, nil
}

// Complete ends a payment whose payee was credited.
func (p Payment) Complete() (events.PaymentCompletedV1, error) {
	if err := p.open(); err != nil {
		return events.PaymentCompletedV1{}, err
	}
	return events.PaymentCompletedV1{PaymentID: p.ID}, nil
}

// Fail ends a payment with no money moved.
func (p Payment) Fail(code, reason string) (events.PaymentFailedV1, error) {
	if err := p.open(); err != nil {
		return events.PaymentFailedV1{}, err
	}
	return events.PaymentFailedV1{PaymentID: p.ID, Code: code, Reason: reason}, nil
}

func (p Payment) open() error {
	if !p.Initiated() {
		return ErrPaymentNotFound
	}
	if p.Terminal() {
		return ErrPaymentTerminal
	}
	return nil
}
