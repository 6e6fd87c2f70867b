package runner_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"upi/event-consumers/internal/runner"
	"upi/testenv"
)

// Two replicas run one periodic job: only one runs it at a time, never both at once; when the holder's
// database session dies (its backend terminated, as when its process is killed), the other takes over.
func TestPeriodicJobRunsOnOneReplicaAtATime(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var inFlight, overlaps atomic.Int32
	runs := [2]atomic.Int32{}
	var wg sync.WaitGroup
	for i := range 2 {
		r := runner.New(pool, testLog(t), prometheus.NewRegistry(), fastOpts())
		wg.Go(func() {
			r.Periodic(ctx, "test-job", 10*time.Millisecond, func(context.Context) {
				if inFlight.Add(1) > 1 {
					overlaps.Add(1)
				}
				runs[i].Add(1)
				time.Sleep(5 * time.Millisecond)
				inFlight.Add(-1)
			})
		})
	}
	time.Sleep(time.Second)
	a, b := runs[0].Load(), runs[1].Load()
	if (a == 0) == (b == 0) {
		t.Fatalf("after a second the replicas ran the job %d and %d times; want one replica only", a, b)
	}
	active, standby := 0, 1
	if a == 0 {
		active, standby = 1, 0
	}

	// The active replica's lock session dies.
	var killed int
	if err := pool.QueryRow(ctx, `select count(pg_terminate_backend(pid)) from pg_locks
		where locktype = 'advisory' and granted and database = (select oid from pg_database where datname = current_database())`).
		Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminated %d lock sessions (%v), want 1", killed, err)
	}
	// Either replica may win the lock next: the standby, or the one that lost it, once it stands by
	// again with a new session. What matters is that the job runs on, on one of them.
	total := func() int32 { return runs[0].Load() + runs[1].Load() }
	time.Sleep(50 * time.Millisecond) // a run begun before the kill may still finish
	before := total()
	deadline := time.Now().Add(10 * time.Second)
	for total() < before+5 { // every 10 ms: several runs, so a replica holds the lock again
		if time.Now().After(deadline) {
			t.Fatalf("the job did not run again on either replica after the lock session died (standby was #%d)", standby+1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	cancel()
	wg.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("the job ran on both replicas at once %d times", n)
	}
	t.Logf("runs: active %d, standby %d", runs[active].Load(), runs[standby].Load())
}
