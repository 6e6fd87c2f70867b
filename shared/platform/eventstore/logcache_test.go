package eventstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"upi/shared/platform/eventstore"
	"upi/testenv"
)

func decodeAmount(_ string, raw []byte) (any, error) {
	var a amount
	err := json.Unmarshal(raw, &a)
	return a, err
}

// readAll follows the log through read in batches of limit until it has want events, and returns them.
func readAll(t *testing.T, read func(context.Context, eventstore.Position, int) ([]eventstore.Event, error), limit, want int) []eventstore.Event {
	t.Helper()
	var all []eventstore.Event
	after := eventstore.Start
	for len(all) < want {
		batch, err := read(context.Background(), after, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) > limit {
			t.Fatalf("%d events for a limit of %d", len(batch), limit)
		}
		if len(batch) == 0 {
			time.Sleep(10 * time.Millisecond)
		} else {
			after = batch[len(batch)-1].Position
		}
		all = append(all, batch...)
	}
	return all
}

// Readers at different places, with different batch sizes, each get exactly what ReadLog gives, with
// payloads decoded; a reader far behind the run and one after a cut get it too.
func TestLogCacheReadsAsTheLog(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	s := eventstore.New(pool)
	for i := range 60 {
		mustExecuteAll(t, s, op(fmt.Sprintf("acct%d@bank", i%7), [16]byte{}, deposit([16]byte{}, i+1)))
	}
	// Every event below the horizon (other tests' transactions on this server hold it back for a while).
	direct := readAll(t, func(ctx context.Context, after eventstore.Position, limit int) ([]eventstore.Event, error) {
		return eventstore.ReadLog(ctx, pool, after, limit)
	}, 1000, 60)
	c := eventstore.NewLogCache(pool, 10, decodeAmount, 0)
	// Positions to read after: the start, events inside and outside the run as it moves, the last.
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		k := rng.IntN(len(direct) + 1)
		after := eventstore.Start
		if k > 0 {
			after = direct[k-1].Position
		}
		limit := 1 + rng.IntN(25)
		got, err := c.ReadLog(context.Background(), after, limit)
		if err != nil {
			t.Fatal(err)
		}
		want := direct[k:min(len(direct), k+limit)]
		if len(got) != len(want) {
			t.Fatalf("after event %d, limit %d: %d events, want %d", k, limit, len(got), len(want))
		}
		for i := range got {
			if got[i].ID != want[i].ID || got[i].Position != want[i].Position {
				t.Fatalf("after event %d: event %d is %s at %v, want %s at %v", k, i, got[i].ID, got[i].Position, want[i].ID, want[i].Position)
			}
			if a, ok := got[i].Data.(amount); !ok || a.Amount != amountOf(t, want[i]) {
				t.Fatalf("event %s has Data %#v, want its payload decoded", got[i].ID, got[i].Data)
			}
		}
	}
}

// countingQuerier counts the queries that reach the database.
type countingQuerier struct {
	eventstore.Querier
	n atomic.Int32
}

func (q *countingQuerier) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	q.n.Add(1)
	return q.Querier.Query(ctx, sql, args...)
}

// A read that reaches a place where the log was just found to end ends there without asking the
// database, until a hint arrives or the finding is older than the cache's freshness; then the database is
// asked again, and the event appended meanwhile is read.
func TestLogCacheTrustsTheLogsEndUntilAHint(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	s := eventstore.New(pool)
	for _, tc := range []struct {
		name  string
		fresh time.Duration
		next  func(c *eventstore.LogCache)
	}{
		{"hinted", time.Hour, func(c *eventstore.LogCache) { c.Hinted() }},
		{"stale", 50 * time.Millisecond, func(*eventstore.LogCache) { time.Sleep(60 * time.Millisecond) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := "end-" + tc.name + "@bank"
			mustExecuteAll(t, s, op(stream, [16]byte{}, deposit([16]byte{}, 1)))
			q := &countingQuerier{Querier: pool}
			c := eventstore.NewLogCache(q, 1000, nil, tc.fresh)
			read := func(after eventstore.Position) []eventstore.Event {
				t.Helper()
				batch, err := c.ReadLog(context.Background(), after, 1000)
				if err != nil {
					t.Fatal(err)
				}
				return batch
			}
			// The log as far as it goes now (below the horizon, which other tests may hold back).
			end := eventstore.Start
			for batch := read(end); len(batch) > 0; batch = read(end) {
				end = batch[len(batch)-1].Position
			}
			mustExecuteAll(t, s, op(stream, [16]byte{}, deposit([16]byte{}, 2)))
			asked := q.n.Load()
			if got := read(end); len(got) != 0 || q.n.Load() != asked {
				t.Fatalf("right after the log was found to end: %d events and %d queries; want none of either",
					len(got), q.n.Load()-asked)
			}
			tc.next(c)
			read(end)
			if q.n.Load() != asked+1 {
				t.Fatalf("%d queries after the finding was invalidated, want 1", q.n.Load()-asked)
			}
			// The second deposit is read once it is below the horizon.
			deadline := time.Now().Add(10 * time.Second)
			for after := end; ; {
				for _, e := range read(after) {
					if e.AggregateID == stream && e.Version == 2 {
						return
					}
					after = e.Position
				}
				if time.Now().After(deadline) {
					t.Fatal("the event appended after the finding was never read")
				}
				tc.next(c)
			}
		})
	}
}

// Readers following the log through one cache while writers append (some transactions rolled back) each
// see every committed event exactly once, in log order.
func TestLogCacheConcurrentReadersAndWriters(t *testing.T) {
	t.Parallel()
	pool := newPool(t, 16)
	s := eventstore.New(pool)
	// Findings that the log ends are trusted for 5 ms and no hint ever comes: readers still see everything.
	c := eventstore.NewLogCache(pool, 64, nil, 5*time.Millisecond)
	const writers, each = 4, 60
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				mustExecuteAll(t, s, op(fmt.Sprintf("w%d-%d@bank", w, i%5), [16]byte{}, deposit([16]byte{}, 1)))
			}
		})
	}
	var failed atomic.Bool
	results := make([][]eventstore.Event, 3)
	var readers sync.WaitGroup
	for r := range results {
		readers.Go(func() {
			defer func() {
				if t.Failed() {
					failed.Store(true)
				}
			}()
			results[r] = readAll(t, c.ReadLog, 7+r*11, writers*each)
		})
	}
	wg.Wait()
	readers.Wait()
	if failed.Load() {
		return
	}
	direct, err := eventstore.ReadLog(context.Background(), pool, eventstore.Start, 10*writers*each)
	if err != nil {
		t.Fatal(err)
	}
	for r, got := range results {
		if len(got) != len(direct) {
			t.Fatalf("reader %d saw %d events, the log holds %d", r, len(got), len(direct))
		}
		for i := range got {
			if got[i].ID != direct[i].ID {
				t.Fatalf("reader %d: event %d is %s, the log's is %s", r, i, got[i].ID, direct[i].ID)
			}
		}
	}
}

// gatedQuerier counts the queries that reach the database and holds each until gate is closed.
type gatedQuerier struct {
	eventstore.Querier
	n    atomic.Int32
	gate chan struct{}
}

func (q *gatedQuerier) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	q.n.Add(1)
	<-q.gate
	return q.Querier.Query(ctx, sql, args...)
}

// Readers that must ask the database from the same place while a read from there is under way, with no
// hint since it began, wait for it and get its answer: the database is asked once. A reader that comes
// after a hint asks it again, and sees what was appended.
func TestLogCacheReadersShareAReadUnderWay(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	s := eventstore.New(pool)
	mustExecuteAll(t, s, op("shared@bank", [16]byte{}, deposit([16]byte{}, 1)))
	// The log as far as it goes now (below the horizon, which other tests may hold back).
	direct := readAll(t, func(ctx context.Context, after eventstore.Position, limit int) ([]eventstore.Event, error) {
		return eventstore.ReadLog(ctx, pool, after, limit)
	}, 1000, 1)
	end := direct[len(direct)-1].Position
	mustExecuteAll(t, s, op("shared@bank", [16]byte{}, deposit([16]byte{}, 2)))
	var appended eventstore.Position
	for deadline := time.Now().Add(10 * time.Second); appended == (eventstore.Position{}); {
		evs, err := eventstore.ReadLog(context.Background(), pool, end, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.AggregateID == "shared@bank" && e.Version == 2 {
				appended = e.Position
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the second deposit never came below the horizon")
		}
	}

	q := &gatedQuerier{Querier: pool, gate: make(chan struct{})}
	c := eventstore.NewLogCache(q, 1000, nil, 0)
	const readers = 6
	got := make([][]eventstore.Event, readers)
	errs := make([]error, readers)
	var wg sync.WaitGroup
	wg.Go(func() { got[0], errs[0] = c.ReadLog(context.Background(), end, 1000) })
	for q.n.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	for i := 1; i < readers; i++ {
		wg.Go(func() { got[i], errs[i] = c.ReadLog(context.Background(), end, 1000) })
	}
	time.Sleep(50 * time.Millisecond) // the others reach the read under way and wait for it
	close(q.gate)
	wg.Wait()
	if n := q.n.Load(); n != 1 {
		t.Fatalf("%d readers from one place asked the database %d times, want once", readers, n)
	}
	for i := range readers {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if len(got[i]) == 0 || got[i][len(got[i])-1].Position.Less(appended) || len(got[i]) != len(got[0]) {
			t.Fatalf("reader %d got %d events, reader 0 %d, up to the deposit at %v", i, len(got[i]), len(got[0]), appended)
		}
	}

	// After a hint, a reader does not take the answer of a read that began before it.
	from := got[0][len(got[0])-1].Position
	q.gate = make(chan struct{})
	asked := q.n.Load()
	wg.Go(func() { _, _ = c.ReadLog(context.Background(), from, 1000) })
	for q.n.Load() == asked {
		time.Sleep(time.Millisecond)
	}
	c.Hinted()
	wg.Go(func() { _, _ = c.ReadLog(context.Background(), from, 1000) })
	for q.n.Load() == asked+1 {
		time.Sleep(time.Millisecond)
	}
	close(q.gate)
	wg.Wait()
	if n := q.n.Load() - asked; n != 2 {
		t.Fatalf("a reader after a hint asked the database %d times with the first read, want 2", n)
	}
}

// A hint names the transaction whose events it announces. While a transaction begun earlier holds the
// horizon back, those events are committed but cannot be read: the cache says they are pending to a reader
// that has not passed them, and answers its reads from the database, not from the finding that the log
// ends there; once the horizon moves, the read returns them and nothing is pending.
func TestLogCacheKnowsAnnouncedEventsTheHorizonHoldsBack(t *testing.T) {
	t.Parallel()
	pool, url := testenv.PostgresPool(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := eventstore.New(pool)
	go s.RunHints(ctx, slog.New(slog.DiscardHandler), time.Millisecond)
	listener, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(context.Background())
	if _, err := listener.Exec(ctx, "listen "+eventstore.HintChannel); err != nil {
		t.Fatal(err)
	}

	q := &countingQuerier{Querier: pool}
	c := eventstore.NewLogCache(q, 1000, nil, time.Hour)
	end := eventstore.Start
	for batch, _ := c.ReadLog(ctx, end, 1000); len(batch) > 0; batch, _ = c.ReadLog(ctx, end, 1000) {
		end = batch[len(batch)-1].Position
	}

	// A transaction with an id, left open: everything committed after it waits behind it.
	holder, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(context.Background()) //nolint:errcheck // committed below
	if _, err := holder.Exec(ctx, `select pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	out := mustExecuteAll(t, s, op("held@bank", [16]byte{}, deposit([16]byte{}, 1)))
	appended := out[0].Result.Events[0].Position

	n, err := listener.WaitForNotification(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tx := eventstore.ParseHint(n.Payload); tx != appended.TxID {
		t.Fatalf("the hint announced transaction %d (payload %q), want the append's %d", tx, n.Payload, appended.TxID)
	}
	if c.Pending(end) {
		t.Fatal("pending before any hint was recorded")
	}
	c.Appended(eventstore.ParseHint(n.Payload))
	if !c.Pending(end) {
		t.Fatal("an announced append behind the horizon is not pending")
	}
	for range 3 {
		asked := q.n.Load()
		if got, err := c.ReadLog(ctx, end, 1000); err != nil || len(got) != 0 {
			t.Fatalf("read behind an open transaction: %d events, %v; want none", len(got), err)
		}
		if q.n.Load() == asked {
			t.Fatal("a read of pending events was answered from the finding that the log ends, not the database")
		}
	}

	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Other tests' transactions (transaction ids are the cluster's) may hold the horizon a little longer.
	var got []eventstore.Event
	for deadline := time.Now().Add(10 * time.Second); len(got) == 0 && time.Now().Before(deadline); {
		if got, err = c.ReadLog(ctx, end, 1000); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if len(got) == 0 || got[len(got)-1].Position != appended {
		t.Fatalf("after the horizon moved: %d events; want them up to %v", len(got), appended)
	}
	if c.Pending(appended) {
		t.Fatal("still pending after reading the announced events")
	}
}
