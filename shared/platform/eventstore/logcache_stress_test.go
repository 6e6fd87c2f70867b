package eventstore_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"upi/shared/platform/eventstore"
)

// The stress workload of TestStressReadLog (out-of-order commits, multi-event transactions, rollbacks),
// followed by several readers through one tiny LogCache, with different limits (1 cuts inside every
// multi-event transaction), one of them starting late (far behind the run) and one pausing at random: each
// must read every committed event exactly once, in log order, exactly as ReadLog would.
func TestLogCacheStress(t *testing.T) {
	duration := 2 * time.Second
	const writers = 8
	ctx := context.Background()
	pool := newPool(t, writers+8)
	store := eventstore.New(pool)
	ledger := &stressLedger{committed: map[uuid.UUID]string{}, rolledBack: map[uuid.UUID]bool{}, streamLen: map[string]int{}}
	// Findings that the log ends are trusted for 2 ms, and half the commits are hinted (the others' hints
	// are lost): a hint may come before its transaction is below the horizon, as in the runner.
	cache := eventstore.NewLogCache(pool, 3, decodeAmount, 2*time.Millisecond)

	type reader struct {
		limit  int
		delay  time.Duration
		jitter bool
	}
	readers := []reader{{1, 0, false}, {2, 0, true}, {5, 0, false}, {16, 0, true}, {3, 700 * time.Millisecond, false}}
	fences := make([]chan uint64, len(readers))
	results := make([]chan stressResult, len(readers))
	for i, r := range readers {
		fences[i], results[i] = make(chan uint64, 1), make(chan stressResult, 1)
		go func() {
			time.Sleep(r.delay)
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			evs, err := follow(ctx, pool, fences[i], r.limit, func(ctx context.Context, after eventstore.Position, limit int) ([]eventstore.Event, error) {
				if r.jitter && rng.IntN(4) == 0 {
					time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
				}
				return cache.ReadLog(ctx, after, limit)
			})
			results[i] <- stressResult{evs, err}
		}()
	}

	end := time.Now().Add(duration)
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for time.Now().Before(end) && errs[w] == nil {
				errs[w] = stressTx(ctx, store, ledger, rng)
				if rng.IntN(2) == 0 {
					cache.Hinted()
				}
			}
		})
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", w, err)
		}
	}
	var after uint64
	if err := pool.QueryRow(ctx, `select pg_current_xact_id()::text::bigint`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	for _, f := range fences {
		f <- after
	}
	t.Logf("%d transactions, %d rolled back, %d events committed", ledger.txs, ledger.rollbacks, len(ledger.committed))
	for i, r := range readers {
		res := <-results[i]
		if res.err != nil {
			t.Fatalf("reader %d: %v", i, res.err)
		}
		lost, dup, ghosts := tally(ledger, res.events)
		if lost != 0 || dup != 0 || ghosts != 0 {
			t.Errorf("reader %d (limit %d): %d lost, %d twice, %d never committed", i, r.limit, lost, dup, ghosts)
		}
		for j := 1; j < len(res.events); j++ {
			if !res.events[j-1].Position.Less(res.events[j].Position) {
				t.Fatalf("reader %d: event %d out of order", i, j)
			}
		}
		for _, e := range res.events {
			if a, ok := e.Data.(amount); !ok || a.Amount != amountOf(t, e) {
				t.Fatalf("reader %d: event %s has Data %#v", i, e.ID, e.Data)
			}
		}
	}
}

type stressResult struct {
	events []eventstore.Event
	err    error
}
