package relay_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"upi/event-consumers/internal/adapters/rabbitmq/relay"
	"upi/event-consumers/internal/adapters/rabbitmq/relay/relaytest"
	"upi/event-consumers/internal/runner"
	"upi/event-consumers/internal/workload"
	"upi/shared/platform/eventstore"
	"upi/testenv"
)

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// running is a relay run by a runner, as event-consumers runs it.
type running struct {
	relay *relay.Relay
	m     *relay.Metrics
	stop  func()
}

func startRelay(t testing.TB, pool *pgxpool.Pool, url, exchange string) *running {
	t.Helper()
	return startRelayWith(t, pool, url, exchange, 64, runner.Options{BatchSize: 100, LockRetry: 50 * time.Millisecond,
		MonitorEvery: 200 * time.Millisecond, RetryMax: 200 * time.Millisecond})
}

// startRelayWith runs the relay with an in-flight bound (0: the default) and the runner's opts.
func startRelayWith(t testing.TB, pool *pgxpool.Pool, url, exchange string, inFlight int, opts runner.Options) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := relay.NewMetrics(reg)
	rl := relay.New(relay.Config{URL: url, Exchange: exchange, InFlight: inFlight, RetryMax: 200 * time.Millisecond},
		testLog(t), m)
	r := runner.New(pool, testLog(t), reg, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		wg.Go(func() { rl.Run(ctx) }) // as main runs it: connected before the first event
		if err := r.Run(ctx, rl); err != nil {
			t.Errorf("run: %v", err)
		}
		wg.Wait()
		rl.Close()
	}()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return &running{relay: rl, m: m, stop: stop}
}

// write appends n events with `writers` concurrent writers over `streams` streams, each append one to
// three events; it returns when all are committed.
func write(t testing.TB, pool *pgxpool.Pool, writers, streams, n int) {
	t.Helper()
	store := eventstore.New(pool)
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				k := 1 + rng.IntN(3)
				after := left.Add(-int64(k))
				if after < 0 {
					k += int(after) // only what is left
				}
				if k <= 0 {
					return
				}
				evs := make([]eventstore.NewEvent, k)
				for i := range evs {
					evs[i] = eventstore.NewEvent{ID: uuid.New(), Type: "Ticked", Data: map[string]int{"n": i}}
				}
				stream := fmt.Sprintf("stream-%d", rng.IntN(streams))
				if _, err := store.Append(context.Background(), "test", stream, eventstore.AnyVersion, evs); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// A busy log (concurrent writers while the relay runs) arrives whole at a bound queue, each message as
// the contract says, each stream's first deliveries in version order.
func TestRelayPublishesEveryEventInStreamOrder(t *testing.T) {
	url := testenv.RabbitMQ(t)
	pool, _ := testenv.PostgresPool(t)
	exchange := relaytest.Exchange()
	feed := relaytest.Bind(t, url, exchange, "#")
	only := relaytest.Bind(t, url, exchange, "test.Ticked") // a narrower binding gets the same

	rl := startRelay(t, pool, url, exchange)
	write(t, pool, 8, 40, 3000)
	log := feed.WaitAll(t, pool, 90*time.Second)
	if len(log) < 3000 {
		t.Fatalf("log holds %d events, want at least 3000", len(log))
	}
	repeats := relaytest.Check(t, log, feed.Deliveries())
	only.WaitAll(t, pool, 30*time.Second)
	relaytest.Check(t, log, only.Deliveries())
	if repeats != 0 {
		t.Errorf("%d repeats in a run without failures", repeats)
	}
	if err := rl.relay.Ping(context.Background()); err != nil {
		t.Errorf("ping while connected: %v", err)
	}
	rl.stop()
	if got := testutil.ToFloat64(rl.m.Confirmed()); got != float64(len(log)) {
		t.Errorf("confirmed counter %v, want %d", got, len(log))
	}
}

// The relay stopped again and again at random moments while writers append (its context cancelled
// mid-batch, confirms outstanding), then left to run: nothing is lost and repeats are exact copies. The
// binary killed with SIGKILL is event-consumers' TestFeedSurvivesKillsAndSubscriberMatchesProjection.
func TestRelayRestartedMidStreamLosesNothing(t *testing.T) {
	url := testenv.RabbitMQ(t)
	pool, _ := testenv.PostgresPool(t)
	exchange := relaytest.Exchange()
	feed := relaytest.Bind(t, url, exchange, "#")

	writing := make(chan struct{})
	go func() { defer close(writing); write(t, pool, 4, 20, 4000) }()
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 5 {
		rl := startRelay(t, pool, url, exchange)
		before := feed.Distinct()
		deadline := time.Now().Add(20 * time.Second)
		for feed.Distinct() == before && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
		rl.stop()
		t.Logf("round %d: stopped after %d distinct events", round, feed.Distinct())
	}
	<-writing
	startRelay(t, pool, url, exchange)
	log := feed.WaitAll(t, pool, 90*time.Second)
	repeats := relaytest.Check(t, log, feed.Deliveries())
	t.Logf("%d events, %d repeats after 5 stops", len(log), repeats)
}

// The broker unreachable mid-stream (a proxy between relay and broker cut for a while): the relay reports
// itself disconnected, retries on its own, and once the broker answers again every event arrives.
func TestRelayBrokerOutageLosesNothing(t *testing.T) {
	url := testenv.RabbitMQ(t)
	pool, _ := testenv.PostgresPool(t)
	exchange := relaytest.Exchange()
	feed := relaytest.Bind(t, url, exchange, "#")
	proxy := relaytest.NewProxy(t, relaytest.BrokerAddr(t, url))

	rl := startRelay(t, pool, proxy.URL(url), exchange)
	writing := make(chan struct{})
	go func() { defer close(writing); write(t, pool, 4, 20, 4000) }()
	for range 3 {
		before := feed.Distinct()
		for feed.Distinct() < before+200 {
			time.Sleep(2 * time.Millisecond)
		}
		proxy.Cut()
		deadline := time.Now().Add(10 * time.Second)
		for rl.relay.Ping(context.Background()) == nil {
			if time.Now().After(deadline) {
				t.Fatal("relay still reports itself connected with the broker cut off")
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Messages the broker took before the cut may still be on their way to the test's own consumer
		// (which does not go through the proxy): let them arrive before counting.
		cutAt := feed.Distinct()
		for {
			time.Sleep(200 * time.Millisecond)
			now := feed.Distinct()
			if now == cutAt {
				break
			}
			cutAt = now
		}
		time.Sleep(700 * time.Millisecond) // several reconnect attempts fail
		if got := feed.Distinct(); got != cutAt {
			t.Fatalf("%d events arrived while the relay was cut off", got-cutAt)
		}
		proxy.Restore()
	}
	<-writing
	log := feed.WaitAll(t, pool, 90*time.Second)
	repeats := relaytest.Check(t, log, feed.Deliveries())
	if err := rl.relay.Ping(context.Background()); err != nil {
		t.Errorf("ping after the outage: %v", err)
	}
	t.Logf("%d events, %d repeats, republished counter %v after 3 outages", len(log), repeats,
		testutil.ToFloat64(rl.m.Republished()))
}

// waitCheckpointAtEnd waits until the relay's checkpoint is at the last event appended.
func waitCheckpointAtEnd(t testing.TB, pool *pgxpool.Pool, within time.Duration) {
	t.Helper()
	ctx := context.Background()
	last, err := workload.LastPosition(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(within)
	for {
		cp, err := runner.LoadCheckpoint(ctx, pool, relay.Name)
		if err != nil {
			t.Fatal(err)
		}
		if cp == last {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay checkpoint at %v, not at the last event %v", cp, last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
