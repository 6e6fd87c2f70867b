package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"upi/event-consumers/internal/adapters/postgres/projections"
	"upi/event-consumers/internal/runner"
	"upi/event-consumers/internal/workload"
	"upi/shared/platform/eventstore"
	"upi/shared/platform/servicetoken"
	"upi/testenv"
)

// gatewayClient calls the query service as the gateway does, with the gateway's development token.
var gatewayClient = &http.Client{Transport: servicetoken.NewSigner(servicetoken.Gateway,
	servicetoken.DevRoot(servicetoken.Gateway)).Transport(servicetoken.QueryService, nil)}

// readSide is the read path running for real: the runner in this process, the query-service binary
// beside it, and a bank appending to the log.
type readSide struct {
	base string
	bank *workload.Bank
}

func startReadSide(tb testing.TB, accounts []string) readSide {
	tb.Helper()
	pool, url := testenv.PostgresPool(tb)
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	store := eventstore.New(pool)
	go store.RunHints(ctx, log, 2*time.Millisecond)
	bank := workload.New(store)
	for _, v := range accounts {
		if _, err := bank.Open(ctx, v, "bench"); err != nil {
			tb.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = runner.New(pool, log, prometheus.NewRegistry(), runner.Options{}).
			Run(ctx, projections.Accounts{}, projections.Payments{})
	}()
	tb.Cleanup(func() { cancel(); <-done })

	qs := testenv.StartService(tb, "query-service", map[string]string{"DATABASE_URL": url, "LOG_LEVEL": "warn", "QUERY_WAIT_MAX": "5s"})
	if err := testenv.WaitHTTP(context.Background(), qs.URL+"/readyz", http.StatusOK); err != nil {
		tb.Fatal(err)
	}
	base := qs.URL
	return readSide{base: base, bank: bank}
}

// balance GETs an account's balance as its owner, with min_position.
func (rs readSide) balance(tb testing.TB, vpa string, min eventstore.Position) (int64, *http.Response) {
	req, _ := http.NewRequest(http.MethodGet,
		fmt.Sprintf("%s/v1/accounts/%s/balance?min_position=%s", rs.base, vpa, min.Token()), nil)
	req.Header.Set("X-Client-ID", "bench")
	resp, err := gatewayClient.Do(req)
	if err != nil {
		tb.Error(err)
		return 0, nil
	}
	defer resp.Body.Close()
	var body struct {
		BalancePaise int64 `json:"balance_paise"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return body.BalancePaise, resp
}

// Read-your-writes through the real services: every read with the position of a write sees that write.
func TestReadYourWritesThroughQueryService(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the query service")
	}
	rs := startReadSide(t, []string{"ryw@okbank"})
	ctx := context.Background()
	var want int64
	for i := 1; i <= 25; i++ {
		pos, err := rs.bank.Deposit(ctx, "ryw@okbank", int64(i))
		if err != nil {
			t.Fatal(err)
		}
		want += int64(i)
		got, resp := rs.balance(t, "ryw@okbank", pos)
		if resp == nil || resp.StatusCode != 200 || resp.Header.Get("X-Projection-Stale") != "" || got != want {
			t.Fatalf("deposit %d: read %d (status %v, stale %q), want balance %d", i, got, resp.Status,
				resp.Header.Get("X-Projection-Stale"), want)
		}
		if p, err := eventstore.ParseToken(resp.Header.Get("X-Projection-Position")); err != nil || p.Less(pos) {
			t.Fatalf("X-Projection-Position %q is before the write %v", resp.Header.Get("X-Projection-Position"), pos)
		}
	}
}

// BenchmarkEndToEndLag appends deposits at a steady rate and measures, for each, the time from the append
// returning to the query service (the real binary) answering the balance with that deposit in it: a GET
// with min_position, which waits for the projection and answers as soon as its checkpoint passes it.
func BenchmarkEndToEndLag(b *testing.B) {
	const writers, perSecond = 8, 25 // 200 deposits/s in all
	vpas := make([]string, writers)
	for i := range vpas {
		vpas[i] = "lag" + strconv.Itoa(i) + "@okbank"
	}
	rs := startReadSide(b, vpas)
	ctx := context.Background()
	bank := rs.bank
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
						_, resp := rs.balance(b, vpas[w], pos)
						if resp == nil {
							return
						}
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
