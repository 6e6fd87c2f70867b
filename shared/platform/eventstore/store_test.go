package eventstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/shared/platform/eventstore"
	"upi/testenv"
)

func TestAppendExpectedVersion(t *testing.T) {
	t.Parallel()
	ctx, s := context.Background(), newStore(t)

	first, err := s.Append(ctx, "account", "alice@bank", eventstore.NoStream, []eventstore.NewEvent{deposited(10)})
	if err != nil {
		t.Fatalf("append to a new stream with NoStream: %v", err)
	}
	if len(first) != 1 || first[0].Version != 1 || first[0].AggregateID != "alice@bank" || first[0].AggregateType != "account" {
		t.Fatalf("first append returned %+v, want version 1 of account alice@bank", first)
	}

	two, err := s.Append(ctx, "account", "alice@bank", 1, []eventstore.NewEvent{deposited(20), withdrawn(5)})
	if err != nil {
		t.Fatalf("append at expected version 1: %v", err)
	}
	if two[0].Version != 2 || two[1].Version != 3 {
		t.Fatalf("versions = %d, %d, want 2, 3", two[0].Version, two[1].Version)
	}
	// One command is one transaction: its events share the transaction id and keep their order.
	if two[0].Position.TxID != two[1].Position.TxID || !two[0].Position.Less(two[1].Position) {
		t.Errorf("positions of one append = %+v, %+v: want one transaction, in order", two[0].Position, two[1].Position)
	}
	if !first[0].Position.Less(two[0].Position) {
		t.Errorf("second append %+v does not sort after the first %+v", two[0].Position, first[0].Position)
	}

	anyV, err := s.Append(ctx, "account", "alice@bank", eventstore.AnyVersion, []eventstore.NewEvent{deposited(1)})
	if err != nil {
		t.Fatalf("append with AnyVersion: %v", err)
	}
	if anyV[0].Version != 4 {
		t.Errorf("AnyVersion append got version %d, want 4", anyV[0].Version)
	}

	for _, expected := range []int{eventstore.NoStream, 2, 3, 5} {
		_, err := s.Append(ctx, "account", "alice@bank", expected, []eventstore.NewEvent{deposited(99)})
		var conflict *eventstore.ConflictError
		if !errors.As(err, &conflict) || !errors.Is(err, eventstore.ErrConflict) {
			t.Fatalf("append at stale expected version %d: err = %v, want a ConflictError", expected, err)
		}
		if conflict.AggregateID != "alice@bank" || conflict.Expected != expected || conflict.Actual != 4 {
			t.Errorf("conflict = %+v, want alice@bank expected %d actual 4", conflict, expected)
		}
	}
	if got := load(t, s, "alice@bank"); len(got) != 4 {
		t.Errorf("stream holds %d events after rejected appends, want 4", len(got))
	}

	if _, err := s.Append(ctx, "account", "alice@bank", eventstore.AnyVersion, nil); err == nil {
		t.Error("append of no events succeeded, want an error")
	}
}

func TestAppendDuplicateEventID(t *testing.T) {
	t.Parallel()
	ctx, s := context.Background(), newStore(t)
	step := deposited(10)
	stored, err := s.Append(ctx, "account", "alice@bank", eventstore.NoStream, []eventstore.NewEvent{step})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, stream string
		expected     int
	}{
		{"same stream", "alice@bank", eventstore.AnyVersion},
		{"another stream", "bob@bank", eventstore.NoStream},
	} {
		// The repeated step rides with a new event: the whole append must be refused, not half of it.
		_, err := s.Append(ctx, "account", tc.stream, tc.expected, []eventstore.NewEvent{deposited(1), step})
		var dup *eventstore.DuplicateError
		if !errors.As(err, &dup) || !errors.Is(err, eventstore.ErrDuplicate) {
			t.Fatalf("%s: append of an existing event id: err = %v, want a DuplicateError", tc.name, err)
		}
		if errors.Is(err, eventstore.ErrConflict) {
			t.Errorf("%s: a duplicate also matches ErrConflict", tc.name)
		}
		if len(dup.Existing) != 1 {
			t.Fatalf("%s: Existing = %+v, want the one earlier event", tc.name, dup.Existing)
		}
		assertSameEvent(t, dup.Existing[0], stored[0])
	}
	if got := load(t, s, "alice@bank"); len(got) != 1 {
		t.Errorf("alice@bank holds %d events, want 1", len(got))
	}
	if got := load(t, s, "bob@bank"); len(got) != 0 {
		t.Errorf("bob@bank holds %d events, want none: the refused append was partly written", len(got))
	}
}

// Two writers that read the same version race to append after it: exactly one wins, and the other is
// told it lost, never silently appended after the winner.
func TestAppendConcurrentWritersSameExpectedVersion(t *testing.T) {
	t.Parallel()
	ctx, s := context.Background(), newStore(t)
	const rounds = 40
	for round := range rounds {
		start := make(chan struct{})
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() {
				<-start
				_, errs[w] = s.Append(ctx, "account", "hot@bank", round, []eventstore.NewEvent{deposited(w + 1)})
			})
		}
		close(start)
		wg.Wait()

		wins, conflicts := 0, 0
		for _, err := range errs {
			var conflict *eventstore.ConflictError
			switch {
			case err == nil:
				wins++
			case errors.As(err, &conflict):
				conflicts++
				if conflict.Actual != round+1 || conflict.Expected != round {
					t.Errorf("round %d: conflict %+v, want expected %d actual %d", round, conflict, round, round+1)
				}
			default:
				t.Fatalf("round %d: unexpected error %v", round, err)
			}
		}
		if wins != 1 || conflicts != 1 {
			t.Fatalf("round %d: %d wins and %d conflicts, want exactly one of each", round, wins, conflicts)
		}
	}
	assertContiguous(t, load(t, s, "hot@bank"), rounds)
}

func TestAppendKeepsEachStreamInVersionOrder(t *testing.T) {
	t.Parallel()
	ctx, s := context.Background(), newStore(t)
	// Interleave two streams so that version order and insertion order differ from the log's.
	for i := 1; i <= 5; i++ {
		for _, stream := range []string{"alice@bank", "bob@bank"} {
			if _, err := s.Append(ctx, "account", stream, eventstore.AnyVersion, []eventstore.NewEvent{deposited(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	alice := load(t, s, "alice@bank")
	assertContiguous(t, alice, 5)
	for i, e := range alice {
		if e.AggregateID != "alice@bank" || e.Type != "Deposited" || amountOf(t, e) != i+1 {
			t.Errorf("alice@bank event %d = %s %s %s, want Deposited of %d", i, e.AggregateID, e.Type, e.Payload, i+1)
		}
	}
}

func TestEventsByID(t *testing.T) {
	t.Parallel()
	ctx, s := context.Background(), newStore(t)
	a, err := s.Append(ctx, "account", "alice@bank", eventstore.NoStream, []eventstore.NewEvent{deposited(1), deposited(2)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Append(ctx, "account", "bob@bank", eventstore.NoStream, []eventstore.NewEvent{deposited(3)})
	if err != nil {
		t.Fatal(err)
	}

	got, err := s.EventsByID(ctx, b[0].ID, uuid.New(), a[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("EventsByID = %d events, want the 2 that exist", len(got))
	}
	assertSameEvent(t, got[0], a[0]) // log order, not argument order
	assertSameEvent(t, got[1], b[0])

	if none, err := s.EventsByID(ctx, uuid.New()); err != nil || len(none) != 0 {
		t.Errorf("EventsByID of a missing id = %v, %v; want nothing", none, err)
	}
}

func TestHead(t *testing.T) {
	t.Parallel()
	ctx, s := context.Background(), newStore(t)
	head, at, err := s.Head(ctx)
	if err != nil || head != eventstore.Start || !at.IsZero() {
		t.Fatalf("Head of an empty log = %+v, %v, %v; want Start and the zero time", head, at, err)
	}

	if _, err := s.Append(ctx, "account", "alice@bank", eventstore.NoStream, []eventstore.NewEvent{deposited(1)}); err != nil {
		t.Fatal(err)
	}
	last, err := s.Append(ctx, "account", "bob@bank", eventstore.NoStream, []eventstore.NewEvent{deposited(2), deposited(3)})
	if err != nil {
		t.Fatal(err)
	}
	want := last[1]
	// The horizon is cluster-wide: a transaction of another database can hold it back for a moment.
	waitFor(t, "the head to reach the last append", func() bool {
		head, at, err = s.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return head == want.Position
	})
	if !at.Equal(want.CreatedAt) {
		t.Errorf("Head time = %v, want the last event's %v", at, want.CreatedAt)
	}
	if evs, err := s.ReadLog(ctx, head, 10); err != nil || len(evs) != 0 {
		t.Errorf("ReadLog after the head = %d events, %v; want none", len(evs), err)
	}
}

func TestReadLogInBatches(t *testing.T) {
	t.Parallel()
	ctx, s := context.Background(), newStore(t)
	var appended []eventstore.Event
	for i := range 7 {
		stream := fmt.Sprintf("user%d@bank", i%3)
		evs, err := s.Append(ctx, "account", stream, eventstore.AnyVersion, []eventstore.NewEvent{deposited(i), deposited(i)})
		if err != nil {
			t.Fatal(err)
		}
		appended = append(appended, evs...)
	}

	got := readLogUntil(t, s, len(appended), 3)
	if len(got) != len(appended) {
		t.Fatalf("read %d events, want %d", len(got), len(appended))
	}
	for i := range got {
		assertSameEvent(t, got[i], appended[i])
	}
	if more, err := s.ReadLog(ctx, got[len(got)-1].Position, 3); err != nil || len(more) != 0 {
		t.Errorf("ReadLog past the end = %d events, %v; want none", len(more), err)
	}
}

// The events table refuses every change but an insert, whoever asks: the database enforces it.
func TestEventsAreAppendOnly(t *testing.T) {
	t.Parallel()
	ctx, s := context.Background(), newStore(t)
	stored, err := s.Append(ctx, "account", "alice@bank", eventstore.NoStream, []eventstore.NewEvent{deposited(10), deposited(20)})
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`update events set payload = '{"amount": 1000000}'`,
		`update events set version = version + 10 where aggregate_id = 'alice@bank'`,
		`delete from events where aggregate_id = 'alice@bank'`,
		`delete from events`,
		`truncate events`,
		`truncate events cascade`,
	} {
		_, err := s.Pool().Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			t.Fatalf("%s: err = %v, want it refused", stmt, err)
		}
		if pgErr.Code != "42501" || !strings.Contains(pgErr.Message, "append-only") {
			t.Errorf("%s: refused with %s %q, want 42501 and an append-only message", stmt, pgErr.Code, pgErr.Message)
		}
	}
	got := load(t, s, "alice@bank")
	if len(got) != 2 {
		t.Fatalf("stream holds %d events after refused changes, want 2", len(got))
	}
	for i := range got {
		assertSameEvent(t, got[i], stored[i])
	}
}

// newStore is a store on a fresh, migrated database.
func newStore(t testing.TB) *eventstore.Store {
	t.Helper()
	pool, _ := testenv.PostgresPool(t)
	return eventstore.New(pool)
}

// newPool is a pool of up to maxConns connections on a fresh, migrated database, for tests that need
// more concurrent transactions than a default pool allows.
func newPool(t testing.TB, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

type amount struct {
	Amount int `json:"amount"`
}

func deposited(n int) eventstore.NewEvent {
	return eventstore.NewEvent{ID: uuid.New(), Type: "Deposited", Data: amount{n}, Metadata: map[string]string{"client": "test"}}
}

func withdrawn(n int) eventstore.NewEvent {
	return eventstore.NewEvent{ID: uuid.New(), Type: "Withdrawn", Data: amount{n}}
}

func amountOf(t testing.TB, e eventstore.Event) int {
	t.Helper()
	var a amount
	if err := json.Unmarshal(e.Payload, &a); err != nil {
		t.Fatalf("payload of %s: %v", e.ID, err)
	}
	return a.Amount
}

func load(t testing.TB, s *eventstore.Store, stream string) []eventstore.Event {
	t.Helper()
	evs, err := eventstore.LoadStream(context.Background(), s, stream)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// readLogUntil follows the log from the start in batches until it has read want events, waiting for
// the cluster-wide horizon to pass them; it returns what it read.
func readLogUntil(t testing.TB, s *eventstore.Store, want, batch int) []eventstore.Event {
	t.Helper()
	var got []eventstore.Event
	pos := eventstore.Start
	waitFor(t, fmt.Sprintf("%d events in the log", want), func() bool {
		for {
			evs, err := s.ReadLog(context.Background(), pos, batch)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) > batch {
				t.Fatalf("ReadLog returned %d events, more than the limit %d", len(evs), batch)
			}
			for _, e := range evs {
				if !pos.Less(e.Position) {
					t.Fatalf("ReadLog after %+v returned %+v", pos, e.Position)
				}
				pos = e.Position
			}
			got = append(got, evs...)
			if len(evs) == 0 || len(got) >= want {
				return len(got) >= want
			}
		}
	})
	return got
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (is a long transaction holding back the xmin horizon?)", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func assertSameEvent(t testing.TB, got, want eventstore.Event) {
	t.Helper()
	if got.ID != want.ID || got.AggregateID != want.AggregateID || got.AggregateType != want.AggregateType ||
		got.Type != want.Type || got.Version != want.Version || got.Position != want.Position ||
		!got.CreatedAt.Equal(want.CreatedAt) || !sameJSON(t, got.Payload, want.Payload) ||
		!sameJSON(t, got.Metadata, want.Metadata) {
		t.Errorf("event = %+v\nwant    %+v", got, want)
	}
}

// sameJSON compares documents, not bytes: the store hands back jsonb's rendering of what it was given.
func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("decode %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return bytes.Equal(xs, ys)
}

func versions(evs []eventstore.Event) []int {
	out := make([]int, len(evs))
	for i, e := range evs {
		out[i] = e.Version
	}
	return out
}

func assertContiguous(t testing.TB, evs []eventstore.Event, n int) {
	t.Helper()
	if len(evs) != n {
		t.Fatalf("stream has %d events, want %d", len(evs), n)
	}
	for i, e := range evs {
		if e.Version != i+1 {
			t.Fatalf("stream versions = %v, want 1..%d", versions(evs), n)
		}
	}
}
