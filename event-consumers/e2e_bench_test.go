package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"upi/event-consumers/internal/projections"
	"upi/event-consumers/internal/runner"
	"upi/event-consumers/internal/workload"
	"upi/shared/eventstore"
	"upi/shared/testenv"
)

// BenchmarkEndToEndLag appends deposits at a steady rate and measures, for each, the time from the append
// returning to the query service (the real binary) answering the balance with that deposit in it: a GET
// with min_position, which waits for the projection and answers as soon as its checkpoint passes it.
func BenchmarkEndToEndLag(b *testing.B) {
	pool, url := testenv.PostgresPool(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	store := eventstore.New(pool)
	go store.RunHints(ctx, log, 2*time.Millisecond)
	bank := workload.New(store)
	const writers, perSecond = 8, 25 // 200 deposits/s in all
	vpas := make([]string, writers)
	for i := range vpas {
		vpas[i] = "lag" + strconv.Itoa(i) + "@okbank"
		if _, err := bank.Open(ctx, vpas[i], "bench"); err != nil {
			b.Fatal(err)
		}
	}
	go func() {
		_ = runner.New(pool, log, prometheus.NewRegistry(), runner.Options{}).
			Run(ctx, projections.Accounts{}, projections.Payments{})
	}()

	bin := filepath.Join(b.TempDir(), "query-service")
	if out, err := exec.Command("go", "build", "-o", bin, "../query-service").CombinedOutput(); err != nil {
		b.Fatalf("build query-service: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	qs := exec.Command(bin)
	qs.Env = append(os.Environ(), "DATABASE_URL="+url, "QUERY_SERVICE_ADDR="+addr, "LOG_LEVEL=warn", "QUERY_WAIT_MAX=5s")
	if err := qs.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = qs.Process.Kill(); _ = qs.Wait() }()
	base := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("query-service not ready")
		}
		time.Sleep(50 * time.Millisecond)
	}

	b.ResetTimer()
	for range b.N {
		var mu sync.Mutex
		var lags []time.Duration
		stale := 0
		var wg, reads sync.WaitGroup
		runFor := 10 * time.Second
		for w := range writers {
			wg.Go(func() {
				tick := time.NewTicker(time.Second / perSecond)
				defer tick.Stop()
				end := time.Now().Add(runFor)
				for time.Now().Before(end) {
					<-tick.C
					pos, err := bank.Deposit(ctx, vpas[w], 1)
					if err != nil {
						b.Error(err)
						return
					}
					appended := time.Now()
					// The read runs beside the next writes, so the write rate holds whatever the lag.
					reads.Go(func() {
						req, _ := http.NewRequest(http.MethodGet,
							fmt.Sprintf("%s/v1/accounts/%s/balance?min_position=%s", base, vpas[w], pos.Token()), nil)
						req.Header.Set("X-Client-ID", "bench")
						resp, err := http.DefaultClient.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						lag := time.Since(appended)
						mu.Lock()
						if resp.StatusCode != 200 || resp.Header.Get("X-Projection-Stale") == "true" {
							stale++
						}
						lags = append(lags, lag)
						mu.Unlock()
					})
				}
			})
		}
		wg.Wait()
		reads.Wait()
		slices.Sort(lags)
		pct := func(p float64) float64 {
			return float64(lags[int(p*float64(len(lags)-1))].Microseconds()) / 1000
		}
		b.ReportMetric(pct(0.50), "p50_ms")
		b.ReportMetric(pct(0.99), "p99_ms")
		b.ReportMetric(float64(len(lags))/runFor.Seconds(), "writes/s")
		b.ReportMetric(float64(stale), "stale")
	}
}
