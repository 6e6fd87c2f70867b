package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"upi/shared/testenv"
)

// BenchmarkPaymentsEndToEnd measures payments from initiation to COMPLETED as a client sees it: POST
// /v1/payments through the gateway, then GET /v1/payments/{id}?wait=5s until the status is COMPLETED. 16
// clients pay concurrently between distinct pairs of accounts. It reports completed payments per second
// and the p50/p99 of initiation-to-completed latency. E2E_CLIENTS=1 measures a lightly loaded system.
func BenchmarkPaymentsEndToEnd(b *testing.B) {
	clients := envInt("E2E_CLIENTS", 16)
	dbURL := testenv.Postgres(b)
	redisURL := testenv.Redis(b)
	cmd := testenv.StartService(b, "command-service", map[string]string{"DATABASE_URL": dbURL, "LOG_LEVEL": "warn"})
	qry := testenv.StartService(b, "query-service", map[string]string{"DATABASE_URL": dbURL, "LOG_LEVEL": "warn"})
	testenv.StartService(b, "event-consumers", map[string]string{"DATABASE_URL": dbURL, "COMMAND_SERVICE_URL": cmd.URL, "LOG_LEVEL": "warn"})
	gw := testenv.StartService(b, "api-gateway", map[string]string{
		"REDIS_URL": redisURL, "COMMAND_SERVICE_URL": cmd.URL, "QUERY_SERVICE_URL": qry.URL, "LOG_LEVEL": "warn",
		"API_KEYS": "bench=bench-key", "RATE_LIMIT_RPS": "1000000", "RATE_LIMIT_BURST": "1000000",
	})
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	c := &bankClient{gw.URL, "bench-key", hc}
	ctx := context.Background()

	run := uuid.NewString()[:8]
	payers := make([]string, clients)
	payees := make([]string, clients)
	for i := range clients {
		payers[i] = fmt.Sprintf("payer%d.%s@bench", i, run)
		payees[i] = fmt.Sprintf("payee%d.%s@bench", i, run)
		for _, vpa := range []string{payers[i], payees[i]} {
			if st, body := c.post(ctx, b, "/v1/accounts", "open-"+vpa, map[string]any{"vpa": vpa, "holder_name": "Bench"}); st != 201 {
				b.Fatalf("open %s: %d %s", vpa, st, body)
			}
		}
		if st, body := c.post(ctx, b, "/v1/accounts/"+payers[i]+"/deposits", "fund-"+payers[i],
			map[string]any{"amount_paise": 100000000, "reference": "bench"}); st != 201 {
			b.Fatalf("fund: %d %s", st, body)
		}
	}

	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  atomic.Int32
		next      atomic.Int64
	)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				began := time.Now()
				st, body := c.post(ctx, b, "/v1/payments", uuid.NewString(),
					map[string]any{"payer_vpa": payers[i], "payee_vpa": payees[i], "amount_paise": 100})
				if st != 202 {
					failures.Add(1)
					continue
				}
				var p struct {
					PaymentID string `json:"payment_id"`
					Status    string `json:"status"`
				}
				_ = json.Unmarshal(body, &p)
				for p.Status != "COMPLETED" && p.Status != "FAILED" {
					st, body, _ := c.do(ctx, http.MethodGet, "/v1/payments/"+p.PaymentID+"?wait=5s", "", nil)
					if st != 200 && st != 404 {
						failures.Add(1)
						break
					}
					_ = json.Unmarshal(body, &p)
				}
				if p.Status != "COMPLETED" {
					failures.Add(1)
					continue
				}
				mu.Lock()
				latencies = append(latencies, time.Since(began))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failures.Load(); n > 0 {
		b.Fatalf("%d payments did not complete", n)
	}
	slices.Sort(latencies)
	pct := func(q float64) float64 {
		return float64(latencies[int(q*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "payments/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
