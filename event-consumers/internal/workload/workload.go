// Package workload appends realistic event streams (accounts, deposits, payments that complete, fail for
// want of funds or are reversed) straight to the event store, with the same aggregates' rules as the
// command service, and keeps the expected outcome. Tests and benchmarks of the consumers use it so that
// they depend only on the event contract, not on the command service.
package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/google/uuid"

	"upi/shared/contract/events"
	"upi/shared/platform/eventstore"
)

// Bank appends events and remembers what the read models must end up showing.
type Bank struct {
	store *eventstore.Store

	mu       sync.Mutex
	balances map[string]int64  // vpa -> balance
	owners   map[string]string // vpa -> owner client
	statuses map[string]string // payment id -> COMPLETED | FAILED | PENDING
	moves    int               // money movements (account transaction rows)
}

// New returns a bank appending to store.
func New(store *eventstore.Store) *Bank {
	return &Bank{store: store, balances: map[string]int64{}, owners: map[string]string{}, statuses: map[string]string{}}
}

type account struct {
	Opened  bool
	Balance int64
}

var accountAgg = eventstore.Aggregate[account]{
	Type: events.AggregateAccount,
	Evolve: func(s account, e eventstore.Event) (account, error) {
		p, err := events.Decode(e.Type, e.Payload)
		if err != nil {
			return s, err
		}
		switch p := p.(type) {
		case events.AccountOpenedV1:
			s.Opened = true
		case events.FundsDepositedV1:
			s.Balance = p.BalanceAfterPaise
		case events.AccountDebitedV1:
			s.Balance = p.BalanceAfterPaise
		case events.AccountCreditedV1:
			s.Balance = p.BalanceAfterPaise
		case events.DebitReversedV1:
			s.Balance = p.BalanceAfterPaise
		}
		return s, nil
	},
}

func meta(correlation string) events.Metadata {
	return events.Metadata{SchemaVersion: events.SchemaVersion, CorrelationID: correlation}
}

// Open opens an account owned by owner.
func (b *Bank) Open(ctx context.Context, vpa, owner string) (eventstore.Position, error) {
	evs, err := b.store.Append(ctx, events.AggregateAccount, vpa, eventstore.NoStream, []eventstore.NewEvent{{
		ID: uuid.New(), Type: events.AccountOpened, Metadata: meta(""),
		Data: events.AccountOpenedV1{VPA: vpa, HolderName: "Holder " + vpa, OwnerClientID: owner},
	}})
	if err != nil {
		return eventstore.Start, fmt.Errorf("open %s: %w", vpa, err)
	}
	b.mu.Lock()
	b.owners[vpa] = owner
	b.balances[vpa] = 0
	b.mu.Unlock()
	return evs[0].Position, nil
}

// settlementAgg is a bank's settlement shard as the workload needs it: its balance.
var settlementAgg = eventstore.Aggregate[int64]{
	Type: events.AggregateSettlement,
	Evolve: func(balance int64, e eventstore.Event) (int64, error) {
		p, err := events.Decode(e.Type, e.Payload)
		if err != nil {
			return balance, err
		}
		switch p := p.(type) {
		case events.SettlementDebitedV1:
			return p.BalanceAfterPaise, nil
		case events.SettlementCreditedV1:
			return p.BalanceAfterPaise, nil
		}
		return balance, fmt.Errorf("%s on a settlement shard", e.Type)
	},
}

// Deposit credits amount to vpa from its bank, as the command service does: the account's FundsDeposited
// and the bank's SettlementDebited in one transaction.
func (b *Bank) Deposit(ctx context.Context, vpa string, amount int64) (eventstore.Position, error) {
	id := uuid.New()
	bank := events.BankOf(vpa)
	stream := events.SettlementStream(bank, events.SettlementShard(vpa, 4))
	credit := eventstore.NewOp(accountAgg, vpa, func(s account, _ int, _ eventstore.Reads) ([]eventstore.NewEvent, error) {
		if !s.Opened {
			return nil, errors.New("account not open")
		}
		return []eventstore.NewEvent{{ID: id, Type: events.FundsDeposited, Metadata: meta(""),
			Data: events.FundsDepositedV1{VPA: vpa, AmountPaise: amount, Reference: "ref-" + uuid.NewString()[:8],
				BalanceAfterPaise: s.Balance + amount, Settlement: stream}}}, nil
	})
	credit.With = []*eventstore.Op{eventstore.NewOp(settlementAgg, stream, func(balance int64, _ int, _ eventstore.Reads) ([]eventstore.NewEvent, error) {
		return []eventstore.NewEvent{{ID: uuid.NewSHA1(id, []byte("settlement")), Type: events.SettlementDebited,
			Metadata: meta(""), Data: events.SettlementDebitedV1{SettlementMove: events.SettlementMove{Bank: bank,
				VPA: vpa, Leg: id.String(), AmountPaise: amount, BalanceAfterPaise: balance - amount}}}}, nil
	})}
	out, err := b.store.ExecuteAll(ctx, []*eventstore.Op{credit})
	if err == nil {
		err = out[0].Err
	}
	if err != nil {
		return eventstore.Start, fmt.Errorf("deposit into %s: %w", vpa, err)
	}
	b.mu.Lock()
	b.balances[vpa] += amount
	b.moves++
	b.mu.Unlock()
	return out[0].Result.Events[len(out[0].Result.Events)-1].Position, nil
}

func (b *Bank) onAccount(ctx context.Context, vpa string, decide func(account) eventstore.NewEvent) (eventstore.Event, error) {
	res, err := eventstore.Execute(ctx, b.store, accountAgg, vpa, uuid.Nil, func(s account, _ int) ([]eventstore.NewEvent, error) {
		if !s.Opened {
			return nil, errors.New("account not open")
		}
		return []eventstore.NewEvent{decide(s)}, nil
	})
	if err != nil {
		return eventstore.Event{}, fmt.Errorf("account %s: %w", vpa, err)
	}
	return *res.Last(), nil
}

// Pay runs a whole payment: initiated, then debited and credited and completed; or rejected for want of
// funds and failed; or, when reverse is set, debited, reversed and failed. It returns the payment id and
// the position of its last event.
func (b *Bank) Pay(ctx context.Context, payer, payee string, amount int64, reverse bool) (string, eventstore.Position, error) {
	id := uuid.New()
	pid := id.String()
	b.mu.Lock()
	client := b.owners[payer]
	b.mu.Unlock()
	_, err := b.store.Append(ctx, events.AggregatePayment, pid, eventstore.NoStream, []eventstore.NewEvent{{
		ID: id, Type: events.PaymentInitiated, Metadata: meta(pid),
		Data: events.PaymentInitiatedV1{PaymentID: pid, PayerVPA: payer, PayeeVPA: payee, AmountPaise: amount,
			Note: "note", ClientID: client},
	}})
	if err != nil {
		return "", eventstore.Start, fmt.Errorf("initiate: %w", err)
	}
	b.mu.Lock()
	b.statuses[pid] = "PENDING"
	b.mu.Unlock()

	debited := false
	_, err = b.onAccount(ctx, payer, func(s account) eventstore.NewEvent {
		if s.Balance < amount {
			debited = false
			return eventstore.NewEvent{ID: uuid.New(), Type: events.DebitRejected, Metadata: meta(pid),
				Data: events.DebitRejectedV1{VPA: payer, PaymentID: pid, AmountPaise: amount,
					Code: events.CodeInsufficientFunds, BalancePaise: s.Balance}}
		}
		debited = true
		return eventstore.NewEvent{ID: uuid.New(), Type: events.AccountDebited, Metadata: meta(pid),
			Data: events.AccountDebitedV1{VPA: payer, PaymentID: pid, AmountPaise: amount, CounterpartyVPA: payee,
				BalanceAfterPaise: s.Balance - amount}}
	})
	if err != nil {
		return "", eventstore.Start, err
	}
	var closing eventstore.NewEvent
	switch {
	case !debited:
		closing = eventstore.NewEvent{ID: uuid.New(), Type: events.PaymentFailed, Metadata: meta(pid),
			Data: events.PaymentFailedV1{PaymentID: pid, Code: events.CodeInsufficientFunds}}
	case reverse:
		if _, err := b.onAccount(ctx, payer, func(s account) eventstore.NewEvent {
			return eventstore.NewEvent{ID: uuid.New(), Type: events.DebitReversed, Metadata: meta(pid),
				Data: events.DebitReversedV1{VPA: payer, PaymentID: pid, AmountPaise: amount, CounterpartyVPA: payee,
					Code: events.CodePayeeUnavailable, BalanceAfterPaise: s.Balance + amount}}
		}); err != nil {
			return "", eventstore.Start, err
		}
		closing = eventstore.NewEvent{ID: uuid.New(), Type: events.PaymentFailed, Metadata: meta(pid),
			Data: events.PaymentFailedV1{PaymentID: pid, Code: events.CodePayeeUnavailable}}
	default:
		if _, err := b.onAccount(ctx, payee, func(s account) eventstore.NewEvent {
			return eventstore.NewEvent{ID: uuid.New(), Type: events.AccountCredited, Metadata: meta(pid),
				Data: events.AccountCreditedV1{VPA: payee, PaymentID: pid, AmountPaise: amount, CounterpartyVPA: payer,
					BalanceAfterPaise: s.Balance + amount}}
		}); err != nil {
			return "", eventstore.Start, err
		}
		closing = eventstore.NewEvent{ID: uuid.New(), Type: events.PaymentCompleted, Metadata: meta(pid),
			Data: events.PaymentCompletedV1{PaymentID: pid}}
	}
	evs, err := b.store.Append(ctx, events.AggregatePayment, pid, 1, []eventstore.NewEvent{closing})
	if err != nil {
		return "", eventstore.Start, fmt.Errorf("close: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !debited:
		b.statuses[pid] = "FAILED"
	case reverse:
		b.statuses[pid] = "FAILED"
		b.moves += 2
	default:
		b.statuses[pid] = "COMPLETED"
		b.balances[payer] -= amount
		b.balances[payee] += amount
		b.moves += 2
	}
	return pid, evs[0].Position, nil
}

// Random runs n random operations over vpas (which must be open): deposits and payments of every outcome.
func (b *Bank) Random(ctx context.Context, rng *rand.Rand, vpas []string, n int) error {
	for range n {
		a := vpas[rng.IntN(len(vpas))]
		var err error
		switch r := rng.IntN(10); {
		case r < 3:
			_, err = b.Deposit(ctx, a, 1+rng.Int64N(10000))
		default:
			c := vpas[rng.IntN(len(vpas))]
			for c == a {
				c = vpas[rng.IntN(len(vpas))]
			}
			_, _, err = b.Pay(ctx, a, c, 1+rng.Int64N(8000), r == 9)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Expected is what the read models must show.
type Expected struct {
	Balances map[string]int64
	Owners   map[string]string
	Statuses map[string]string
	Moves    int
}

// Expected returns a copy of the expected outcome so far.
func (b *Bank) Expected() Expected {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := Expected{Balances: map[string]int64{}, Owners: map[string]string{}, Statuses: map[string]string{}, Moves: b.moves}
	for k, v := range b.balances {
		e.Balances[k] = v
	}
	for k, v := range b.owners {
		e.Owners[k] = v
	}
	for k, v := range b.statuses {
		e.Statuses[k] = v
	}
	return e
}
