package relay_test

import (
	"context"
	"testing"
	"time"

	"upi/event-consumers/internal/adapters/rabbitmq/relay/relaytest"
	"upi/event-consumers/internal/runner"
	"upi/event-consumers/internal/workload"
	"upi/testenv"
)

// BenchmarkRelayThroughput measures the relay (default batch size and in-flight bound, one bound queue)
// publishing a seeded log of ~50k events to the real broker: events published and confirmed per second,
// from a checkpoint at the start of the log to one at its end.
func BenchmarkRelayThroughput(b *testing.B) {
	url := testenv.RabbitMQ(b)
	pool, _ := testenv.PostgresPool(b)
	ctx := context.Background()
	n, err := workload.Seed(ctx, pool, 125, 100) // ~50k events
	if err != nil {
		b.Fatal(err)
	}
	exchange := relaytest.Exchange()
	feed := relaytest.Bind(b, url, exchange, "#") // a queue bound, so every message is routed and stored
	b.ResetTimer()
	for range b.N {
		if _, err := pool.Exec(ctx, `delete from projection_checkpoints where name = 'event-feed'`); err != nil {
			b.Fatal(err)
		}
		began := time.Now()
		rl := startRelayWith(b, pool, url, exchange, 0, runner.Options{})
		waitCheckpointAtEnd(b, pool, 10*time.Minute)
		elapsed := time.Since(began)
		rl.stop()
		b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
		b.ReportMetric(float64(n), "events")
	}
	b.StopTimer()
	feed.WaitAll(b, pool, time.Minute)
}
