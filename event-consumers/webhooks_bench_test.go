package main_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// benchWebhooks reports whether BenchmarkPayments runs with webhooks on (PAYBENCH_WEBHOOKS=1): an endpoint
// for the benchmark's client on a local receiver that answers 204 to everything (its CPU is the benchmark
// process's, not the services'), so that cpu-ms-*/payment beside a run without says what webhooks cost.
func benchWebhooks() bool { return os.Getenv("PAYBENCH_WEBHOOKS") == "1" }

// webhookEnv is what event-consumers needs to deliver to a receiver on loopback.
func webhookEnv(env map[string]string) {
	if benchWebhooks() {
		env["WEBHOOK_ALLOW_PRIVATE"] = "true"
	}
}

// startBenchReceiver registers the client's endpoint on a local receiver and returns how many deliveries
// it received.
func startBenchReceiver(b *testing.B, c *bankClient) *atomic.Int64 {
	b.Helper()
	var received atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if st, body := c.post(ctx, b, "/v1/webhook-endpoints", "bench-endpoint", map[string]any{"url": srv.URL}); st != 201 {
		b.Fatalf("register the webhook endpoint: %d %s", st, body)
	}
	return &received
}

// waitWebhooksSent waits until no delivery is pending, so that sending them is inside the CPU sample.
func (s *paymentStack) waitWebhooksSent(ctx context.Context, b *testing.B) {
	b.Helper()
	if s.webhooks == nil {
		return
	}
	for {
		var pending int
		if err := s.pool.QueryRow(ctx, `select count(*) from webhook_pending`).Scan(&pending); err != nil {
			b.Fatal(err)
		}
		if pending == 0 {
			b.ReportMetric(float64(s.webhooks.Load()), "webhooks")
			return
		}
		select {
		case <-ctx.Done():
			b.Fatalf("%d webhook deliveries still pending: %v", pending, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
