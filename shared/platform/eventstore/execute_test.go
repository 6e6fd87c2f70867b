package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"upi/shared/platform/eventstore"
)

// balance is a small aggregate for Execute: deposits and withdrawals that must not overdraw.
type balance struct {
	Paise  int `json:"paise"`
	Events int `json:"events"`
}

var errInsufficient = errors.New("insufficient funds")

func balanceAggregate(snapshotEvery, schema int) eventstore.Aggregate[balance] {
	return eventstore.Aggregate[balance]{
		Type:           "account",
		SnapshotEvery:  snapshotEvery,
		SnapshotSchema: schema,
		Evolve: func(s balance, e eventstore.Event) (balance, error) {
			var a amount
			if err := json.Unmarshal(e.Payload, &a); err != nil {
				return s, err
			}
			switch e.Type {
			case "Deposited":
				s.Paise += a.Amount
			case "Withdrawn":
				s.Paise -= a.Amount
			default:
				return s, fmt.Errorf("unknown event type %s", e.Type)
			}
			s.Events++
			return s, nil
		},
	}
}

// deposit decides a deposit whose event carries id (a fresh one when id is Nil).
func deposit(id uuid.UUID, n int) eventstore.Command[balance] {
	return func(balance, int) ([]eventstore.NewEvent, error) {
		e := deposited(n)
		if id != uuid.Nil {
			e.ID = id
		}
		return []eventstore.NewEvent{e}, nil
	}
}

func withdraw(n int) eventstore.Command[balance] {
	return func(s balance, _ int) ([]eventstore.NewEvent, error) {
		if s.Paise < n {
			return nil, errInsufficient
		}
		return []eventstore.NewEvent{withdrawn(n)}, nil
	}
}

func TestExecuteAppendsDecision(t *testing.T) {
	t.Parallel()
	ctx, s, agg := context.Background(), newStore(t), balanceAggregate(0, 1)

	res, err := eventstore.Execute(ctx, s, agg, "alice@bank", uuid.Nil, deposit(uuid.Nil, 100))
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed || len(res.Events) != 1 || res.Last().Version != 1 || res.Last().AggregateType != "account" {
		t.Fatalf("Execute = %+v, want one new event at version 1", res)
	}
	var sawVersion int
	res, err = eventstore.Execute(ctx, s, agg, "alice@bank", uuid.Nil, func(st balance, v int) ([]eventstore.NewEvent, error) {
		sawVersion = v
		return withdraw(30)(st, v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if sawVersion != 1 || res.Last().Version != 2 {
		t.Errorf("decision saw version %d and appended %d, want 1 and 2", sawVersion, res.Last().Version)
	}
	state, version, err := eventstore.LoadState(ctx, s, agg, "alice@bank")
	if err != nil || state.Paise != 70 || version != 2 {
		t.Errorf("LoadState = %+v at %d, %v; want 70 paise at version 2", state, version, err)
	}

	// A decision of nothing appends nothing.
	res, err = eventstore.Execute(ctx, s, agg, "alice@bank", uuid.Nil, func(balance, int) ([]eventstore.NewEvent, error) { return nil, nil })
	if err != nil || res.Replayed || len(res.Events) != 0 || res.Last() != nil {
		t.Errorf("empty decision = %+v, %v; want an empty result", res, err)
	}
	if got := load(t, s, "alice@bank"); len(got) != 2 {
		t.Errorf("stream holds %d events, want 2", len(got))
	}
}

func TestExecuteDomainErrorAppendsNothing(t *testing.T) {
	t.Parallel()
	ctx, s, agg := context.Background(), newStore(t), balanceAggregate(1, 1)
	if _, err := eventstore.Execute(ctx, s, agg, "alice@bank", uuid.Nil, deposit(uuid.Nil, 50)); err != nil {
		t.Fatal(err)
	}
	res, err := eventstore.Execute(ctx, s, agg, "alice@bank", uuid.Nil, withdraw(51))
	if !errors.Is(err, errInsufficient) {
		t.Fatalf("overdraft: err = %v, want the domain error", err)
	}
	if len(res.Events) != 0 || res.Replayed {
		t.Errorf("overdraft result = %+v, want empty", res)
	}
	if got := load(t, s, "alice@bank"); len(got) != 1 {
		t.Errorf("stream holds %d events after a refused command, want 1", len(got))
	}
	var snapVersion int
	if err := s.Pool().QueryRow(ctx, `select version from snapshots where aggregate_id = 'alice@bank'`).Scan(&snapVersion); err != nil || snapVersion != 1 {
		t.Errorf("snapshot version = %d, %v; want 1, untouched by the refused command", snapVersion, err)
	}
}

func TestExecuteDedupeIDReplays(t *testing.T) {
	t.Parallel()
	ctx, s, agg := context.Background(), newStore(t), balanceAggregate(0, 1)
	step := uuid.New()
	first, err := eventstore.Execute(ctx, s, agg, "alice@bank", step, deposit(step, 100))
	if err != nil || first.Replayed {
		t.Fatalf("first Execute = %+v, %v", first, err)
	}

	var decided atomic.Int32
	again, err := eventstore.Execute(ctx, s, agg, "alice@bank", step, func(st balance, v int) ([]eventstore.NewEvent, error) {
		decided.Add(1)
		return deposit(uuid.New(), 100)(st, v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Replayed || len(again.Events) != 1 {
		t.Fatalf("repeat = %+v, want Replayed with the earlier event", again)
	}
	assertSameEvent(t, again.Events[0], first.Events[0])
	if decided.Load() != 0 {
		t.Error("the repeated command was decided again")
	}

	// The dedupe id is looked up in the whole log, not only in the command's stream.
	other, err := eventstore.Execute(ctx, s, agg, "bob@bank", step, deposit(uuid.New(), 100))
	if err != nil || !other.Replayed {
		t.Fatalf("dedupe id from another stream: %+v, %v; want Replayed", other, err)
	}
	assertSameEvent(t, other.Events[0], first.Events[0])

	state, version, err := eventstore.LoadState(ctx, s, agg, "alice@bank")
	if err != nil || state.Paise != 100 || version != 1 {
		t.Errorf("alice@bank = %+v at %d, %v; want the money moved once", state, version, err)
	}
	if got := load(t, s, "bob@bank"); len(got) != 0 {
		t.Errorf("bob@bank holds %d events, want none", len(got))
	}
}

// The payment workflow relies on this: a step's event id is deterministic, so when the same step is
// recorded on two streams only one of them keeps it, and the other learns of it as a replay.
func TestExecuteProducedIDOnAnotherStreamReplays(t *testing.T) {
	t.Parallel()
	ctx, s, agg := context.Background(), newStore(t), balanceAggregate(0, 1)
	step := uuid.New()
	first, err := eventstore.Execute(ctx, s, agg, "alice@bank", uuid.Nil, deposit(step, 100))
	if err != nil || first.Replayed {
		t.Fatalf("first Execute = %+v, %v", first, err)
	}
	second, err := eventstore.Execute(ctx, s, agg, "bob@bank", uuid.Nil, deposit(step, 100))
	if err != nil {
		t.Fatal(err)
	}
	if !second.Replayed || len(second.Events) != 1 {
		t.Fatalf("second Execute = %+v, want Replayed with alice's event", second)
	}
	assertSameEvent(t, second.Events[0], first.Events[0])
	if got := load(t, s, "bob@bank"); len(got) != 0 {
		t.Errorf("bob@bank holds %d events, want none", len(got))
	}
}

func TestExecuteSharedIDConcurrently(t *testing.T) {
	t.Parallel()
	ctx, s, agg := context.Background(), newStore(t), balanceAggregate(0, 1)
	const rounds = 40
	streams := [2]string{"alice@bank", "bob@bank"}
	wins := map[string]int{}
	for round := range rounds {
		step := uuid.New()
		start := make(chan struct{})
		var results [2]eventstore.Result
		var errs [2]error
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() {
				<-start
				results[w], errs[w] = eventstore.Execute(ctx, s, agg, streams[w], uuid.Nil, deposit(step, 1))
			})
		}
		close(start)
		wg.Wait()

		winner := -1
		for w := range 2 {
			if errs[w] != nil {
				t.Fatalf("round %d, %s: %v", round, streams[w], errs[w])
			}
			if !results[w].Replayed {
				if winner >= 0 {
					t.Fatalf("round %d: step %s recorded on both streams", round, step)
				}
				winner = w
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: both replayed, step %s recorded nowhere", round, step)
		}
		loser := results[1-winner]
		if len(loser.Events) != 1 {
			t.Fatalf("round %d: replay = %+v, want the winner's event", round, loser)
		}
		assertSameEvent(t, loser.Events[0], results[winner].Events[0])
		wins[streams[winner]]++
	}
	a, b := load(t, s, streams[0]), load(t, s, streams[1])
	if len(a)+len(b) != rounds {
		t.Errorf("streams hold %d + %d events, want %d in all", len(a), len(b), rounds)
	}
	assertContiguous(t, a, wins[streams[0]])
	assertContiguous(t, b, wins[streams[1]])
	t.Logf("wins over %d rounds: %v", rounds, wins)
}

func TestExecuteSnapshots(t *testing.T) {
	t.Parallel()
	ctx, s := context.Background(), newStore(t)
	snap, fold := balanceAggregate(5, 1), balanceAggregate(0, 1)
	snapshotVersion := func() int {
		t.Helper()
		var v int
		if err := s.Pool().QueryRow(ctx, `select version from snapshots where aggregate_id = 'alice@bank'`).Scan(&v); err != nil {
			t.Fatalf("read snapshot: %v", err)
		}
		return v
	}
	same := func(what string) balance {
		t.Helper()
		a, av, err := eventstore.LoadState(ctx, s, snap, "alice@bank")
		if err != nil {
			t.Fatal(err)
		}
		b, bv, err := eventstore.LoadState(ctx, s, fold, "alice@bank")
		if err != nil {
			t.Fatal(err)
		}
		if a != b || av != bv {
			t.Errorf("%s: state from snapshot %+v at %d, from a full fold %+v at %d", what, a, av, b, bv)
		}
		return a
	}

	for i := 1; i <= 12; i++ {
		if _, err := eventstore.Execute(ctx, s, snap, "alice@bank", uuid.Nil, deposit(uuid.Nil, i)); err != nil {
			t.Fatal(err)
		}
		if i == 4 {
			if err := s.Pool().QueryRow(ctx, `select 1 from snapshots`).Scan(new(int)); err == nil {
				t.Error("a snapshot was written before SnapshotEvery events")
			}
		}
	}
	if v := snapshotVersion(); v != 10 {
		t.Errorf("snapshot at version %d after 12 events, want 10", v)
	}
	if st := same("after 12 events"); st.Paise != 78 || st.Events != 12 {
		t.Errorf("state = %+v, want 78 paise from 12 events", st)
	}

	// A command of several events that crosses the threshold snapshots its last event.
	_, err := eventstore.Execute(ctx, s, snap, "alice@bank", uuid.Nil, func(balance, int) ([]eventstore.NewEvent, error) {
		return []eventstore.NewEvent{deposited(100), deposited(100), withdrawn(50)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := snapshotVersion(); v != 15 {
		t.Errorf("snapshot at version %d after 15 events, want 15", v)
	}
	same("after a multi-event command")

	// Prove the snapshot is what is read: a tampered snapshot shows through LoadState, and through Execute
	// on a store that has not folded the stream itself (a fresh process: no state in memory).
	if _, err := s.Pool().Exec(ctx, `update snapshots set state = jsonb_set(state, '{paise}', '1000000')`); err != nil {
		t.Fatal(err)
	}
	if st, v, err := eventstore.LoadState(ctx, s, snap, "alice@bank"); err != nil || st.Paise != 1000000 || v != 15 {
		t.Errorf("LoadState over a tampered snapshot = %+v at %d, %v; want the snapshot's 1000000 paise", st, v, err)
	}
	if _, err := eventstore.Execute(ctx, eventstore.New(s.Pool()), snap, "alice@bank", uuid.Nil, withdraw(500000)); err != nil {
		t.Errorf("a withdrawal the tampered snapshot covers was refused (%v): the snapshot was not used", err)
	}

	// A new snapshot schema ignores the old snapshot, folds the whole stream and rewrites it.
	snap2 := balanceAggregate(5, 2)
	st, v, err := eventstore.LoadState(ctx, s, snap2, "alice@bank")
	if err != nil || st.Paise != 78+150-500000 || v != 16 {
		t.Errorf("LoadState with schema 2 = %+v at %d, %v; want a full fold of 16 events", st, v, err)
	}
	if _, err := eventstore.Execute(ctx, s, snap2, "alice@bank", uuid.Nil, deposit(uuid.Nil, 1)); err != nil {
		t.Fatal(err)
	}
	var schema int
	if err := s.Pool().QueryRow(ctx, `select schema_version from snapshots where aggregate_id = 'alice@bank'`).Scan(&schema); err != nil || schema != 2 || snapshotVersion() != 17 {
		t.Errorf("snapshot schema %d at version %d, %v; want schema 2 at 17", schema, snapshotVersion(), err)
	}
}
