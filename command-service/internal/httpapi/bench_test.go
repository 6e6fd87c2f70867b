package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"upi/testenv"
)

// benchClients is the number of concurrent clients of the throughput benchmarks.
const benchClients = 16

// benchEnv is the service as main wires it: a pool of 32 connections behind the real router, served over
// HTTP with keep-alive connections for every client.
func benchEnv(b *testing.B) (*env, *http.Client) {
	b.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.Postgres(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 32
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	e := newEnvOn(b, pool)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * benchClients}, Timeout: 30 * time.Second}
	b.Cleanup(hc.CloseIdleConnections)
	return e, hc
}

type request struct{ client, key, path, body string }

// hammer sends b.N requests from benchClients concurrent clients and reports throughput and latency
// percentiles. next(worker, i) builds request i of a worker.
func hammer(b *testing.B, e *env, hc *http.Client, want int, next func(worker, i int) request) {
	b.Helper()
	var sent atomic.Int64
	var failed atomic.Value
	latencies := make([][]time.Duration, benchClients)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; sent.Add(1) <= int64(b.N); i++ {
				r := next(w, i)
				t := time.Now()
				resp, err := send(hc, e.srv.URL, r.client, r.key, r.path, r.body)
				latencies[w] = append(latencies[w], time.Since(t))
				if err == nil && resp.status != want {
					err = fmt.Errorf("%s: %d %s", r.path, resp.status, resp.body)
				}
				if err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	report(b, slices.Concat(latencies...), elapsed)
}

func report(b *testing.B, lat []time.Duration, elapsed time.Duration) {
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
}

func BenchmarkOpenAccount(b *testing.B) {
	e, hc := benchEnv(b)
	hammer(b, e, hc, http.StatusCreated, func(w, i int) request {
		return request{"psp-a", fmt.Sprintf("o-%d-%d", w, i), "/v1/accounts",
			fmt.Sprintf(`{"vpa":"u%d.%d@okbank","holder_name":"Holder"}`, w, i)}
	})
}

// BenchmarkDeposit: each client deposits into its own account.
func BenchmarkDeposit(b *testing.B) {
	e, hc := benchEnv(b)
	for w := range benchClients {
		e.openAccount("psp-a", fmt.Sprintf("u%d@okbank", w))
	}
	hammer(b, e, hc, http.StatusCreated, func(w, i int) request {
		return request{"psp-a", fmt.Sprintf("d-%d-%d", w, i), fmt.Sprintf("/v1/accounts/u%d@okbank/deposits", w),
			`{"amount_paise":100,"reference":"bench"}`}
	})
}

// BenchmarkDepositHotAccount: every client deposits into the same account, so every command queues on
// that stream's lock.
func BenchmarkDepositHotAccount(b *testing.B) {
	e, hc := benchEnv(b)
	e.openAccount("psp-a", "hot@okbank")
	hammer(b, e, hc, http.StatusCreated, func(w, i int) request {
		return request{"psp-a", fmt.Sprintf("d-%d-%d", w, i), "/v1/accounts/hot@okbank/deposits",
			`{"amount_paise":100,"reference":"bench"}`}
	})
}

// BenchmarkInitiatePayment: each client pays from its own account to one shared payee.
func BenchmarkInitiatePayment(b *testing.B) {
	e, hc := benchEnv(b)
	e.openAccount("psp-b", "shop@okbank")
	for w := range benchClients {
		e.openAccount("psp-a", fmt.Sprintf("u%d@okbank", w))
	}
	hammer(b, e, hc, http.StatusAccepted, func(w, i int) request {
		return request{"psp-a", fmt.Sprintf("p-%d-%d", w, i), "/v1/payments",
			fmt.Sprintf(`{"payer_vpa":"u%d@okbank","payee_vpa":"shop@okbank","amount_paise":100,"note":"bench"}`, w)}
	})
}

// BenchmarkDepositLongStream: one client depositing into an account that already has 100k events. The
// first deposit folds all of them and writes a snapshot (reported as cold_ms); the measured ones load the
// snapshot and its tail.
func BenchmarkDepositLongStream(b *testing.B) {
	e, hc := benchEnv(b)
	e.openAccount("psp-a", "whale@okbank")
	seedDeposits(b, e, "whale@okbank", 100_000)
	deposit := func(key string) (time.Duration, error) {
		t := time.Now()
		r, err := send(hc, e.srv.URL, "psp-a", key, "/v1/accounts/whale@okbank/deposits", `{"amount_paise":100,"reference":"bench"}`)
		if err == nil && r.status != http.StatusCreated {
			err = fmt.Errorf("deposit: %d %s", r.status, r.body)
		}
		return time.Since(t), err
	}
	cold, err := deposit("cold")
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		d, err := deposit(fmt.Sprintf("w-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, d)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	report(b, lat, elapsed)
	b.ReportMetric(float64(cold.Microseconds())/1000, "cold_ms")
}
