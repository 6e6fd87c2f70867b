package runner_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"upi/event-consumers/internal/runner"
	"upi/event-consumers/internal/workload"
	"upi/shared/platform/eventstore"
	"upi/testenv"
)

// recorder is a processor that fails its first calls, and records every event it was handed.
type recorder struct {
	mu       sync.Mutex
	failures int
	calls    int
	seen     map[eventstore.Position]int
}

func (r *recorder) Name() string { return "test-processor" }

func (r *recorder) Handle(_ context.Context, batch []eventstore.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	for _, e := range batch {
		r.seen[e.Position]++
	}
	if r.calls <= r.failures {
		return errors.New("downstream unavailable")
	}
	return nil
}

func (r *recorder) counts() (calls int, seen map[eventstore.Position]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[eventstore.Position]int, len(r.seen))
	for k, v := range r.seen {
		out[k] = v
	}
	return r.calls, out
}

// A processor's failing batch is handed again (at least once), and the checkpoint moves only after it
// succeeds; every event is handed, none skipped.
func TestProcessorRetriesTheSameBatchUntilItSucceeds(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	bank := workload.New(eventstore.New(pool))
	openAccounts(t, ctx, bank, 3)
	// All of it below the horizon first, so that the processor's first batch is the whole log.
	var lastID uuid.UUID
	if err := pool.QueryRow(ctx, `select event_id from events order by tx_id desc, global_position desc limit 1`).Scan(&lastID); err != nil {
		t.Fatal(err)
	}
	waitVisible(t, pool, lastID)
	rec := &recorder{failures: 3, seen: map[eventstore.Position]int{}}
	start(t, pool, fastOpts(), rec)
	last := waitCaughtUp(t, pool, rec.Name())

	calls, seen := rec.counts()
	var logSize int
	if err := pool.QueryRow(ctx, `select count(*) from events`).Scan(&logSize); err != nil {
		t.Fatal(err)
	}
	if len(seen) != logSize {
		t.Fatalf("handled %d distinct events, the log holds %d", len(seen), logSize)
	}
	if calls != 4 || seen[last] != 4 {
		t.Fatalf("%d calls, last event handed %d times; want the one batch handed 3 times failing and once more", calls, seen[last])
	}
	if cp, _ := runner.LoadCheckpoint(ctx, pool, rec.Name()); cp != last {
		t.Fatalf("checkpoint %v, want %v", cp, last)
	}
}

// firstBatch is a processor that keeps the first batch it is handed, and when.
type firstBatch struct {
	once  sync.Once
	at    time.Time
	batch []eventstore.Event
	done  chan struct{}
}

func (f *firstBatch) Name() string { return "test-patient" }

func (f *firstBatch) Handle(_ context.Context, batch []eventstore.Event) error {
	f.once.Do(func() { f.at, f.batch = time.Now(), batch; close(f.done) })
	return nil
}

// A patient consumer (Options.Patience), woken by a hint, waits its patience before it reads: nothing
// reaches it before, and what was appended meanwhile comes in the same batch.
func TestPatientConsumerReadsAfterItsPatience(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	bank := workload.New(eventstore.New(pool))
	const patience = 400 * time.Millisecond
	opts := fastOpts()
	// Only hints wake it: an empty poll waits 20 s.
	opts.MinPoll, opts.MaxPoll = 20*time.Second, 20*time.Second
	f := &firstBatch{done: make(chan struct{})}
	opts.Patience = map[string]time.Duration{f.Name(): patience}
	start(t, pool, opts, f)
	// The listener wakes every consumer once when it starts listening: past that wake's patience, the read
	// finds the log empty and the consumer waits.
	time.Sleep(patience + 600*time.Millisecond)

	hint := func(p eventstore.Position) {
		if _, err := pool.Exec(ctx, `select pg_notify($1, $2)`, eventstore.HintChannel, eventstore.HintPayload(p.TxID)); err != nil {
			t.Fatal(err)
		}
	}
	first, err := bank.Open(ctx, "patient@okbank", "client-0")
	if err != nil {
		t.Fatal(err)
	}
	hinted := time.Now()
	hint(first)
	time.Sleep(50 * time.Millisecond)
	second, err := bank.Deposit(ctx, "patient@okbank", 100)
	if err != nil {
		t.Fatal(err)
	}
	hint(second)
	// Whether the second is below the horizon before the patience ends depends on other tests' transactions
	// (the horizon is the cluster's): only then must it be in the batch.
	var visible bool
	if err := pool.QueryRow(ctx, `select $1::bigint::text::xid8 < pg_snapshot_xmin(pg_current_snapshot())`, int64(second.TxID)).Scan(&visible); err != nil {
		t.Fatal(err)
	}
	visibleBefore := visible && time.Since(hinted) < patience-50*time.Millisecond

	select {
	case <-f.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the hinted events never reached the consumer")
	}
	if waited := f.at.Sub(hinted); waited < patience {
		t.Fatalf("the batch came %v after the hint; the consumer's patience is %v", waited, patience)
	}
	if len(f.batch) == 0 || f.batch[0].Position != first {
		t.Fatalf("first batch %v, want it to start with the first append %v", f.batch, first)
	}
	if visibleBefore && f.batch[len(f.batch)-1].Position != second {
		t.Fatalf("the second append (visible before the patience ended) is not in the batch: %d events", len(f.batch))
	}
}
