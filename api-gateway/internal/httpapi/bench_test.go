package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"upi/shared/contract"
	"upi/shared/platform/servicetoken"
	"upi/testenv"
)

// benchClients is the number of concurrent clients, as in the pgbench baseline.
const benchClients = 16

// BenchmarkPayments measures POST /v1/payments at 16 concurrent clients through the gateway and against
// the command service directly (both real, on one database), so the gateway's own cost is the difference:
// of the latencies, and of cpu-µs/op, the CPU this process (the load clients, and the gateway when it is
// in the path) spent per payment. Both are reported beside the pgbench baseline run on the same database
// in the same run:
//
//	go test -run '^$' -bench BenchmarkPayments -benchtime 4000x ./internal/httpapi
func BenchmarkPayments(b *testing.B) {
	_, dbURL := testenv.PostgresPool(b)
	cmd := testenv.StartService(b, "command-service", map[string]string{"DATABASE_URL": dbURL, "LOG_LEVEL": "warn",
		// Payer limits off: the benchmark pays many times from one account.
		"LIMIT_DAILY_PAISE": "0", "LIMIT_DAILY_P2P_COUNT": "0", "LIMIT_NEW_ACCOUNT_PAISE": "0"})
	g := newGateway(b, options{commandURL: cmd.URL})
	for _, r := range []req{
		{method: "POST", path: "/v1/accounts", key: alphaKey, idem: "a", body: `{"vpa":"alice@okbank","holder_name":"Alice"}`},
		{method: "POST", path: "/v1/accounts", key: betaKey, idem: "b", body: `{"vpa":"bob@okbank","holder_name":"Bob"}`},
	} {
		if res := g.do(r); res.status != http.StatusCreated {
			b.Fatalf("setup: %d %s", res.status, res.body)
		}
	}
	baseline := pgbenchBaseline(b, dbURL)
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 64}}
	body := `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":100}`
	run := strconv.FormatInt(time.Now().UnixNano(), 36)

	// Directly, the benchmark calls as the gateway does, with its (development) service token.
	direct := &http.Client{Transport: servicetoken.NewSigner(servicetoken.Gateway, servicetoken.DevRoot(servicetoken.Gateway)).
		Transport(servicetoken.CommandService, &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 64})}
	b.Run("direct", func(b *testing.B) {
		load(b, direct, baseline, func(i int64) *http.Request {
			r, _ := http.NewRequest("POST", cmd.URL+"/v1/payments", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set(contract.HeaderClientID, "psp-alpha")
			r.Header.Set(contract.HeaderIdempotencyKey, fmt.Sprintf("direct-%s-%d", run, i))
			return r
		})
	})
	b.Run("gateway", func(b *testing.B) {
		load(b, client, baseline, func(i int64) *http.Request {
			r, _ := http.NewRequest("POST", g.url+"/v1/payments", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", "Bearer "+alphaKey)
			r.Header.Set(contract.HeaderIdempotencyKey, fmt.Sprintf("gateway-%s-%d", run, i))
			return r
		})
	})
}

// load sends b.N requests from benchClients concurrent clients and reports throughput and latency.
func load(b *testing.B, client *http.Client, baseline float64, next func(i int64) *http.Request) {
	var counter atomic.Int64
	lat := make([][]time.Duration, benchClients)
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	cpu0 := processCPU()
	start := time.Now()
	for w := range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := counter.Add(1)
				if i > int64(b.N) {
					return
				}
				t0 := time.Now()
				resp, err := client.Do(next(i))
				if err != nil {
					failed.Store(err.Error())
					return
				}
				// Read to the end, or the transport closes the connection instead of reusing it.
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					failed.Store(fmt.Sprintf("status %d", resp.StatusCode))
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	b.StopTimer()
	if msg := failed.Load(); msg != nil {
		b.Fatalf("request failed: %v", msg)
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	rps := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rps, "req/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	if baseline > 0 {
		b.ReportMetric(baseline, "pgbench_tps")
		b.ReportMetric(rps/baseline, "ratio_to_pgbench")
	}
}

// pgbenchBaseline runs scripts/pgbench-baseline.sh on dbURL and
// returns its tps, or 0 (with a note) where the script or pgbench is missing.
func pgbenchBaseline(b *testing.B, dbURL string) float64 {
	root, err := testenv.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	script := filepath.Join(root, "scripts", "pgbench-baseline.sh")
	if _, err := os.Stat(script); err != nil {
		b.Logf("no pgbench baseline (%v); figures are reported without a ratio", err)
		return 0
	}
	out, err := exec.Command("bash", script, dbURL, strconv.Itoa(benchClients), "10").CombinedOutput()
	if err != nil {
		b.Logf("pgbench baseline failed: %v\n%s", err, out)
		return 0
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if v, ok := strings.CutPrefix(line, "pgbench_tps="); ok {
			tps, _ := strconv.ParseFloat(v, 64)
			b.Logf("pgbench baseline: %s tps", v)
			return tps
		}
	}
	return 0
}
