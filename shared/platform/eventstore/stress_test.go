package eventstore_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/shared/platform/eventstore"
)

var stressDuration = flag.Duration("stress.duration", 5*time.Second,
	"how long the stress test's writers run (1s with -short)")

// The workload: enough writers to keep several transactions in flight on each stream and across streams,
// a slice of them rolled back, and random pauses inside every transaction so that commits land out of
// global-position order, which is what defeats a plain position cursor.
const (
	stressWriters      = 32
	stressStreams      = 12
	stressRollbackRate = 0.10 // transactions that insert and then roll back
	stressAppendRate   = 0.25 // committed through Store.Append rather than an explicit transaction
	stressMaxPause     = 5 * time.Millisecond
	stressReadBatch    = 16
	stressDrainTimeout = 30 * time.Second
)

// stressLedger is what the writers know they did, to hold the readers to.
type stressLedger struct {
	mu         sync.Mutex
	committed  map[uuid.UUID]string // event id -> stream
	rolledBack map[uuid.UUID]bool
	streamLen  map[string]int
	txs        int
	rollbacks  int
}

func (l *stressLedger) commit(evs []eventstore.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.txs++
	for _, e := range evs {
		l.committed[e.ID] = e.AggregateID
		l.streamLen[e.AggregateID]++
	}
}

func (l *stressLedger) rollback(evs []eventstore.NewEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.txs++
	l.rollbacks++
	for _, e := range evs {
		l.rolledBack[e.ID] = true
	}
}

// TestStressReadLog runs concurrent writers, with rollbacks and out-of-order commits, while two readers
// follow the global log: ReadLog, which must see every committed event exactly once and each stream in
// version order; and a naive `global_position > checkpoint` poller, which must be caught losing events,
// or the workload proves nothing.
func TestStressReadLog(t *testing.T) {
	duration := *stressDuration
	if testing.Short() {
		duration = time.Second
	}
	ctx := context.Background()
	pool := newPool(t, stressWriters+4)
	store := eventstore.New(pool)
	ledger := &stressLedger{committed: map[uuid.UUID]string{}, rolledBack: map[uuid.UUID]bool{}, streamLen: map[string]int{}}

	fence := make(chan uint64, 1) // closed over by the readers: the writers have stopped before this xid
	type result struct {
		events []eventstore.Event
		err    error
	}
	good, naive := make(chan result, 1), make(chan result, 1)
	go func() {
		evs, err := followReadLog(ctx, pool, fence)
		good <- result{evs, err}
	}()
	writersDone := make(chan struct{})
	go func() {
		evs, err := followNaively(ctx, pool, writersDone)
		naive <- result{evs, err}
	}()

	end := time.Now().Add(duration)
	var wg sync.WaitGroup
	writerErrs := make([]error, stressWriters)
	for w := range stressWriters {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for time.Now().Before(end) && writerErrs[w] == nil {
				writerErrs[w] = stressTx(ctx, store, ledger, rng)
			}
		})
	}
	wg.Wait()
	close(writersDone)
	for w, err := range writerErrs {
		if err != nil {
			t.Errorf("writer %d: %v", w, err)
		}
	}
	// Every writer's transaction has ended, so an xid taken now is above all of theirs: once the
	// horizon passes it, ReadLog can see everything that committed.
	var after uint64
	if err := pool.QueryRow(ctx, `select pg_current_xact_id()::text::bigint`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	fence <- after

	var stored int
	if err := pool.QueryRow(ctx, `select count(*) from events`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	committedEvents := len(ledger.committed)
	t.Logf("%d writers for %v: %d transactions, %d rolled back, %d events committed on %d streams",
		stressWriters, duration, ledger.txs, ledger.rollbacks, committedEvents, len(ledger.streamLen))
	if stored != committedEvents {
		t.Fatalf("events table holds %d events, the writers committed %d", stored, committedEvents)
	}
	if ledger.rollbacks == 0 || committedEvents < 100 {
		t.Fatalf("workload too small to prove anything: %d rollbacks, %d events", ledger.rollbacks, committedEvents)
	}

	g, n := <-good, <-naive
	t.Run("ReadLog sees every committed event once, streams in order", func(t *testing.T) {
		if g.err != nil {
			t.Fatal(g.err)
		}
		lost, dup, ghosts := tally(ledger, g.events)
		if lost != 0 || dup != 0 || ghosts != 0 {
			t.Errorf("ReadLog read %d events: %d committed events lost, %d read twice, %d read that were never committed",
				len(g.events), lost, dup, ghosts)
		}
		streamAt := map[string]int{}
		for i, e := range g.events {
			if i > 0 && !g.events[i-1].Position.Less(e.Position) {
				t.Fatalf("event %d at %+v does not sort after %+v", i, e.Position, g.events[i-1].Position)
			}
			if e.Version != streamAt[e.AggregateID]+1 {
				t.Fatalf("stream %s: read version %d after %d", e.AggregateID, e.Version, streamAt[e.AggregateID])
			}
			streamAt[e.AggregateID] = e.Version
		}
		for stream, n := range ledger.streamLen {
			if streamAt[stream] != n {
				t.Errorf("stream %s: read up to version %d, %d committed", stream, streamAt[stream], n)
			}
		}
	})
	t.Run("a global_position cursor loses events", func(t *testing.T) {
		if n.err != nil {
			t.Fatal(n.err)
		}
		lost, dup, ghosts := tally(ledger, n.events)
		t.Logf("naive reader lost %d of %d committed events (%.1f%%)", lost, committedEvents,
			100*float64(lost)/float64(committedEvents))
		if dup != 0 || ghosts != 0 {
			t.Errorf("naive reader: %d read twice, %d never committed", dup, ghosts)
		}
		if lost == 0 {
			t.Error("the naive reader lost nothing: the workload is too gentle to catch a skipping reader")
		}
	})
}

// stressTx is one writer's transaction on a random stream: 1 to 3 events, committed through Store.Append,
// or through an explicit transaction that takes the stream's lock first (as Append does) and pauses
// before its insert and before its commit, or that inserts and then rolls back.
func stressTx(ctx context.Context, store *eventstore.Store, ledger *stressLedger, rng *rand.Rand) error {
	stream := fmt.Sprintf("stress-%02d@bank", rng.IntN(stressStreams))
	evs := make([]eventstore.NewEvent, 1+rng.IntN(3))
	for i := range evs {
		evs[i] = deposited(rng.IntN(1000) + 1)
	}
	pause := func() { time.Sleep(time.Duration(rng.Int64N(int64(stressMaxPause) + 1))) }

	r := rng.Float64()
	if r >= stressRollbackRate && r < stressRollbackRate+stressAppendRate {
		stored, err := store.Append(ctx, "account", stream, eventstore.AnyVersion, evs)
		if err != nil {
			return fmt.Errorf("append to %s: %w", stream, err)
		}
		ledger.commit(stored)
		return nil
	}
	rollback := r < stressRollbackRate

	tx, err := store.Pool().Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after commit
	if err := eventstore.LockStream(ctx, tx, stream); err != nil {
		return err
	}
	var version int
	if err := tx.QueryRow(ctx, `select coalesce(max(version), 0) from events where aggregate_id = $1`, stream).Scan(&version); err != nil {
		return err
	}
	pause()
	stored, err := eventstore.InsertEvents(ctx, tx, "account", stream, version, evs)
	if err != nil {
		return err
	}
	pause()
	if rollback {
		if err := tx.Rollback(ctx); err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
		ledger.rollback(evs)
		return nil
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	ledger.commit(stored)
	return nil
}

// followReadLog follows the log with ReadLog from its checkpoint in small batches, as a consumer does.
func followReadLog(ctx context.Context, pool *pgxpool.Pool, fence <-chan uint64) ([]eventstore.Event, error) {
	return follow(ctx, pool, fence, stressReadBatch, func(ctx context.Context, after eventstore.Position, limit int) ([]eventstore.Event, error) {
		return eventstore.ReadLog(ctx, pool, after, limit)
	})
}

// follow follows the log through read in batches of limit from the start. Once fence delivers an xid above
// every writer's, it drains: it reads to the end of the log, and stops when a read found nothing more
// although the horizon had already passed the fence.
func follow(ctx context.Context, pool *pgxpool.Pool, fence <-chan uint64, limit int,
	read func(context.Context, eventstore.Position, int) ([]eventstore.Event, error)) ([]eventstore.Event, error) {
	var out []eventstore.Event
	pos := eventstore.Start
	var after uint64
	var deadline time.Time
	for {
		if after == 0 {
			select {
			case after = <-fence:
				deadline = time.Now().Add(stressDrainTimeout)
			default:
			}
		}
		var horizon uint64
		if after != 0 {
			if err := pool.QueryRow(ctx, `select pg_snapshot_xmin(pg_current_snapshot())::text::bigint`).Scan(&horizon); err != nil {
				return nil, err
			}
		}
		evs, err := read(ctx, pos, limit)
		if err != nil {
			return nil, err
		}
		if len(evs) > limit {
			return nil, fmt.Errorf("%d events for a limit of %d", len(evs), limit)
		}
		for _, e := range evs {
			pos = e.Position
		}
		out = append(out, evs...)
		if len(evs) > 0 {
			continue
		}
		if after != 0 && horizon > after {
			// The read began after the horizon passed the fence, so it saw everything; but a reader may
			// end early by design (a cache trusts for a while a finding that the log ended, made when
			// another test's transaction held the horizon back): the log itself has the last word.
			more, err := eventstore.ReadLog(ctx, pool, pos, 1)
			if err != nil {
				return nil, err
			}
			if len(more) == 0 {
				return out, nil
			}
		}
		if after != 0 && time.Now().After(deadline) {
			return nil, fmt.Errorf("horizon still at %d, below %d, after %v: a long transaction elsewhere in the cluster?",
				horizon, after, stressDrainTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// followNaively is the reader the design forbids: a cursor on global_position alone. A position is taken
// at insert and becomes visible at commit, so when a later position commits first, the cursor moves past
// the earlier one, which then commits behind it and is never read.
func followNaively(ctx context.Context, pool *pgxpool.Pool, writersDone <-chan struct{}) ([]eventstore.Event, error) {
	var read []eventstore.Event
	var pos int64
	done := false
	for {
		if !done {
			select {
			case <-writersDone:
				done = true
			default:
			}
		}
		rows, err := pool.Query(ctx, `select event_id, aggregate_id, version, global_position from events
			where global_position > $1 order by global_position limit $2`, pos, stressReadBatch)
		if err != nil {
			return nil, err
		}
		n := 0
		for rows.Next() {
			var e eventstore.Event
			if err := rows.Scan(&e.ID, &e.AggregateID, &e.Version, &e.Position.GlobalPosition); err != nil {
				rows.Close()
				return nil, err
			}
			pos = e.Position.GlobalPosition
			read = append(read, e)
			n++
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		// Every writer has finished, so all that committed is visible: an empty read is the end.
		if n == 0 && done {
			return read, nil
		}
		if n == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// tally compares what a reader read with what the writers committed.
func tally(ledger *stressLedger, read []eventstore.Event) (lost, dup, ghosts int) {
	times := map[uuid.UUID]int{}
	for _, e := range read {
		times[e.ID]++
		if times[e.ID] == 2 {
			dup++
		}
		if _, ok := ledger.committed[e.ID]; !ok {
			ghosts++ // rolled back, or never written by the writers
		}
	}
	for id := range ledger.committed {
		if times[id] == 0 {
			lost++
		}
	}
	return lost, dup, ghosts
}
