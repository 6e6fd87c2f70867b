package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/google/uuid"

	"upi/shared/platform/eventstore"
	"upi/testenv"
)

// op is a group op on stream from an Execute-style decision.
func op(stream string, dedupe uuid.UUID, decide eventstore.Command[balance]) *eventstore.Op {
	o := eventstore.NewOp(balanceAggregate(0, 1), stream, func(s balance, v int, _ eventstore.Reads) ([]eventstore.NewEvent, error) {
		return decide(s, v)
	})
	o.Dedupe = dedupe
	return o
}

func mustExecuteAll(t testing.TB, s *eventstore.Store, ops ...*eventstore.Op) []eventstore.Outcome {
	t.Helper()
	out, err := s.ExecuteAll(context.Background(), ops)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(ops) {
		t.Fatalf("%d outcomes for %d ops", len(out), len(ops))
	}
	return out
}

// Ops on one stream in one group see each other's events; a rejected op fails alone; one transaction
// holds them all.
func TestExecuteAllDecidesInOrderAndFailsAlone(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	out := mustExecuteAll(t, s,
		op("a@bank", uuid.Nil, deposit(uuid.Nil, 100)),
		op("b@bank", uuid.Nil, withdraw(1)), // b is empty: rejected
		op("a@bank", uuid.Nil, withdraw(60)),
		op("a@bank", uuid.Nil, withdraw(60)), // only 40 left: rejected
		op("c@bank", uuid.Nil, deposit(uuid.Nil, 7)),
	)
	for i, wantErr := range []bool{false, true, false, true, false} {
		if got := out[i].Err != nil; got != wantErr {
			t.Errorf("op %d: err = %v, want an error: %v", i, out[i].Err, wantErr)
		}
		if wantErr && !errors.Is(out[i].Err, errInsufficient) {
			t.Errorf("op %d: err = %v, want errInsufficient", i, out[i].Err)
		}
	}
	a := load(t, s, "a@bank")
	assertContiguous(t, a, 2)
	if amountOf(t, a[0]) != 100 || amountOf(t, a[1]) != 60 || a[1].Type != "Withdrawn" {
		t.Errorf("a@bank = %v, want a deposit of 100 and a withdrawal of 60", a)
	}
	assertContiguous(t, load(t, s, "b@bank"), 0)
	assertContiguous(t, load(t, s, "c@bank"), 1)
	if a[0].Position.TxID != load(t, s, "c@bank")[0].Position.TxID {
		t.Error("one group's events were committed by more than one transaction")
	}
	for i, o := range out {
		if o.Err == nil && (len(o.Result.Events) != 1 || o.Result.Events[0].Position == eventstore.Start) {
			t.Errorf("op %d: result %+v lacks its event's position", i, o.Result)
		}
	}
	// Positions follow the versions of each stream in the log.
	if !a[0].Position.Less(a[1].Position) {
		t.Errorf("a@bank v1 at %v does not sort before v2 at %v", a[0].Position, a[1].Position)
	}
}

// A dedupe id produced by an earlier op of the same group replays it; so does an id already stored.
func TestExecuteAllDedupesWithinAndAcrossGroups(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	id := uuid.New()
	out := mustExecuteAll(t, s,
		op("a@bank", id, deposit(id, 5)),
		op("a@bank", id, deposit(id, 5)),
		op("b@bank", id, deposit(id, 5)), // the same step on another stream: the first one stands
	)
	if out[0].Result.Replayed || !out[1].Result.Replayed || !out[2].Result.Replayed {
		t.Fatalf("replayed = %v %v %v, want false true true", out[0].Result.Replayed, out[1].Result.Replayed, out[2].Result.Replayed)
	}
	again := mustExecuteAll(t, s, op("b@bank", id, deposit(id, 5)))
	if !again[0].Result.Replayed {
		t.Fatal("a stored dedupe id was not replayed")
	}
	assertSameEvent(t, again[0].Result.Events[0], load(t, s, "a@bank")[0])
	assertContiguous(t, load(t, s, "a@bank"), 1)
	assertContiguous(t, load(t, s, "b@bank"), 0)
}

// Many groups at once over overlapping streams, each naming its streams in a random order, with shared
// step ids racing across streams: no deadlock, no lost or doubled deposit, contiguous versions, and each
// shared id recorded once.
func TestExecuteAllConcurrentGroups(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	const groups, perGroup = 60, 8
	streams := []string{"s0@bank", "s1@bank", "s2@bank", "s3@bank", "s4@bank", "s5@bank"}
	shared := make([]uuid.UUID, 10) // step ids that several groups try to record, on different streams
	for i := range shared {
		shared[i] = uuid.New()
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	appended := 0
	for g := range groups {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			ops := make([]*eventstore.Op, perGroup)
			for i := range ops {
				stream := streams[r.IntN(len(streams))]
				if i == 0 {
					id := shared[g%len(shared)]
					ops[i] = op(stream, id, deposit(id, 1))
				} else {
					ops[i] = op(stream, uuid.Nil, deposit(uuid.Nil, 1))
				}
			}
			out, err := s.ExecuteAll(context.Background(), ops)
			if err != nil {
				t.Errorf("group %d: %v", g, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for i, o := range out {
				if o.Err != nil {
					t.Errorf("group %d op %d: %v", g, i, o.Err)
				}
				if !o.Result.Replayed {
					appended++
				}
			}
		})
	}
	wg.Wait()
	total := 0
	seen := map[uuid.UUID]int{}
	for _, st := range streams {
		evs := load(t, s, st)
		assertContiguous(t, evs, len(evs))
		total += len(evs)
		for _, e := range evs {
			seen[e.ID]++
		}
	}
	if want := groups*(perGroup-1) + len(shared); total != want || appended != want {
		t.Errorf("streams hold %d events, groups reported %d appended, want %d", total, appended, want)
	}
	for _, id := range shared {
		if seen[id] != 1 {
			t.Errorf("shared step %s recorded %d times", id, seen[id])
		}
	}
}

// Reads: an op sees the events it needs by id and the first events of the streams it names.
func TestExecuteAllReads(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	first := mustExecuteAll(t, s, op("payer@bank", uuid.Nil, deposit(uuid.Nil, 9)))
	fact := first[0].Result.Events[0]
	check := eventstore.NewOp(balanceAggregate(0, 1), "other@bank",
		func(_ balance, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
			e, ok := r.Event(fact.ID)
			if !ok || e.AggregateID != "payer@bank" {
				return nil, fmt.Errorf("needed event: %+v %v", e, ok)
			}
			if o, ok := r.Origin("payer@bank"); !ok || o.ID != fact.ID {
				return nil, fmt.Errorf("origin of payer@bank: %+v %v", o, ok)
			}
			if _, ok := r.Origin("nobody@bank"); ok {
				return nil, errors.New("an origin for a stream that does not exist")
			}
			return []eventstore.NewEvent{deposited(1)}, nil
		})
	check.Needs = []uuid.UUID{fact.ID}
	check.Origins = []string{"payer@bank", "nobody@bank"}
	if out := mustExecuteAll(t, s, check); out[0].Err != nil {
		t.Fatal(out[0].Err)
	}
}

// A stream's first event, and an event read by id, is read from the log once, decoded once, and then
// served from memory, with the payload a store WithPayloads decoded; the events a group appends are served
// from memory after its commit, with the payloads its ops built. Streams and events that do not exist are
// asked for again.
func TestExecuteAllKeepsCommittedEvents(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	other := eventstore.New(pool) // another replica: s learns its events from the log
	opened := mustExecuteAll(t, other, op("payer@bank", uuid.Nil, deposit(uuid.Nil, 9)))[0].Result.Events[0]
	needed := mustExecuteAll(t, other, op("payer@bank", uuid.Nil, deposit(uuid.Nil, 5)))[0].Result.Events[0]
	var decoded sync.Map // event id -> times decoded
	s := eventstore.New(pool).WithPayloads(func(eventType string, raw []byte) (any, error) {
		var a amount
		err := json.Unmarshal(raw, &a)
		n, _ := decoded.LoadOrStore(eventType+string(raw), new(int))
		*n.(*int)++
		return a, err
	})
	// check reads the origins of payer@bank (want: its deposit of 9, decoded), of payee@bank (want: the
	// deposit of payee when payee > 0) and of nobody@bank (none).
	check := func(payee int) {
		t.Helper()
		o := eventstore.NewOp(balanceAggregate(0, 1), "check@bank",
			func(_ balance, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
				if e, ok := r.Origin("payer@bank"); !ok || e.ID != opened.ID || e.Data != (amount{9}) {
					return nil, fmt.Errorf("origin of payer@bank: %+v %v", e, ok)
				}
				if e, ok := r.Event(needed.ID); !ok || e.Data != (amount{5}) || e.Position != needed.Position {
					return nil, fmt.Errorf("needed event: %+v %v", e, ok)
				}
				if e, ok := r.Origin("payee@bank"); ok != (payee > 0) || ok && (e.Data != (amount{payee}) || e.Position == eventstore.Start) {
					return nil, fmt.Errorf("origin of payee@bank: %+v %v", e, ok)
				}
				if _, ok := r.Origin("nobody@bank"); ok {
					return nil, errors.New("an origin for a stream that does not exist")
				}
				return []eventstore.NewEvent{deposited(1)}, nil
			})
		o.Origins = []string{"payer@bank", "payee@bank", "nobody@bank"}
		o.Needs = []uuid.UUID{needed.ID}
		if out := mustExecuteAll(t, s, o); out[0].Err != nil {
			t.Fatal(out[0].Err)
		}
	}
	check(0)
	check(0)
	mustExecuteAll(t, s, op("payee@bank", uuid.Nil, deposit(uuid.Nil, 4)))
	check(4)
	n := 0
	decoded.Range(func(_, v any) bool { n += *v.(*int); return true })
	if n != 2 {
		t.Errorf("payloads decoded %d times, want twice (payer@bank's opening and the needed deposit)", n)
	}
	// The unknown stream is asked for again: once it exists, it is found.
	mustExecuteAll(t, other, op("nobody@bank", uuid.Nil, deposit(uuid.Nil, 1)))
	o := eventstore.NewOp(balanceAggregate(0, 1), "check@bank",
		func(_ balance, _ int, r eventstore.Reads) ([]eventstore.NewEvent, error) {
			if _, ok := r.Origin("nobody@bank"); !ok {
				return nil, errors.New("nobody@bank's origin not found once it exists")
			}
			return nil, nil
		})
	o.Origins = []string{"nobody@bank"}
	if out := mustExecuteAll(t, s, o); out[0].Err != nil {
		t.Fatal(out[0].Err)
	}
}

// Snapshots are written by groups too, and a group that spans a snapshot boundary loads from it.
func TestExecuteAllSnapshots(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	agg := balanceAggregate(10, 1)
	for range 3 {
		ops := make([]*eventstore.Op, 7)
		for i := range ops {
			ops[i] = eventstore.NewOp(agg, "snap@bank", func(st balance, _ int, _ eventstore.Reads) ([]eventstore.NewEvent, error) {
				return []eventstore.NewEvent{deposited(1)}, nil
			})
		}
		mustExecuteAll(t, s, ops...)
	}
	var version int
	if err := s.Pool().QueryRow(context.Background(),
		`select version from snapshots where aggregate_id = 'snap@bank'`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	// Groups of 7 on SnapshotEvery 10: the second group (v14) is 10 past no snapshot, the third (v21) only
	// 7 past v14.
	if version != 14 {
		t.Errorf("snapshot at version %d, want 14", version)
	}
	got, v, err := eventstore.LoadState(context.Background(), s, agg, "snap@bank")
	if err != nil || v != 21 || got.Paise != 21 || got.Events != 21 {
		t.Errorf("LoadState = %+v v%d %v, want 21 deposits", got, v, err)
	}
}

// Concurrent commands through a Committer share transactions, each decided under its stream's lock:
// 200 deposits and withdrawals racing on a few streams keep every balance exact and never overdraw.
func TestCommitterGroupsConcurrentCommands(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	c := eventstore.NewCommitter(s, eventstore.CommitterOptions{Concurrency: 2, MaxOps: 16})
	const n = 200
	streams := []string{"hot@bank", "warm@bank", "cold@bank"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	rejected := map[string]int{}
	for i := range n {
		wg.Go(func() {
			stream := streams[i%len(streams)]
			decide := deposit(uuid.Nil, 10)
			if i%4 == 3 {
				decide = withdraw(25)
			}
			_, err := c.Execute(context.Background(), op(stream, uuid.Nil, decide))
			if errors.Is(err, errInsufficient) {
				mu.Lock()
				rejected[stream]++
				mu.Unlock()
			} else if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	txs := map[uint64]bool{}
	for _, st := range streams {
		evs := load(t, s, st)
		assertContiguous(t, evs, len(evs))
		sum := 0
		for _, e := range evs {
			txs[e.Position.TxID] = true
			if e.Type == "Withdrawn" {
				sum -= amountOf(t, e)
			} else {
				sum += amountOf(t, e)
			}
			if sum < 0 {
				t.Fatalf("%s overdrawn at v%d", st, e.Version)
			}
		}
		deposits, withdrawals := 0, 0
		for i := range n {
			if streams[i%len(streams)] == st {
				if i%4 == 3 {
					withdrawals++
				} else {
					deposits++
				}
			}
		}
		if want := 10*deposits - 25*(withdrawals-rejected[st]); sum != want {
			t.Errorf("%s balance %d, want %d", st, sum, want)
		}
	}
	t.Logf("%d commands committed in %d transactions", n, len(txs))
	if len(txs) >= n {
		t.Errorf("no two of %d concurrent commands shared a transaction", n)
	}
}

// Two stores on one database (two replicas of a service) take turns on one stream: each keeps the state
// it last folded in memory, and must still see what the other appended since, or it would pay out money
// the stream no longer holds.
func TestExecuteAllStateCacheSeesOtherWriters(t *testing.T) {
	t.Parallel()
	a := newStore(t)
	b := eventstore.New(a.Pool())
	mustExecuteAll(t, a, op("shared@bank", uuid.Nil, deposit(uuid.Nil, 100)))
	mustExecuteAll(t, b, op("shared@bank", uuid.Nil, withdraw(60))) // b folds the stream: 40 left
	if out := mustExecuteAll(t, a, op("shared@bank", uuid.Nil, withdraw(60))); !errors.Is(out[0].Err, errInsufficient) {
		t.Fatalf("a withdrew 60 of the 40 left after b's withdrawal: %+v", out[0])
	}
	mustExecuteAll(t, a, op("shared@bank", uuid.Nil, withdraw(40)))
	if out := mustExecuteAll(t, b, op("shared@bank", uuid.Nil, withdraw(1))); !errors.Is(out[0].Err, errInsufficient) {
		t.Fatalf("b withdrew from an empty stream: %+v", out[0])
	}
	assertContiguous(t, load(t, a, "shared@bank"), 3)
}

// A command repeated within one group is answered with the first one's event, position and all.
func TestExecuteAllRepeatInGroupHasPosition(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	id := uuid.New()
	out := mustExecuteAll(t, s, op("a@bank", id, deposit(id, 5)), op("a@bank", id, deposit(id, 5)))
	if !out[1].Result.Replayed {
		t.Fatal("the repeat was not replayed")
	}
	assertSameEvent(t, out[1].Result.Events[0], out[0].Result.Events[0])
	if p := out[1].Result.Events[0].Position; p == eventstore.Start || p != out[0].Result.Events[0].Position {
		t.Fatalf("the repeat's event is at %v, the original's at %v", p, out[0].Result.Events[0].Position)
	}
}

// An op and the ops joined to it commit together or not at all: when a joined op fails, the op it joins
// leaves nothing behind (not even for the next op of the group on the same stream), its neighbours still
// commit, and a replay of a committed pair answers the pair's first event without deciding the rest.
func TestExecuteAllJoinedOpsAreAllOrNothing(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	mustExecuteAll(t, s, op("b@bank", uuid.Nil, deposit(uuid.Nil, 10)))
	transfer := func(id uuid.UUID, from, to string, amount int) *eventstore.Op {
		credit := op(to, uuid.Nil, deposit(uuid.NewSHA1(id, []byte("credit")), amount))
		debit := op(from, id, withdraw(amount))
		debit.With = []*eventstore.Op{credit}
		return debit
	}
	// The joined credit fails: the debit must not be appended either, and the next op on b sees b as it
	// was.
	out := mustExecuteAll(t, s,
		op("c@bank", uuid.Nil, deposit(uuid.Nil, 1)),
		transferJoinedFailing(uuid.New(), "b@bank", "c@bank"),
		op("b@bank", uuid.Nil, withdraw(10)),
		transfer(uuid.New(), "c@bank", "d@bank", 1),
	)
	if out[1].Err == nil {
		t.Fatal("the pair whose joined op failed committed")
	}
	for _, i := range []int{0, 2, 3} {
		if out[i].Err != nil {
			t.Fatalf("op %d failed with its neighbour: %v", i, out[i].Err)
		}
	}
	if got := len(out[3].Result.Events); got != 2 {
		t.Fatalf("the committed pair answered %d events, want its 2", got)
	}
	b := load(t, s, "b@bank")
	if len(b) != 2 {
		t.Fatalf("b has %d events, want its deposit and the withdrawal of 10: the failed pair left one behind", len(b))
	}
	// A replay of the committed pair answers its first event and appends nothing.
	pair := out[3].Result.Events[0].ID
	again := mustExecuteAll(t, s, transfer(pair, "c@bank", "d@bank", 1))
	if !again[0].Result.Replayed || again[0].Result.Events[0].ID != pair {
		t.Fatalf("the pair's retry was not replayed: %+v", again[0])
	}
	if d := load(t, s, "d@bank"); len(d) != 1 {
		t.Fatalf("d has %d events after the retry, want 1", len(d))
	}
}

// transferJoinedFailing is a withdrawal of 1 from from joined to a credit of to that fails.
func transferJoinedFailing(id uuid.UUID, from, to string) *eventstore.Op {
	credit := eventstore.NewOp(balanceAggregate(0, 1), to, func(balance, int, eventstore.Reads) ([]eventstore.NewEvent, error) {
		return nil, fmt.Errorf("credit of %s refused: %w", id, errInsufficient)
	})
	debit := op(from, id, withdraw(1))
	debit.With = []*eventstore.Op{credit}
	return debit
}
