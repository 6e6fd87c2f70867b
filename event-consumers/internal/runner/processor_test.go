package runner_test

import (
	"context"
	"errors"
	"sync"
	"testing"

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
