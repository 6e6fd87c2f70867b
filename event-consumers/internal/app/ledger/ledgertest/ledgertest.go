// Package ledgertest writes double-entry books straight to the event store, for the tests of the ledger
// check and of the projections that read money's two sides: deposits and withdrawals with their settlement
// legs in one transaction (as the command service writes them), payments and refunds step by step, each
// step its own transaction, and the ways a payment can be left in flight. Only tests import it.
package ledgertest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/google/uuid"

	"upi/shared/contract/events"
	"upi/shared/contract/ids"
	"upi/shared/platform/eventstore"
)

// Shards is how many shards a bank's settlement account is spread over here.
const Shards = 4

// Books appends to a store.
type Books struct {
	store *eventstore.Store
}

// New returns books appending to store.
func New(store *eventstore.Store) *Books { return &Books{store: store} }

// balance is a stream's state for these books: the balance its last event recorded.
type balance struct {
	Opened  bool
	Balance int64
}

// balanceAgg folds any stream of money (an account, a settlement shard) by the balance its events record.
var balanceAgg = func(typ string) eventstore.Aggregate[balance] {
	return eventstore.Aggregate[balance]{Type: typ, Evolve: func(s balance, e eventstore.Event) (balance, error) {
		var p struct {
			After   *int64 `json:"balance_after_paise"`
			Balance *int64 `json:"balance_paise"`
		}
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			return s, err
		}
		s.Opened = true
		switch {
		case p.After != nil:
			s.Balance = *p.After
		case p.Balance != nil:
			s.Balance = *p.Balance
		}
		return s, nil
	}}
}

var (
	accountAgg    = balanceAgg(events.AggregateAccount)
	settlementAgg = balanceAgg(events.AggregateSettlement)
	paymentAgg    = balanceAgg(events.AggregatePayment)
	refundAgg     = balanceAgg(events.AggregateRefund)
)

// rrnSeq hands out RRNs unique within the test process.
var rrnSeq atomic.Int64

// RRN is a fresh 12-digit RRN.
func RRN() string { return fmt.Sprintf("612312%06d", rrnSeq.Add(1)%1_000_000) }

// SettlementOf is the settlement shard stream of vpa's movements.
func SettlementOf(vpa string) string {
	return events.SettlementStream(events.BankOf(vpa), events.SettlementShard(vpa, Shards))
}

// run executes ops as one group (one transaction) and returns the first op's events, or its error.
func (b *Books) run(ctx context.Context, op *eventstore.Op) ([]eventstore.Event, error) {
	out, err := b.store.ExecuteAll(ctx, []*eventstore.Op{op})
	if err == nil {
		err = out[0].Err
	}
	if err != nil {
		return nil, err
	}
	return out[0].Result.Events, nil
}

// on is an op appending what decide makes of stream's balance.
func on(agg eventstore.Aggregate[balance], stream string, decide func(s balance) eventstore.NewEvent) *eventstore.Op {
	return eventstore.NewOp(agg, stream, func(s balance, _ int, _ eventstore.Reads) ([]eventstore.NewEvent, error) {
		return []eventstore.NewEvent{decide(s)}, nil
	})
}

// Open opens an account owned by owner.
func (b *Books) Open(ctx context.Context, vpa, owner string) error {
	_, err := b.run(ctx, on(accountAgg, vpa, func(balance) eventstore.NewEvent {
		return eventstore.NewEvent{ID: uuid.New(), Type: events.AccountOpened,
			Data: events.AccountOpenedV1{VPA: vpa, HolderName: "Holder " + vpa, OwnerClientID: owner}}
	}))
	if err != nil {
		return fmt.Errorf("open %s: %w", vpa, err)
	}
	return nil
}

// Deposit credits vpa with amount from its bank: FundsDeposited and the shard's SettlementDebited in one
// transaction. It returns the events appended, the account's first.
func (b *Books) Deposit(ctx context.Context, vpa, reference string, amount int64) ([]eventstore.Event, error) {
	id := ids.Deposit(vpa, reference)
	stream := SettlementOf(vpa)
	op := on(accountAgg, vpa, func(s balance) eventstore.NewEvent {
		return eventstore.NewEvent{ID: id, Type: events.FundsDeposited, Data: events.FundsDepositedV1{VPA: vpa,
			AmountPaise: amount, Reference: reference, BalanceAfterPaise: s.Balance + amount, Settlement: stream}}
	})
	op.With = []*eventstore.Op{on(settlementAgg, stream, func(s balance) eventstore.NewEvent {
		return eventstore.NewEvent{ID: ids.SettlementLeg(id), Type: events.SettlementDebited,
			Data: events.SettlementDebitedV1{SettlementMove: events.SettlementMove{Bank: events.BankOf(vpa), VPA: vpa,
				Leg: id.String(), AmountPaise: amount, BalanceAfterPaise: s.Balance - amount}}}
	})}
	evs, err := b.run(ctx, op)
	if err != nil {
		return nil, fmt.Errorf("deposit into %s: %w", vpa, err)
	}
	return evs, nil
}

// Withdrawal is a withdrawal as the books decided it.
type Withdrawal struct {
	ID     uuid.UUID
	RRN    string // "" when rejected
	Events []eventstore.Event
}

// Withdraw takes amount out of vpa to its bank, as the command service decides a withdrawal: FundsWithdrawn
// and the shard's SettlementCredited in one transaction, or, when the balance is too small, only
// WithdrawalRejected (INSUFFICIENT_FUNDS).
func (b *Books) Withdraw(ctx context.Context, vpa, client, reference string, amount int64) (Withdrawal, error) {
	return b.WithdrawRRN(ctx, vpa, client, reference, amount, RRN())
}

// WithdrawRRN is Withdraw giving the withdrawal rrn.
func (b *Books) WithdrawRRN(ctx context.Context, vpa, client, reference string, amount int64, rrn string) (Withdrawal, error) {
	w := Withdrawal{ID: uuid.New()}
	stream := SettlementOf(vpa)
	paid := false
	op := on(accountAgg, vpa, func(s balance) eventstore.NewEvent {
		if s.Balance < amount {
			return eventstore.NewEvent{ID: w.ID, Type: events.WithdrawalRejected, Data: events.WithdrawalRejectedV1{
				WithdrawalID: w.ID.String(), VPA: vpa, AmountPaise: amount, Reference: reference,
				Code: events.CodeInsufficientFunds, BalancePaise: s.Balance, ClientID: client}}
		}
		paid = true
		return eventstore.NewEvent{ID: w.ID, Type: events.FundsWithdrawn, Data: events.FundsWithdrawnV1{
			WithdrawalID: w.ID.String(), VPA: vpa, AmountPaise: amount, Reference: reference,
			BalanceAfterPaise: s.Balance - amount, RRN: rrn, Settlement: stream, ClientID: client}}
	})
	leg := eventstore.NewOp(settlementAgg, stream, func(s balance, _ int, _ eventstore.Reads) ([]eventstore.NewEvent, error) {
		if !paid {
			return nil, nil // a rejection moves no money: no leg
		}
		return []eventstore.NewEvent{{ID: ids.SettlementLeg(w.ID), Type: events.SettlementCredited,
			Data: events.SettlementCreditedV1{SettlementMove: events.SettlementMove{Bank: events.BankOf(vpa), VPA: vpa,
				Leg: w.ID.String(), AmountPaise: amount, BalanceAfterPaise: s.Balance + amount}}}}, nil
	})
	op.With = []*eventstore.Op{leg}
	evs, err := b.run(ctx, op)
	if err != nil {
		return w, fmt.Errorf("withdraw from %s: %w", vpa, err)
	}
	if paid {
		w.RRN = rrn
	}
	w.Events = evs
	return w, nil
}

// Until says how far a payment or a refund goes.
type Until int

const (
	Completed Until = iota // debited, credited, completed
	Reversed               // debited, reversed, failed
	InFlight               // debited, nothing after: its money is in transit
	Rejected               // the debit rejected for want of funds, failed
)

// Pay runs a payment of amount from payer to payee until the given point, each step its own transaction,
// and returns its id.
func (b *Books) Pay(ctx context.Context, payer, payee string, amount int64, until Until) (string, error) {
	id := uuid.New()
	pid := id.String()
	step := func(op *eventstore.Op) error {
		_, err := b.run(ctx, op)
		if err != nil {
			return fmt.Errorf("payment %s: %w", pid, err)
		}
		return nil
	}
	onPayment := func(evType string, data events.Payload) *eventstore.Op {
		return on(paymentAgg, pid, func(balance) eventstore.NewEvent {
			return eventstore.NewEvent{ID: uuid.New(), Type: evType, Data: data}
		})
	}
	if err := step(onPayment(events.PaymentInitiated, events.PaymentInitiatedV1{PaymentID: pid, PayerVPA: payer,
		PayeeVPA: payee, AmountPaise: amount, ClientID: "c"})); err != nil {
		return "", err
	}
	if until == Rejected {
		if err := step(on(accountAgg, payer, func(s balance) eventstore.NewEvent {
			return eventstore.NewEvent{ID: ids.StepEvent(id, "debit"), Type: events.DebitRejected, Data: events.DebitRejectedV1{
				VPA: payer, PaymentID: pid, AmountPaise: amount, Code: events.CodeInsufficientFunds, BalancePaise: s.Balance}}
		})); err != nil {
			return "", err
		}
		return pid, step(onPayment(events.PaymentFailed, events.PaymentFailedV1{PaymentID: pid, Code: events.CodeInsufficientFunds}))
	}
	if err := step(on(accountAgg, payer, func(s balance) eventstore.NewEvent {
		return eventstore.NewEvent{ID: ids.StepEvent(id, "debit"), Type: events.AccountDebited, Data: events.AccountDebitedV1{
			VPA: payer, PaymentID: pid, AmountPaise: amount, CounterpartyVPA: payee, BalanceAfterPaise: s.Balance - amount,
			RRN: RRN()}}
	})); err != nil {
		return "", err
	}
	switch until {
	case InFlight:
		return pid, nil
	case Reversed:
		if err := step(on(accountAgg, payer, func(s balance) eventstore.NewEvent {
			return eventstore.NewEvent{ID: ids.StepEvent(id, "settle"), Type: events.DebitReversed, Data: events.DebitReversedV1{
				VPA: payer, PaymentID: pid, AmountPaise: amount, CounterpartyVPA: payee, Code: events.CodePayeeUnavailable,
				BalanceAfterPaise: s.Balance + amount}}
		})); err != nil {
			return "", err
		}
		return pid, step(onPayment(events.PaymentFailed, events.PaymentFailedV1{PaymentID: pid, Code: events.CodePayeeUnavailable}))
	}
	if err := step(on(accountAgg, payee, func(s balance) eventstore.NewEvent {
		return eventstore.NewEvent{ID: ids.StepEvent(id, "settle"), Type: events.AccountCredited, Data: events.AccountCreditedV1{
			VPA: payee, PaymentID: pid, AmountPaise: amount, CounterpartyVPA: payer, BalanceAfterPaise: s.Balance + amount}}
	})); err != nil {
		return "", err
	}
	return pid, step(onPayment(events.PaymentCompleted, events.PaymentCompletedV1{PaymentID: pid}))
}

// Refund refunds amount of a completed payment from payer to payee (the payment's), from its payee back to
// its payer, until the given point (Completed or InFlight), and returns the refund's id.
func (b *Books) Refund(ctx context.Context, paymentID, payer, payee string, amount int64, until Until) (string, error) {
	id := uuid.New()
	terms := events.RefundTerms{RefundID: id.String(), PaymentID: paymentID, PayerVPA: payer, PayeeVPA: payee, AmountPaise: amount}
	step := func(op *eventstore.Op) error {
		_, err := b.run(ctx, op)
		if err != nil {
			return fmt.Errorf("refund %s: %w", id, err)
		}
		return nil
	}
	fixed := func(agg eventstore.Aggregate[balance], stream, evType string, data events.Payload) *eventstore.Op {
		return on(agg, stream, func(balance) eventstore.NewEvent {
			return eventstore.NewEvent{ID: uuid.New(), Type: evType, Data: data}
		})
	}
	if err := step(fixed(paymentAgg, paymentID, events.RefundReserved, events.RefundReservedV1{RefundTerms: terms,
		Reason: "r", ClientID: "c", UPITxnID: "UPI" + id.String()})); err != nil {
		return "", err
	}
	if err := step(fixed(refundAgg, id.String(), events.RefundInitiated, events.RefundInitiatedV1{RefundTerms: terms,
		Reason: "r", ClientID: "c", UPITxnID: "UPI" + id.String()})); err != nil {
		return "", err
	}
	if err := step(on(accountAgg, payee, func(s balance) eventstore.NewEvent {
		return eventstore.NewEvent{ID: ids.StepEvent(id, "debit"), Type: events.RefundDebited, Data: events.RefundDebitedV1{
			RefundTerms: terms, VPA: payee, BalanceAfterPaise: s.Balance - amount, RRN: RRN()}}
	})); err != nil {
		return "", err
	}
	if until == InFlight {
		return id.String(), nil
	}
	if err := step(on(accountAgg, payer, func(s balance) eventstore.NewEvent {
		return eventstore.NewEvent{ID: ids.StepEvent(id, "settle"), Type: events.RefundCredited, Data: events.RefundCreditedV1{
			RefundTerms: terms, VPA: payer, BalanceAfterPaise: s.Balance + amount}}
	})); err != nil {
		return "", err
	}
	if err := step(fixed(refundAgg, id.String(), events.RefundCompleted, events.RefundCompletedV1{RefundTerms: terms})); err != nil {
		return "", err
	}
	return id.String(), step(fixed(paymentAgg, paymentID, events.RefundSettled, events.RefundSettledV1{RefundTerms: terms,
		Status: events.RefundStatusCompleted}))
}
