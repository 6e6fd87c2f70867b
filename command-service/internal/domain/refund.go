package domain

import (
	"fmt"
	"maps"
	"time"

	"upi/shared/contract/events"
	"upi/shared/contract/money"
)

// RequestRefund is the command to reserve part of a payment for a refund. The caller has checked that
// the client owns the payment's payee.
type RequestRefund struct {
	ID     string
	Amount money.Amount
	Reason string
	Client string
	// UPITxnID is the refund's UPI transaction id; At the time of the decision; Window how long after its
	// initiation a payment may be refunded.
	UPITxnID string
	At       time.Time
	Window   time.Duration
	// ComplaintID names the dispute the refund settles; Chargeback marks a chargeback's refund.
	ComplaintID string
	Chargeback  bool
}

// ReserveRefund reserves the refund's amount on the payment. It is decided under the payment's lock, so
// completed and pending refunds together never pass the payment's amount, however many arrive at once.
func (p Payment) ReserveRefund(cmd RequestRefund) (events.RefundReservedV1, error) {
	switch {
	case !p.Initiated():
		return events.RefundReservedV1{}, ErrPaymentNotFound
	case p.PayeeType != events.AccountEntity:
		return events.RefundReservedV1{}, ErrRefundNotAllowed
	case p.Status != StatusCompleted:
		return events.RefundReservedV1{}, ErrPaymentNotCompleted
	case cmd.Window > 0 && cmd.At.Sub(p.CreatedAt) > cmd.Window:
		return events.RefundReservedV1{}, ErrRefundWindowClosed
	case cmd.Amount.IsZero():
		return events.RefundReservedV1{}, ErrInvalidAmount
	}
	if _, taken := p.PendingRefunds[cmd.ID]; taken {
		return events.RefundReservedV1{}, fmt.Errorf("%w: refund %s reserved twice", ErrCorruptStream, cmd.ID)
	}
	if p.RefundedPaise+p.pendingRefunds()+cmd.Amount.Paise() > p.Amount {
		return events.RefundReservedV1{}, ErrRefundExceeds
	}
	return events.RefundReservedV1{RefundTerms: events.RefundTerms{RefundID: cmd.ID, PaymentID: p.ID,
		PayerVPA: p.Payer, PayeeVPA: p.Payee, AmountPaise: int64(cmd.Amount.Paise())},
		Reason: cmd.Reason, ClientID: cmd.Client, UPITxnID: cmd.UPITxnID, ComplaintID: cmd.ComplaintID,
		Chargeback: cmd.Chargeback}, nil
}

// SettleRefund records a refund's outcome on the payment: completed, it counts as refunded; failed, its
// reservation is released.
func (p Payment) SettleRefund(refundID, status, code string) (events.RefundSettledV1, error) {
	amount, pending := p.PendingRefunds[refundID]
	if !pending {
		return events.RefundSettledV1{}, fmt.Errorf("%w: refund %s of payment %s", ErrRefundNotFound, refundID, p.ID)
	}
	return events.RefundSettledV1{RefundTerms: events.RefundTerms{RefundID: refundID, PaymentID: p.ID,
		PayerVPA: p.Payer, PayeeVPA: p.Payee, AmountPaise: int64(amount)}, Status: status, Code: code}, nil
}

func (p Payment) pendingRefunds() money.Paise {
	var sum money.Paise
	for _, a := range p.PendingRefunds {
		sum += a
	}
	return sum
}

// evolveRefund folds a refund event of the payment's stream. The map of pending refunds is shared with
// earlier states (the event store caches them), so it is copied, never written in place.
func (p Payment) evolveRefund(e events.Payload) (Payment, error) {
	if p.Status != StatusCompleted {
		return p, fmt.Errorf("%w: %s on a %q payment", ErrCorruptStream, e.EventType(), p.Status)
	}
	pending := maps.Clone(p.PendingRefunds)
	if pending == nil {
		pending = map[string]money.Paise{}
	}
	switch e := e.(type) {
	case events.RefundReservedV1:
		if _, dup := pending[e.RefundID]; dup {
			return p, fmt.Errorf("%w: refund %s reserved twice", ErrCorruptStream, e.RefundID)
		}
		pending[e.RefundID] = money.Paise(e.AmountPaise)
	case events.RefundSettledV1:
		amount, ok := pending[e.RefundID]
		if !ok {
			return p, fmt.Errorf("%w: refund %s settled without a reservation", ErrCorruptStream, e.RefundID)
		}
		delete(pending, e.RefundID)
		if e.Status == events.RefundStatusCompleted {
			p.RefundedPaise += amount
		}
	}
	p.PendingRefunds = pending
	if p.RefundedPaise+p.pendingRefunds() > p.Amount {
		return p, fmt.Errorf("%w: refunds of payment %s pass its amount", ErrCorruptStream, p.ID)
	}
	return p, nil
}

// Refund is the state of one refund stream (keyed by the refund id).
type Refund struct {
	events.RefundTerms
	Status      string
	FailureCode string
}

// Initiated reports whether the refund's stream was opened.
func (r Refund) Initiated() bool { return r.Status != "" }

// Evolve folds one event of the refund's stream.
func (r Refund) Evolve(e events.Payload) (Refund, error) {
	switch e := e.(type) {
	case events.RefundInitiatedV1:
		if r.Initiated() {
			return r, fmt.Errorf("%w: refund %s initiated twice", ErrCorruptStream, e.RefundID)
		}
		return Refund{RefundTerms: e.RefundTerms, Status: StatusPending}, nil
	case events.RefundCompletedV1:
		if r.Status != StatusPending {
			return r, fmt.Errorf("%w: RefundCompleted on a %q refund", ErrCorruptStream, r.Status)
		}
		r.Status = StatusCompleted
	case events.RefundFailedV1:
		if r.Status != StatusPending {
			return r, fmt.Errorf("%w: RefundFailed on a %q refund", ErrCorruptStream, r.Status)
		}
		r.Status, r.FailureCode = StatusFailed, e.Code
	default:
		return r, fmt.Errorf("%w: %s on a refund", ErrCorruptStream, e.EventType())
	}
	return r, nil
}

// Open starts the refund's stream from its reservation.
func (r Refund) Open(res events.RefundReservedV1) (events.RefundInitiatedV1, error) {
	if r.Initiated() {
		return events.RefundInitiatedV1{}, fmt.Errorf("%w: refund %s already open", ErrCorruptStream, res.RefundID)
	}
	return events.RefundInitiatedV1{RefundTerms: res.RefundTerms, Reason: res.Reason, ClientID: res.ClientID,
		UPITxnID: res.UPITxnID, ComplaintID: res.ComplaintID, Chargeback: res.Chargeback}, nil
}

// Complete ends a refund whose payer was credited.
func (r Refund) Complete() (events.RefundCompletedV1, error) {
	if err := r.open(); err != nil {
		return events.RefundCompletedV1{}, err
	}
	return events.RefundCompletedV1{RefundTerms: r.RefundTerms}, nil
}

// Fail ends a refund with no money moved.
func (r Refund) Fail(code, reason string) (events.RefundFailedV1, error) {
	if err := r.open(); err != nil {
		return events.RefundFailedV1{}, err
	}
	return events.RefundFailedV1{RefundTerms: r.RefundTerms, Code: code, Reason: reason}, nil
}

func (r Refund) open() error {
	if !r.Initiated() {
		return ErrRefundNotFound
	}
	if r.Status != StatusPending {
		return ErrRefundTerminal
	}
	return nil
}

// RefundDebit takes a refund's amount from the payment's payee (this account), or records that its balance
// does not cover it. A refund is not subject to the payer limits (they protect a payer from its own
// spending; a refund returns money received) and does not enter the account's rolling window.
func (a Account) RefundDebit(t events.RefundTerms, nextRRN func() (string, error)) (events.Payload, error) {
	if err := a.refundParty(t, t.PayeeVPA); err != nil {
		return nil, err
	}
	amount := money.Paise(t.AmountPaise)
	if a.Closed {
		return events.RefundDebitRejectedV1{RefundTerms: t, VPA: a.VPA, Code: events.CodeAccountClosed,
			BalancePaise: int64(a.Balance)}, nil
	}
	if a.Balance < amount {
		return events.RefundDebitRejectedV1{RefundTerms: t, VPA: a.VPA, Code: events.CodeInsufficientFunds,
			BalancePaise: int64(a.Balance)}, nil
	}
	rrn, err := nextRRN()
	if err != nil {
		return nil, err
	}
	return events.RefundDebitedV1{RefundTerms: t, VPA: a.VPA, BalanceAfterPaise: int64(a.Balance - amount), RRN: rrn}, nil
}

// RefundRejectDebit burns the refund's debit: no later debit of it can move money.
func (a Account) RefundRejectDebit(t events.RefundTerms, code string) (events.RefundDebitRejectedV1, error) {
	if err := a.refundParty(t, t.PayeeVPA); err != nil {
		return events.RefundDebitRejectedV1{}, err
	}
	return events.RefundDebitRejectedV1{RefundTerms: t, VPA: a.VPA, Code: code, BalancePaise: int64(a.Balance)}, nil
}

// RefundCredit gives the refund's amount to the payment's payer (this account).
func (a Account) RefundCredit(t events.RefundTerms) (events.RefundCreditedV1, error) {
	if err := a.refundParty(t, t.PayerVPA); err != nil {
		return events.RefundCreditedV1{}, err
	}
	if a.Closed {
		return events.RefundCreditedV1{}, ErrAccountClosed
	}
	after, err := a.credited(money.Paise(t.AmountPaise))
	if err != nil {
		return events.RefundCreditedV1{}, err
	}
	return events.RefundCreditedV1{RefundTerms: t, VPA: a.VPA, BalanceAfterPaise: int64(after)}, nil
}

// RefundReverse gives the payee back a refund debit whose credit could not be made.
func (a Account) RefundReverse(t events.RefundTerms, code string) (events.RefundDebitReversedV1, error) {
	if err := a.refundParty(t, t.PayeeVPA); err != nil {
		return events.RefundDebitReversedV1{}, err
	}
	after, err := a.credited(money.Paise(t.AmountPaise))
	if err != nil {
		return events.RefundDebitReversedV1{}, err
	}
	return events.RefundDebitReversedV1{RefundTerms: t, VPA: a.VPA, Code: code, BalanceAfterPaise: int64(after)}, nil
}

func (a Account) refundParty(t events.RefundTerms, party string) error {
	if !a.Opened {
		return ErrAccountNotFound
	}
	if a.VPA != party {
		return fmt.Errorf("%w: %s is not %s of refund %s", ErrWrongAccount, a.VPA, party, t.RefundID)
	}
	if t.AmountPaise <= 0 {
		return ErrInvalidAmount
	}
	return nil
}
