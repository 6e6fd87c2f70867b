package main_test

// BenchmarkPayments: what a payment costs through the whole system, and where the cost is. The four real
// service binaries run on a fresh database for each sub-benchmark; clients pay through the gateway as
// users do. Every sub-benchmark reports CPU milliseconds per completed payment, in total and for each
// process (the four services, PostgreSQL, Redis), beside its throughput or latency: on a small shared
// machine throughput moves with the neighbours, CPU per payment much less (docs/benchmarks.md).
//
//	spread-16        16 clients POST back to back, without waiting for completion, for PAYBENCH_SECONDS
//	                 between random pairs of 200 funded accounts; then every accepted payment is drained.
//	hot-merchant-16  the same, 200 payers all paying one payee.
//	latency-1        1 client: POST, then GET ?wait=5s until the payment is terminal, again and again.
//	latency-16       the same with 16 clients.
//	spread-16-relay  spread-16 with the event feed relaying every event to RabbitMQ.
//	spread-16-traced spread-16 with tracing on at 100% sampling, exported over OTLP to the benchmark.
//	money-16         16 clients depositing into and withdrawing from 200 accounts, all at one bank, back
//	                 to back: money entering and leaving through the bank's settlement account. Its
//	                 completed/s (deposits and withdrawals answered COMPLETED) beside spread-16's says
//	                 whether the settlement account is a hot lock (it must reach 0.8 of the payments').
//	overload-3x      payments offered at three times the saturation rate, an open loop, a quarter of the
//	                 clients impatient: admitted latency, what is shed, and the bank invariant after it.
//	paced-R, paced-R-traced
//	                 16 clients paying at most PAYBENCH_RATE (default 300) payments a second in all,
//	                 without and with tracing: what tracing costs at the same load.
//
// Each sub-benchmark does one timed run whatever b.N is (the load is bound by time, not by a count): run
// it with -benchtime=1x, as scripts/bench.sh does. ns/op is reported as 0.
//
// Environment: PAYBENCH_SECONDS (default 15), the length of each load; PAYBENCH_DRAIN_SECONDS (default
// 120), how long the accepted payments may take to finish afterwards before the benchmark fails;
// PAYBENCH_GOMAXPROCS, the services' GOMAXPROCS (default 1, as docker-compose.yml runs them; 0 for Go's
// default, one per core); PAYBENCH_PROFILE, a folder: each accepting run writes there a CPU profile of
// every service (its operations listener, with the development operator key), taken over its load, as SUBBENCHMARK-SERVICE.pprof
// (`go tool pprof -top FILE`), and after the run its /metrics and allocations as SUBBENCHMARK-SERVICE.metrics and .allocs.pprof; PAYBENCH_PARTITIONS, event-consumers' CONSUMER_PARTITIONS (default 1),
// reported in each result line as "partitions" (partitions share the consumers' work over cores only as
// far as PAYBENCH_GOMAXPROCS lets event-consumers use them).

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	amqp "github.com/rabbitmq/amqp091-go"

	"upi/shared/contract/events"
	"upi/testenv"
)

const (
	benchAccounts = 200
	benchKey      = "bench-key"
	fundPaise     = 100_000_000 // each account's deposit (the largest one allowed): never runs out
	payPaise      = 100
	// moneyFundPaise funds the accounts of money-16: half the daily deposit cap, so that its deposits
	// are never refused by it.
	moneyFundPaise = 50_000_000
)

func BenchmarkPayments(b *testing.B) {
	load := time.Duration(envInt("PAYBENCH_SECONDS", 15)) * time.Second
	b.Run("spread-16", func(b *testing.B) {
		s := startPaymentStack(b, false, "")
		vpas := s.openAccounts(b, "acct", benchAccounts)
		s.acceptingRun(b, 16, load, func() (string, string) { return randomPair(vpas) })
	})
	// The same with the event feed on: the relay publishes every event to RabbitMQ (to an exchange of the
	// run's own, with a queue bound that nobody reads, so the broker stores every message) while
	// payments go on. Its figures beside spread-16's say what the feed costs the payment path, and
	// relay-lag-*-ms how long after its append each event was confirmed by the broker.
	b.Run("spread-16-relay", func(b *testing.B) {
		s := startPaymentStack(b, true, "")
		vpas := s.openAccounts(b, "acct", benchAccounts)
		s.acceptingRun(b, 16, load, func() (string, string) { return randomPair(vpas) })
		s.reportRelay(b)
	})
	// The same with tracing on at 100% sampling, exporting over OTLP/HTTP to a receiver in the benchmark
	// that decodes and drops the spans (its CPU is not the services'). Its cpu-ms figures beside
	// spread-16's are what tracing costs a payment.
	b.Run("spread-16-traced", func(b *testing.B) { tracedRun(b, load, 0) })
	// What tracing costs at the same load with and without it: at saturation, anything that costs CPU
	// also lowers throughput and with it how much each batch and group commit shares, so part of the
	// difference between spread-16 and spread-16-traced is that second effect. Here both pay at
	// PAYBENCH_RATE payments a second (below what either sustains), so the difference is tracing's own.
	rate := float64(envInt("PAYBENCH_RATE", 300))
	b.Run(fmt.Sprintf("paced-%d", int(rate)), func(b *testing.B) {
		s := startPaymentStack(b, false, "")
		vpas := s.openAccounts(b, "acct", benchAccounts)
		s.acceptingRun(b, 16, load, pace(rate, func() (string, string) { return randomPair(vpas) }))
	})
	b.Run(fmt.Sprintf("paced-%d-traced", int(rate)), func(b *testing.B) { tracedRun(b, load, rate) })
	b.Run("hot-merchant-16", func(b *testing.B) {
		s := startPaymentStack(b, false, "")
		payers := s.openAccounts(b, "payer", benchAccounts)
		merchant := s.openAccounts(b, "merchant", 1)[0]
		s.acceptingRun(b, 16, load, func() (string, string) {
			return payers[rand.IntN(len(payers))], merchant
		})
	})
	b.Run("money-16", func(b *testing.B) {
		s := startPaymentStack(b, false, "")
		vpas := s.openAccountsFunded(b, "acct", benchAccounts, moneyFundPaise)
		s.moneyRun(b, 16, load, vpas)
	})
	// Three times what the system accepts at saturation, offered in an open loop, a quarter of the clients
	// hanging up after 100 ms: the overload is shed (503 OVERLOADED) while the admitted payments keep a
	// bounded latency, and abandoned requests move money whole or not at all (overloadRun).
	b.Run("overload-3x", func(b *testing.B) {
		s := startPaymentStack(b, false, "")
		vpas := s.openAccounts(b, "acct", benchAccounts)
		s.overloadRun(b, load, vpas)
	})
	for _, clients := range []int{1, 16} {
		b.Run(fmt.Sprintf("latency-%d", clients), func(b *testing.B) {
			s := startPaymentStack(b, false, "")
			vpas := s.openAccounts(b, "acct", benchAccounts)
			s.latencyRun(b, clients, load, vpas)
		})
	}
}

// tracedRun is an accepting run of 16 clients (paced at rate payments a second when rate > 0) with tracing
// on at 100% sampling, exporting over OTLP/HTTP to a receiver in the benchmark that decodes and drops the
// spans (its CPU is not the services'). Beside the same run without tracing, its cpu-ms figures are what
// tracing costs a payment; it also reports the spans received per payment, and logs them by name.
func tracedRun(b *testing.B, load time.Duration, rate float64) {
	recv := &otlpReceiver{discard: true}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	s := startPaymentStack(b, false, collector.URL)
	vpas := s.openAccounts(b, "acct", benchAccounts)
	spans0 := recv.spans.Load()
	pick := func() (string, string) { return randomPair(vpas) }
	if rate > 0 {
		pick = pace(rate, pick)
	}
	s.acceptingRun(b, 16, load, pick)
	// Spans received per payment, so that spans the exporters dropped (a full queue) do not pass
	// for cheap tracing unseen. Those still buffered in the services arrive within the batch delay.
	time.Sleep(6 * time.Second)
	var completed int64
	if err := s.pool.QueryRow(context.Background(),
		`select count(*) from events where event_type = 'PaymentCompleted'`).Scan(&completed); err != nil {
		b.Fatal(err)
	}
	if completed > 0 {
		b.ReportMetric(float64(recv.spans.Load()-spans0)/float64(completed), "spans/payment")
		b.Log(recv.perPayment(completed))
	}
}

// pace makes pick wait its turn so that all clients together pick at most rate times a second.
func pace(rate float64, pick func() (string, string)) func() (string, string) {
	var mu sync.Mutex
	next := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	return func() (string, string) {
		mu.Lock()
		at := next
		if now := time.Now(); at.Before(now) {
			at = now // a turn missed is not made up for in a burst
		}
		next = at.Add(interval)
		mu.Unlock()
		time.Sleep(time.Until(at))
		return pick()
	}
}

// randomPair picks two different accounts.
func randomPair(vpas []string) (payer, payee string) {
	i, j := rand.IntN(len(vpas)), rand.IntN(len(vpas)-1)
	if j >= i {
		j++
	}
	return vpas[i], vpas[j]
}

// paymentStack is the whole system on a fresh database, and the benchmark's own view of that database.
type paymentStack struct {
	services []*testenv.Service // gateway, command, query, consumers
	client   *bankClient
	redisURL string
	// pool reads the database directly: counting events, watching the consumers, sampling PostgreSQL.
	pool *pgxpool.Pool
	// pprof is each service's profile listener, by service name, when PAYBENCH_PROFILE asks for profiles.
	pprof map[string]string
	// webhooks counts the deliveries received, when PAYBENCH_WEBHOOKS=1 (webhooks_bench_test.go).
	webhooks *atomic.Int64
}

// metricName names each service in the cpu-ms-NAME/payment metrics.
var metricName = map[string]string{
	"api-gateway":     "gateway",
	"command-service": "command",
	"query-service":   "query",
	"event-consumers": "consumers",
}

// startPaymentStack starts the stack, with the event feed when relay is set and tracing (every request
// sampled) exported to otlp when it is not "".
func startPaymentStack(b *testing.B, relay bool, otlp string) *paymentStack {
	b.Helper()
	pool, dbURL := testenv.PostgresPool(b)
	// A Redis of its own, so that its CPU time is the gateway's traffic alone.
	redisURL, private := testenv.PrivateRedis(b)
	if !private {
		redisURL = testenv.Redis(b)
		b.Log("no redis-server on the PATH: Redis is the shared test server, and its CPU time holds other users' too")
	}
	pprof := map[string]string{}
	quiet := func(service string, env map[string]string) map[string]string {
		env["LOG_LEVEL"] = "warn"
		env["GOMAXPROCS"] = cmp.Or(os.Getenv("PAYBENCH_GOMAXPROCS"), "1")
		if otlp != "" {
			env["OTEL_EXPORTER_OTLP_ENDPOINT"], env["OTEL_TRACES_SAMPLER"] = otlp, "always_on"
		}
		return env
	}
	cmd := testenv.StartService(b, "command-service", quiet("command-service", map[string]string{"DATABASE_URL": dbURL,
		// Payer limits off: the benchmark pays many times a day from each account.
		"LIMIT_DAILY_PAISE": "0", "LIMIT_DAILY_P2P_COUNT": "0", "LIMIT_NEW_ACCOUNT_PAISE": "0"}))
	qry := testenv.StartService(b, "query-service", quiet("query-service", map[string]string{"DATABASE_URL": dbURL}))
	consEnv := map[string]string{"DATABASE_URL": dbURL, "COMMAND_SERVICE_URL": cmd.URL,
		"CONSUMER_PARTITIONS": strconv.Itoa(benchPartitions())}
	if relay {
		consEnv["RELAY_ENABLED"], consEnv["RABBITMQ_URL"] = "true", testenv.RabbitMQ(b)
		consEnv["RELAY_EXCHANGE"] = bindFeedQueue(b, consEnv["RABBITMQ_URL"])
	}
	webhookEnv(consEnv)
	cons := testenv.StartService(b, "event-consumers", quiet("event-consumers", consEnv))
	gw := testenv.StartService(b, "api-gateway", quiet("api-gateway", map[string]string{
		"REDIS_URL": redisURL, "COMMAND_SERVICE_URL": cmd.URL, "QUERY_SERVICE_URL": qry.URL,
		"API_KEYS": "bench=" + benchKey, "RATE_LIMIT_RPS": "1000000", "RATE_LIMIT_BURST": "1000000",
	}))
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(hc.CloseIdleConnections)
	if os.Getenv("PAYBENCH_PROFILE") != "" {
		for _, s := range []*testenv.Service{gw, cmd, qry, cons} {
			pprof[s.Name] = s.OpsURL
		}
	}
	s := &paymentStack{
		services: []*testenv.Service{gw, cmd, qry, cons},
		client:   &bankClient{base: gw.URL, key: benchKey, http: hc},
		redisURL: redisURL,
		pool:     pool,
		pprof:    pprof,
	}
	if benchWebhooks() {
		s.webhooks = startBenchReceiver(b, s.client)
	}
	return s
}

// profile takes a CPU profile of every service with a profile listener over the next load (less a second
// at each end) into PAYBENCH_PROFILE, and returns a function that waits until they are written.
func (s *paymentStack) profile(b *testing.B, load time.Duration) (wait func()) {
	dir := os.Getenv("PAYBENCH_PROFILE")
	var wg sync.WaitGroup
	if dir == "" {
		return wg.Wait
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	seconds := max(1, int(load.Seconds())-2)
	for service, addr := range s.pprof {
		wg.Go(func() {
			time.Sleep(time.Second)
			req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", addr, seconds), nil)
			if err != nil {
				b.Errorf("profile %s: %v", service, err)
				return
			}
			req.Header.Set("Authorization", "Bearer "+testenv.OperatorKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Errorf("profile %s: %v", service, err)
				return
			}
			defer resp.Body.Close()
			name := strings.ReplaceAll(b.Name(), "/", "_") + "-" + service + ".pprof"
			f, err := os.Create(filepath.Join(dir, name))
			if err != nil {
				b.Errorf("profile %s: %v", service, err)
				return
			}
			defer f.Close()
			if _, err := io.Copy(f, resp.Body); err != nil {
				b.Errorf("profile %s: %v", service, err)
			}
		})
	}
	return wg.Wait
}

// saveMetrics writes, when PAYBENCH_PROFILE is set, every profiled service's /metrics as it is after the
// run (SUBBENCHMARK-SERVICE.metrics: its requests by route, its batches' sizes) and its allocations since it
// started (SUBBENCHMARK-SERVICE.allocs.pprof: `go tool pprof -sample_index=alloc_space -top FILE`),
// beside its CPU profile.
func (s *paymentStack) saveMetrics(b *testing.B) {
	dir := os.Getenv("PAYBENCH_PROFILE")
	if dir == "" {
		return
	}
	for service, addr := range s.pprof {
		for _, f := range []struct{ path, suffix string }{{"/metrics", ".metrics"}, {"/debug/pprof/allocs", ".allocs.pprof"}} {
			req, err := http.NewRequest(http.MethodGet, addr+f.path, nil)
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+testenv.OperatorKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Errorf("%s %s: %v", f.path, service, err)
				continue
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, strings.ReplaceAll(b.Name(), "/", "_")+"-"+service+f.suffix), body, 0o644)
			}
			if err != nil {
				b.Errorf("%s %s: %v", f.path, service, err)
			}
		}
	}
}

// openAccounts opens n accounts named PREFIXi@bench through the gateway, funds each, and waits until the
// consumers have caught up, so that the setup's work is done before anything is measured.
func (s *paymentStack) openAccounts(b *testing.B, prefix string, n int) []string {
	b.Helper()
	return s.openAccountsFunded(b, prefix, n, fundPaise)
}

// openAccountsFunded opens n accounts at one bank and deposits fund into each.
func (s *paymentStack) openAccountsFunded(b *testing.B, prefix string, n int, fund int64) []string {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	vpas := make([]string, n)
	for i := range vpas {
		vpas[i] = fmt.Sprintf("%s%d@bench", prefix, i)
	}
	var wg sync.WaitGroup
	work := make(chan string)
	for range 16 {
		wg.Go(func() {
			for vpa := range work {
				if st, body := s.client.post(ctx, b, "/v1/accounts", "open-"+vpa,
					map[string]any{"vpa": vpa, "holder_name": "Bench " + vpa}); st != http.StatusCreated {
					b.Errorf("open %s: %d %s", vpa, st, body)
					continue
				}
				if st, body := s.client.post(ctx, b, "/v1/accounts/"+vpa+"/deposits", "fund-"+vpa,
					map[string]any{"amount_paise": fund, "reference": "bench"}); st != http.StatusCreated {
					b.Errorf("fund %s: %d %s", vpa, st, body)
				}
			}
		})
	}
	for _, vpa := range vpas {
		work <- vpa
	}
	close(work)
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	s.waitConsumersIdle(ctx, b)
	return vpas
}

// waitConsumersIdle waits until every consumer (projections and the payment workflow) has processed the
// whole log.
func (s *paymentStack) waitConsumersIdle(ctx context.Context, b *testing.B) {
	b.Helper()
	for {
		behind, err := s.consumersBehind(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(behind) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			b.Fatalf("consumers %v did not catch up with the log: %v", behind, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// consumersBehind names the consumers whose checkpoint is not the last event of the log (in the log's
// (tx_id, global_position) order).
func (s *paymentStack) consumersBehind(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
		select c.name from projection_checkpoints c
		where (c.tx_id, c.global_position) <>
		      (select e.tx_id, e.global_position from events e order by e.tx_id desc, e.global_position desc limit 1)`)
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// accepted is one payment the gateway answered 202 for.
type accepted struct {
	PaymentID string `json:"payment_id"`
	Status    string `json:"status"`
	Position  string `json:"position"`
}

// pay POSTs one payment with a fresh idempotency key, once: a client that gets no 202 is an error the
// benchmark reports, not something it retries away.
func (s *paymentStack) pay(payer, payee string) (accepted, error) {
	st, body, _ := s.client.do(context.Background(), http.MethodPost, "/v1/payments", uuid.NewString(),
		map[string]any{"payer_vpa": payer, "payee_vpa": payee, "amount_paise": payPaise, "note": "bench"})
	var p accepted
	if st != http.StatusAccepted {
		return p, fmt.Errorf("POST /v1/payments %s -> %s: status %d %s", payer, payee, st, body)
	}
	if err := json.Unmarshal(body, &p); err != nil || p.PaymentID == "" {
		return p, fmt.Errorf("POST /v1/payments: 202 without a payment id: %s", body)
	}
	return p, nil
}

// loadResult is what the clients of one run saw.
type loadResult struct {
	mu       sync.Mutex
	ids      []string
	latency  []time.Duration // initiation to COMPLETED, latency runs only
	failures int
	first    error
}

func (r *loadResult) ok(id string, latency time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, id)
	if latency > 0 {
		r.latency = append(r.latency, latency)
	}
}

func (r *loadResult) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures++
	if r.first == nil {
		r.first = err
	}
}

// clients runs n clients, each calling pay until the load time is up, and returns the window: from the
// start to when the last client finished its last payment (a request under way at the deadline is let
// finish, so that every payment the system accepted is counted).
func clients(n int, load time.Duration, pay func()) (start, end time.Time) {
	start = time.Now()
	deadline := start.Add(load)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				pay()
			}
		})
	}
	wg.Wait()
	return start, time.Now()
}

// acceptingRun is the load users put on the system: clients pay back to back without waiting for their
// payments to complete, so accepting and completing go on at the same time. It reports accepted/s,
// completed/s (payments that reached COMPLETED within the load window), then waits until every accepted
// payment has completed (drain-s) and reports CPU per payment over the load and the drain.
func (s *paymentStack) acceptingRun(b *testing.B, n int, load time.Duration, pick func() (payer, payee string)) {
	ctx := context.Background()
	cpu0 := s.sampleCPU(ctx, b)
	horizon := s.watchHorizon(ctx)
	profiled := s.profile(b, load)
	b.ResetTimer()
	var res loadResult
	start, end := clients(n, load, func() {
		payer, payee := pick()
		p, err := s.pay(payer, payee)
		if err != nil {
			res.fail(err)
			return
		}
		res.ok(p.PaymentID, 0)
	})
	if res.failures > 0 {
		b.Fatalf("%d of %d payment requests were not accepted; the first: %v", res.failures,
			res.failures+len(res.ids), res.first)
	}
	profiled()
	window := end.Sub(start)
	drainStart := time.Now()
	s.drain(ctx, b, len(res.ids))
	drained := time.Since(drainStart)
	cpu1 := s.sampleCPU(ctx, b)
	b.StopTimer()
	b.Log(horizon.stop())
	s.saveMetrics(b)

	s.checkAllCompleted(ctx, b, res.ids)
	var inWindow int
	if err := s.pool.QueryRow(ctx, `select count(*) from events where event_type = $1 and created_at >= $2 and created_at < $3`,
		events.PaymentCompleted, start, end).Scan(&inWindow); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d payments accepted in %.1f s, %d of them completed within that window, the rest in the %.1f s drain",
		len(res.ids), window.Seconds(), inWindow, drained.Seconds())
	b.Logf("payments completed in each second from the start: %v", s.completedPerSecond(ctx, b, start))
	b.ReportMetric(float64(len(res.ids))/window.Seconds(), "accepted/s")
	b.ReportMetric(float64(inWindow)/window.Seconds(), "completed/s")
	b.ReportMetric(drained.Seconds(), "drain-s")
	b.ReportMetric(float64(len(res.ids)), "payments")
	reportCPU(b, cpu0, cpu1, len(res.ids))
	b.ReportMetric(float64(benchPartitions()), "partitions")
	b.ReportMetric(0, "ns/op")
}

// latencyRun is clients that each wait for their payment: POST, then GET ?wait=5s (from the position of
// the POST's answer) until the payment is terminal, then the next one. It reports the latency from
// initiation to COMPLETED, completed/s and CPU per payment.
func (s *paymentStack) latencyRun(b *testing.B, n int, load time.Duration, vpas []string) {
	ctx := context.Background()
	cpu0 := s.sampleCPU(ctx, b)
	horizon := s.watchHorizon(ctx)
	b.ResetTimer()
	var res loadResult
	var notFound sync.Map // payment id -> true: a GET that did not find the payment (yet)
	start, end := clients(n, load, func() {
		payer, payee := randomPair(vpas)
		began := time.Now()
		p, err := s.pay(payer, payee)
		if err != nil {
			res.fail(err)
			return
		}
		path := "/v1/payments/" + p.PaymentID + "?wait=5s&min_position=" + url.QueryEscape(p.Position)
		for tries := 0; p.Status != "COMPLETED" && p.Status != "FAILED"; tries++ {
			st, body, _ := s.client.do(ctx, http.MethodGet, path, "", nil)
			switch {
			case st == http.StatusOK:
				if err := json.Unmarshal(body, &p); err != nil {
					res.fail(fmt.Errorf("GET payment %s: %w: %s", p.PaymentID, err, body))
					return
				}
			case st == http.StatusNotFound && tries < 10: // min_position not reached within QUERY_WAIT_MAX
				notFound.Store(p.PaymentID, true)
			default:
				res.fail(fmt.Errorf("GET payment %s: status %d %s", p.PaymentID, st, body))
				return
			}
		}
		if p.Status != "COMPLETED" {
			res.fail(fmt.Errorf("payment %s ended %s", p.PaymentID, p.Status))
			return
		}
		res.ok(p.PaymentID, time.Since(began))
	})
	if res.failures > 0 {
		b.Fatalf("%d of %d payments did not complete; the first: %v", res.failures, res.failures+len(res.ids), res.first)
	}
	// Every client saw its payment COMPLETED through the payments projection; let the other consumers
	// finish too, so that the CPU figure holds all of each payment's work.
	s.drain(ctx, b, len(res.ids))
	cpu1 := s.sampleCPU(ctx, b)
	b.StopTimer()
	b.Log(horizon.stop())

	s.checkAllCompleted(ctx, b, res.ids)
	missed := 0
	notFound.Range(func(any, any) bool { missed++; return true })
	if missed > 0 {
		b.Logf("%d payments were not found by a first GET with the POST's min_position", missed)
	}
	slices.Sort(res.latency)
	pct := func(q float64) float64 {
		return float64(res.latency[int(q*float64(len(res.latency)-1))].Microseconds()) / 1000
	}
	window := end.Sub(start)
	b.ReportMetric(float64(len(res.ids))/window.Seconds(), "completed/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(len(res.ids)), "payments")
	reportCPU(b, cpu0, cpu1, len(res.ids))
	b.ReportMetric(float64(benchPartitions()), "partitions")
	b.ReportMetric(0, "ns/op")
}

// drain waits until want payments have ended (PaymentCompleted or PaymentFailed in the log) and every
// consumer has processed the whole log, or fails after PAYBENCH_DRAIN_SECONDS. It polls the log with one
// cheap count every 100 ms, work that lands in PostgreSQL's CPU figure (a small part of it).
func (s *paymentStack) drain(ctx context.Context, b *testing.B, want int) {
	b.Helper()
	timeout := time.Duration(envInt("PAYBENCH_DRAIN_SECONDS", 120)) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var ended int
		if err := s.pool.QueryRow(ctx, `select count(*) from events where event_type in ($1, $2)`,
			events.PaymentCompleted, events.PaymentFailed).Scan(&ended); err != nil && ctx.Err() == nil {
			b.Fatal(err)
		}
		if ended >= want {
			s.waitConsumersIdle(ctx, b)
			s.waitWebhooksSent(ctx, b)
			return
		}
		select {
		case <-ctx.Done():
			b.Fatalf("after %v only %d of %d accepted payments had ended", timeout, ended, want)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// completedPerSecond counts the PaymentCompleted events of each second from start on, for the log: how
// completion kept pace while payments were accepted, and during the drain.
func (s *paymentStack) completedPerSecond(ctx context.Context, b *testing.B, start time.Time) []int {
	b.Helper()
	rows, err := s.pool.Query(ctx, `
		select floor(extract(epoch from created_at - $2::timestamptz))::int, count(*)
		from events where event_type = $1 and created_at >= $2 group by 1 order by 1`,
		events.PaymentCompleted, start)
	if err != nil {
		b.Fatal(err)
	}
	var perSecond []int
	for rows.Next() {
		var second, n int
		if err := rows.Scan(&second, &n); err != nil {
			b.Fatal(err)
		}
		for len(perSecond) <= second {
			perSecond = append(perSecond, 0)
		}
		perSecond[second] = n
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return perSecond
}

// horizonWatch follows, every 250 ms, the oldest transaction that holds a transaction id, in this run's
// database and in others. While one runs, the log's horizon (docs/architecture.md, "Reading the log") stays behind
// it and no consumer sees events appended after it began, however idle the machine: one way a run gets
// seconds without a single completion. On a shared server the transaction may be another run's.
type horizonWatch struct {
	stop func() string // ends the watch and says what it saw
}

func (s *paymentStack) watchHorizon(ctx context.Context) horizonWatch {
	const every = 250 * time.Millisecond
	ctx, cancel := context.WithCancel(ctx)
	var (
		heldHere, heldElsewhere     time.Duration // sampled time with such a transaction older than `every`
		oldestHere, oldestElsewhere float64
		oldestIn                    string
		unmeasured                  error
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var here, elsewhere float64
			var database string
			err := s.pool.QueryRow(ctx, `
				select coalesce(max(extract(epoch from now() - xact_start)) filter (where datname = current_database()), 0)::float8,
				       coalesce(max(extract(epoch from now() - xact_start)) filter (where datname is distinct from current_database()), 0)::float8,
				       coalesce((array_agg(datname order by xact_start) filter (where datname is distinct from current_database()))[1], '')
				from pg_stat_activity where backend_xid is not null and pid <> pg_backend_pid()`).Scan(&here, &elsewhere, &database)
			if err != nil && ctx.Err() == nil && unmeasured == nil {
				unmeasured = err
			}
			if here > every.Seconds() {
				heldHere += every
				oldestHere = max(oldestHere, here)
			}
			if elsewhere > every.Seconds() {
				heldElsewhere += every
				if elsewhere > oldestElsewhere {
					oldestElsewhere, oldestIn = elsewhere, database
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(every):
			}
		}
	}()
	return horizonWatch{stop: func() string {
		cancel()
		<-done
		if unmeasured != nil {
			return fmt.Sprintf("the log horizon was not watched: %v", unmeasured)
		}
		msg := fmt.Sprintf("transactions older than %v held the log horizon back for about %.1f s of the run "+
			"in this database (the oldest %.1f s)", every, heldHere.Seconds(), oldestHere)
		if heldElsewhere > 0 {
			msg += fmt.Sprintf(" and %.1f s in others (the oldest %.1f s, in %s)", heldElsewhere.Seconds(),
				oldestElsewhere, oldestIn)
		} else {
			msg += ", never in another database"
		}
		return msg
	}}
}

// checkAllCompleted holds the run to what it claims: the log has exactly the accepted payments, each
// COMPLETED once, none FAILED, and the payments projection shows them all COMPLETED.
func (s *paymentStack) checkAllCompleted(ctx context.Context, b *testing.B, ids []string) {
	b.Helper()
	var initiated, completed, failed, completedOfOurs, projected int
	if err := s.pool.QueryRow(ctx, `
		select count(*) filter (where event_type = $1),
		       count(*) filter (where event_type = $2),
		       count(*) filter (where event_type = $3),
		       count(*) filter (where event_type = $2 and aggregate_id = any($4))
		from events where aggregate_type = $5`,
		events.PaymentInitiated, events.PaymentCompleted, events.PaymentFailed, ids, events.AggregatePayment,
	).Scan(&initiated, &completed, &failed, &completedOfOurs); err != nil {
		b.Fatal(err)
	}
	if err := s.pool.QueryRow(ctx, `select count(*) from payments where status = 'COMPLETED' and payment_id::text = any($1)`,
		ids).Scan(&projected); err != nil {
		b.Fatal(err)
	}
	if n := len(ids); initiated != n || completed != n || failed != 0 || completedOfOurs != n || projected != n {
		b.Fatalf("%d payments accepted, but the log has %d initiated, %d completed (%d of the accepted ones), "+
			"%d failed, and the payments projection %d of them COMPLETED", n, initiated, completed, completedOfOurs,
			failed, projected)
	}
	// Every debit gave its payment an RRN of 12 digits, unique across the run.
	var debits, distinct, wellFormed int
	if err := s.pool.QueryRow(ctx, `
		select count(*), count(distinct payload->>'rrn'), count(*) filter (where payload->>'rrn' ~ '^[0-9]{12}$')
		from events where event_type = $1`, events.AccountDebited).Scan(&debits, &distinct, &wellFormed); err != nil {
		b.Fatal(err)
	}
	if debits != len(ids) || distinct != debits || wellFormed != debits {
		b.Fatalf("%d debits for %d payments: %d distinct RRNs, %d of 12 digits", debits, len(ids), distinct, wellFormed)
	}
}

// cpuSample is the CPU time, so far, of every process that serves a payment, and of the benchmark itself.
type cpuSample struct {
	names    []string // the services'
	services []time.Duration
	pids     []int
	postgres testenv.PostgresCPUSample
	redis    time.Duration
	self     time.Duration
	machine  time.Duration
	at       time.Time
}

func (s *paymentStack) sampleCPU(ctx context.Context, b *testing.B) cpuSample {
	b.Helper()
	c := cpuSample{at: time.Now()}
	for _, svc := range s.services {
		if !svc.Running() {
			b.Fatalf("%s is not running", svc.Name)
		}
		t, err := testenv.ProcessCPU(svc.PID())
		if err != nil {
			b.Fatal(err)
		}
		c.names = append(c.names, svc.Name)
		c.services = append(c.services, t)
		c.pids = append(c.pids, svc.PID())
	}
	var err error
	if c.postgres, err = testenv.SamplePostgresCPU(ctx, s.pool); err != nil {
		b.Fatalf("PostgreSQL's CPU time (the benchmark needs a server on this machine): %v", err)
	}
	if c.redis, err = testenv.RedisCPU(ctx, s.redisURL); err != nil {
		b.Fatal(err)
	}
	if c.self, err = testenv.ProcessCPU(os.Getpid()); err != nil {
		b.Fatal(err)
	}
	if c.machine, err = testenv.MachineCPU(); err != nil {
		b.Fatal(err)
	}
	return c
}

// reportCPU reports the CPU milliseconds per payment between two samples: cpu-ms/payment for the
// services, PostgreSQL and Redis together, cpu-ms-NAME/payment for each, and cpu-ms-loadgen/payment for
// the benchmark process (the clients), which is not in the total. It logs what else the machine did.
func reportCPU(b *testing.B, start, end cpuSample, payments int) {
	b.Helper()
	if payments == 0 {
		b.Fatal("no payments: no CPU per payment")
	}
	perPayment := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(payments) }
	var total time.Duration
	var parts []string
	report := func(name string, d time.Duration) {
		total += d
		b.ReportMetric(perPayment(d), "cpu-ms-"+name+"/payment")
		parts = append(parts, fmt.Sprintf("%s %.1f s", name, d.Seconds()))
	}
	for i, name := range start.names {
		if start.pids[i] != end.pids[i] {
			b.Fatalf("%s restarted during the run", name)
		}
		report(metricName[name], end.services[i]-start.services[i])
	}
	pg := end.postgres.Since(start.postgres)
	report("pg", pg.Ours())
	// PostgreSQL's part by the service whose connections its backends served (application_name): not
	// added to the total, which has it already. Exited backends and the shared processes are in neither.
	var byService []string
	for _, name := range start.names {
		if d, ok := pg.ByApplication[name]; ok {
			b.ReportMetric(perPayment(d), "cpu-ms-pg-for-"+metricName[name]+"/payment")
			byService = append(byService, fmt.Sprintf("%s %.1f s", metricName[name], d.Seconds()))
		}
	}
	report("redis", end.redis-start.redis)
	b.ReportMetric(perPayment(total), "cpu-ms/payment")
	loadgen := end.self - start.self
	b.ReportMetric(perPayment(loadgen), "cpu-ms-loadgen/payment")

	elapsed := end.at.Sub(start.at)
	machine := end.machine - start.machine
	elsewhere := machine - total - loadgen - pg.OtherDatabases
	b.Logf("CPU over %.1f s: %s (pg: this database's backends %.1f s (for %s), shared processes %.1f s, exited "+
		"backends %.1f s as %d of this database's sessions ended); benchmark clients %.1f s; whole machine %.1f s busy of "+
		"%d cores' %.1f s, of which other databases' PostgreSQL backends %.1f s and other processes %.1f s; "+
		"load average %s",
		elapsed.Seconds(), strings.Join(parts, ", "), pg.Database.Seconds(), strings.Join(byService, ", "), pg.Server.Seconds(), pg.Exited.Seconds(),
		pg.DatabaseSessionsEnded, loadgen.Seconds(), machine.Seconds(), runtime.NumCPU(), elapsed.Seconds()*float64(runtime.NumCPU()),
		pg.OtherDatabases.Seconds(), elsewhere.Seconds(), loadavg())
}

// loadavg is the first three fields of /proc/loadavg, for the log.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// bindFeedQueue declares an exchange and a queue bound to every routing key of it, of the run's own (both
// deleted when the benchmark ends), and returns the exchange's name.
func bindFeedQueue(b *testing.B, url string) string {
	b.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	exchange, queue := testenv.UniqueName("bench.events."), testenv.UniqueName("bench.feed.")
	if err := ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	if err := ch.QueueBind(queue, "#", exchange, false, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_, _ = ch.QueueDelete(queue, false, false, false)
		_ = ch.ExchangeDelete(exchange, false, false)
	})
	return exchange
}

// reportRelay reads the relay's metrics from event-consumers: every event of the run must have been
// confirmed, and the commit-to-confirm histogram gives the feed's lag at this load (relay-lag-p50-ms and
// relay-lag-p99-ms: the upper bounds of the buckets that hold those quantiles).
func (s *paymentStack) reportRelay(b *testing.B) {
	b.Helper()
	ctx := context.Background()
	var total int64
	if err := s.pool.QueryRow(ctx, `select count(*) from events`).Scan(&total); err != nil {
		b.Fatal(err)
	}
	cons := s.services[3]
	var families map[string]*dto.MetricFamily
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(cons.OpsURL + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err = parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		confirmed := families["event_feed_confirmed_total"].GetMetric()[0].GetCounter().GetValue()
		if int64(confirmed) >= total {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the relay confirmed %.0f of %d events", confirmed, total)
		}
		time.Sleep(200 * time.Millisecond)
	}
	h := families["event_feed_commit_to_confirm_seconds"].GetMetric()[0].GetHistogram()
	quantile := func(q float64) float64 {
		want := q * float64(h.GetSampleCount())
		for _, bk := range h.GetBucket() {
			if float64(bk.GetCumulativeCount()) >= want {
				return bk.GetUpperBound() * 1000
			}
		}
		return math.Inf(1)
	}
	b.Logf("relay: %d events confirmed, mean commit-to-confirm %.1f ms", h.GetSampleCount(),
		1000*h.GetSampleSum()/float64(h.GetSampleCount()))
	b.ReportMetric(quantile(0.50), "relay-lag-p50-ms")
	b.ReportMetric(quantile(0.99), "relay-lag-p99-ms")
}

// moneyRun is money entering and leaving: n clients, back to back, each request a deposit or a withdrawal
// (alternately) of payPaise on a random account of vpas, all at one bank, with a fresh idempotency key and
// reference. Both are decided at once, with the bank's settlement shard in the same transaction, so a
// request answered COMPLETED is complete. It reports completed/s and CPU per movement, and checks that the
// accounts' and the settlement shards' sums still cancel.
func (s *paymentStack) moneyRun(b *testing.B, n int, load time.Duration, vpas []string) {
	ctx := context.Background()
	cpu0 := s.sampleCPU(ctx, b)
	b.ResetTimer()
	var res loadResult
	var turn sync.Mutex
	withdraw := false
	start, end := clients(n, load, func() {
		vpa := vpas[rand.IntN(len(vpas))]
		turn.Lock()
		withdraw = !withdraw
		w := withdraw
		turn.Unlock()
		path, want := "/v1/accounts/"+vpa+"/deposits", http.StatusCreated
		if w {
			path, want = "/v1/accounts/"+vpa+"/withdrawals", http.StatusAccepted
		}
		key := uuid.NewString()
		st, body, _ := s.client.do(ctx, http.MethodPost, path, key, map[string]any{"amount_paise": payPaise, "reference": key})
		if st != want || (w && !strings.Contains(string(body), `"COMPLETED"`)) {
			res.fail(fmt.Errorf("POST %s: %d %s", path, st, body))
			return
		}
		res.ok(key, 0)
	})
	if res.failures > 0 {
		b.Fatalf("%d of %d deposits and withdrawals did not complete; the first: %v", res.failures,
			res.failures+len(res.ids), res.first)
	}
	s.waitConsumersIdle(ctx, b)
	cpu1 := s.sampleCPU(ctx, b)
	b.StopTimer()
	var accounts, settlement int64
	if err := s.pool.QueryRow(ctx, `select (select coalesce(sum(balance_paise), 0) from accounts),
		(select coalesce(sum(balance_paise), 0) from settlement_accounts)`).Scan(&accounts, &settlement); err != nil {
		b.Fatal(err)
	}
	if accounts+settlement != 0 {
		b.Fatalf("accounts hold %d, settlement accounts %d: the two sides do not cancel", accounts, settlement)
	}
	window := end.Sub(start)
	b.Logf("%d deposits and withdrawals in %.1f s, all at one bank", len(res.ids), window.Seconds())
	b.ReportMetric(float64(len(res.ids))/window.Seconds(), "completed/s")
	b.ReportMetric(float64(len(res.ids)), "payments")
	reportCPU(b, cpu0, cpu1, len(res.ids))
	b.ReportMetric(float64(benchPartitions()), "partitions")
	b.ReportMetric(0, "ns/op")
}

// benchPartitions is event-consumers' CONSUMER_PARTITIONS in the benchmark: PAYBENCH_PARTITIONS (default 1).
func benchPartitions() int { return envInt("PAYBENCH_PARTITIONS", 1) }
