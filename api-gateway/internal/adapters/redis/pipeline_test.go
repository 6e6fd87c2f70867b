package redis_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"upi/api-gateway/internal/app"
)

// Concurrent requests' scripts share round trips (the pipeline), and each request still gets its own
// answer: its claim, its stored response, its replay; of two requests with one key, one claim. Redis losing
// its script cache meanwhile changes nothing.
func TestConcurrentRequestsSharePipelinesEachWithItsOwnAnswer(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 30*time.Second, 1000, 100000)
	const n = 64
	scope := func(i int) app.Scope {
		return app.Scope{Client: "c1", Method: "POST", Path: "/v1/payments", Key: fmt.Sprintf("k%d", i)}
	}
	each := func(work func(i int)) {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 2 * n {
			wg.Go(func() { <-start; work(i) })
		}
		close(start)
		wg.Wait()
	}
	if err := f.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	// Every key is claimed twice at once: one claim each, the twin told it is in flight.
	claims := make([]app.Claim, 2*n)
	before := f.trips.n.Load()
	each(func(i int) {
		res, out, err := f.store.Begin(ctx, "client:c1", scope(i%n), fmt.Sprintf("fp%d", i%n))
		switch {
		case err == nil && out.Claim != nil && res.Allowed:
			claims[i] = out.Claim
		case errors.Is(err, app.ErrInFlight):
		default:
			t.Errorf("Begin %d = %+v %+v %v", i, res, out, err)
		}
	})
	for i := range n {
		if (claims[i] == nil) == (claims[i+n] == nil) {
			t.Fatalf("key %d: claims %v and %v, want exactly one", i, claims[i], claims[i+n])
		}
	}
	// Each stores its own answer.
	each(func(i int) {
		if claims[i] == nil {
			return
		}
		stored, err := claims[i].Complete(ctx, app.StoredResponse{Status: 202, Body: []byte(fmt.Sprintf(`{"n":%d}`, i%n))})
		if err != nil || !stored {
			t.Errorf("Complete %d = %v, %v", i, stored, err)
		}
	})
	trips := f.trips.n.Load() - before
	t.Logf("%d round trips for %d scripts", trips, 2*n+n)
	if trips >= 2*n+n {
		t.Fatalf("%d round trips for %d scripts: none shared", trips, 2*n+n)
	}
	// Each key replays its own answer.
	each(func(i int) {
		_, out, err := f.store.Begin(ctx, "client:c1", scope(i%n), fmt.Sprintf("fp%d", i%n))
		if err != nil || out.Replay == nil || string(out.Replay.Body) != fmt.Sprintf(`{"n":%d}`, i%n) {
			t.Errorf("replay %d = %+v, %v", i, out.Replay, err)
		}
	})
}
