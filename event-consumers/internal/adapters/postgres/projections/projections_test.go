package projections_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"upi/event-consumers/internal/adapters/postgres/projections"
	schedule "upi/event-consumers/internal/app/settlement"
	"upi/event-consumers/internal/runner"
	"upi/shared/contract/events"
	"upi/shared/platform/eventstore"
	"upi/testenv"
)

// gp hands out log positions to the events the cases are built from; parallel tests build theirs at once.
var gp atomic.Int64

func event(aggregate string, version int, payload events.Payload) eventstore.Event {
	gp := gp.Add(1)
	raw, _ := json.Marshal(payload)
	typ := events.AggregateAccount
	if strings.HasPrefix(payload.EventType(), "Payment") {
		typ = events.AggregatePayment
	}
	return eventstore.Event{Position: eventstore.Position{TxID: uint64(gp), GlobalPosition: gp}, ID: uuid.New(),
		AggregateID: aggregate, AggregateType: typ, Type: payload.EventType(), Version: version,
		Payload: raw, CreatedAt: time.Now()}
}

func opened(vpa string) eventstore.Event {
	return event(vpa, 1, events.AccountOpenedV1{VPA: vpa, HolderName: "H", OwnerClientID: "c"})
}

func deposit(vpa string, version int, amount, after int64) eventstore.Event {
	return event(vpa, version, events.FundsDepositedV1{VPA: vpa, AmountPaise: amount, Reference: "r", BalanceAfterPaise: after})
}

// apply applies batches in one rolled-back transaction and returns the first error.
func apply(t *testing.T, p runner.Projection, batches ...[]eventstore.Event) error {
	t.Helper()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, b := range batches {
		if err := p.Apply(ctx, tx, b); err != nil {
			return err
		}
	}
	return nil
}

// The projections refuse, naming the event, whatever does not follow the stream it belongs to.
func TestProjectionsRefuseEventsThatDoNotFollowTheirStream(t *testing.T) {
	t.Parallel()
	pid := uuid.NewString()
	initiated := event(pid, 1, events.PaymentInitiatedV1{PaymentID: pid, PayerVPA: "a@x", PayeeVPA: "b@x", AmountPaise: 5, ClientID: "c"})
	completed := event(pid, 2, events.PaymentCompletedV1{PaymentID: pid})
	sched := projections.Settlement{Schedule: schedule.Default(), Grace: time.Minute}
	cases := []struct {
		name    string
		p       runner.Projection
		batches [][]eventstore.Event
		want    string // "" for success
	}{
		{"a stream continued version by version", projections.Accounts{},
			[][]eventstore.Event{{opened("a@x"), deposit("a@x", 2, 5, 5)}, {deposit("a@x", 3, 7, 12)}}, ""},
		{"a version skipped within a batch", projections.Accounts{},
			[][]eventstore.Event{{opened("a@x"), deposit("a@x", 3, 5, 5)}}, "ordering violation"},
		{"a version skipped across batches", projections.Accounts{},
			[][]eventstore.Event{{opened("a@x"), deposit("a@x", 2, 5, 5)}, {deposit("a@x", 4, 7, 12)}}, "ordering violation"},
		{"an event applied twice", projections.Accounts{},
			[][]eventstore.Event{{opened("a@x"), deposit("a@x", 2, 5, 5)}, {deposit("a@x", 2, 5, 5)}}, "ordering violation"},
		{"an event of an account never opened", projections.Accounts{},
			[][]eventstore.Event{{deposit("a@x", 2, 5, 5)}}, "not open"},
		{"a balance that does not add up", projections.Accounts{},
			[][]eventstore.Event{{opened("a@x"), deposit("a@x", 2, 5, 5), deposit("a@x", 3, 5, 11)}}, "balance after is 10"},
		{"a stream opened twice", projections.Accounts{},
			[][]eventstore.Event{{opened("a@x")}, {opened("a@x")}}, "accounts_pkey"},
		{"a payment closed after initiation", projections.Payments{},
			[][]eventstore.Event{{initiated}, {completed}}, ""},
		{"a payment closed twice", projections.Payments{},
			[][]eventstore.Event{{initiated}, {completed}, {event(pid, 3, events.PaymentFailedV1{PaymentID: pid, Code: "X"})}}, "ordering violation"},
		{"a payment initiated and closed in one batch", projections.Payments{},
			[][]eventstore.Event{{initiated, completed}}, ""},
		{"a payment closed twice in its initiation's batch", projections.Payments{},
			[][]eventstore.Event{{initiated, completed, event(pid, 3, events.PaymentFailedV1{PaymentID: pid, Code: "X"})}}, "ordering violation"},
		{"a payment closed at a version skipped in its initiation's batch", projections.Payments{},
			[][]eventstore.Event{{initiated, event(pid, 3, events.PaymentCompletedV1{PaymentID: pid})}}, "ordering violation"},
		{"a payment closed at a version skipped in a later batch", projections.Payments{},
			[][]eventstore.Event{{initiated}, {event(pid, 3, events.PaymentCompletedV1{PaymentID: pid})}}, "ordering violation"},
		{"a movement completed that was never begun", sched,
			[][]eventstore.Event{{completed}}, "not begun"},
		{"a movement referenced that was never begun", sched,
			[][]eventstore.Event{{event("a@x", 2, events.AccountDebitedV1{VPA: "a@x", PaymentID: pid, AmountPaise: 5, RRN: "R1"})}}, "not begun"},
		{"a movement begun twice in a batch", sched,
			[][]eventstore.Event{{initiated, initiated}}, "already pending"},
		{"a movement begun twice over batches", sched,
			[][]eventstore.Event{{initiated}, {initiated}}, "settlement_pending_pkey"},
		{"a movement completed twice over batches", sched,
			[][]eventstore.Event{{initiated}, {completed}, {completed}}, "not begun"},
		{"a payment closed before it was initiated", projections.Payments{},
			[][]eventstore.Event{{completed}}, "not initiated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := apply(t, c.p, c.batches...)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}
