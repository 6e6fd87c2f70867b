package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"

	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/testenv"
)

// wireCount counts the HTTP requests that reach the command service, by path.
type wireCount struct {
	mu     sync.Mutex
	byPath map[string]int
}

func (c *wireCount) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.byPath
	c.byPath = map[string]int{}
	return m
}

// newCountedStack is newStack with a proxy between the gateway and the command service that counts what
// travels between them.
func newCountedStack(t *testing.T, o options) (*stack, *wireCount) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs the command service")
	}
	pool, dbURL := testenv.PostgresPool(t)
	cmd := testenv.StartService(t, "command-service", map[string]string{"DATABASE_URL": dbURL, "LOG_LEVEL": "warn",
		"LIMIT_DAILY_PAISE": "0", "LIMIT_DAILY_P2P_COUNT": "0", "LIMIT_NEW_ACCOUNT_PAISE": "0"})
	target, err := url.Parse(cmd.URL)
	if err != nil {
		t.Fatal(err)
	}
	count := &wireCount{byPath: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		count.mu.Lock()
		count.byPath[r.URL.Path]++
		count.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	o.commandURL = srv.URL
	return &stack{gateway: newGateway(t, o), pool: pool}, count
}

// TestE2EBatchedCommands: many clients paying at once through the gateway and the real command service,
// each payment also sent twice at once under its key: every client gets its own answer (its payment, or
// the same payment replayed, or 409 while its twin is in flight), one payment per key, and the command
// service sees fewer requests than commands. Commands sent one at a time go each alone.
func TestE2EBatchedCommands(t *testing.T) {
	for _, tc := range []struct {
		name  string
		redis string
	}{
		{"idempotency at the gateway", ""},
		// With Redis down every twin reaches the command service, often in the same batch: its own
		// dedupe answers them.
		{"redis down", deadRedis},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, wire := newCountedStack(t, options{redisURL: tc.redis, maxInFlight: 4 * 48})
			expect(t, s.post(alphaKey, "/v1/accounts", "a", `{"vpa":"alice@okbank","holder_name":"Alice"}`), http.StatusCreated, "")
			expect(t, s.post(betaKey, "/v1/accounts", "b", `{"vpa":"bob@okbank","holder_name":"Bob"}`), http.StatusCreated, "")
			expect(t, s.post(alphaKey, "/v1/accounts/alice@okbank/deposits", "d", `{"amount_paise":10000000,"reference":"fund"}`), http.StatusCreated, "")
			if seen := wire.take(); seen[contract.PathCommandBatch] != 0 || seen["/v1/accounts"] != 2 {
				t.Fatalf("commands sent one at a time reached the command service as %v, want each alone", seen)
			}

			const n = 48
			results := make([][2]*result, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				for twin := range 2 {
					wg.Go(func() {
						<-start
						results[i][twin] = s.post(alphaKey, "/v1/payments", fmt.Sprintf("pay-%d", i),
							fmt.Sprintf(`{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":%d}`, 100+i))
					})
				}
			}
			close(start)
			wg.Wait()

			ids := map[string]int{}
			first := make([]*result, n)
			for i, pair := range results {
				for _, r := range pair {
					switch r.status {
					case http.StatusAccepted:
						var p contract.Payment
						if err := json.Unmarshal(r.body, &p); err != nil || p.AmountPaise != int64(100+i) || p.Status != contract.PaymentPending {
							t.Fatalf("payment %d answered %s (%v)", i, r.body, err)
						}
						if r.header.Get("Location") != "/v1/payments/"+p.PaymentID {
							t.Fatalf("payment %d: Location %q for %s", i, r.header.Get("Location"), p.PaymentID)
						}
						if first[i] != nil && !bytes.Equal(first[i].body, r.body) {
							t.Fatalf("two answers under one key:\n%s\n%s", first[i].body, r.body)
						}
						if first[i] == nil {
							first[i] = r
							ids[p.PaymentID]++
						}
					case http.StatusConflict:
						if r.problem.Code != problem.CodeIdempotencyKeyInUse || r.header.Get("Retry-After") == "" {
							t.Fatalf("payment %d: 409 %v %s", i, r.header, r.body)
						}
					default:
						t.Fatalf("payment %d: unexpected %d %s", i, r.status, r.body)
					}
				}
				if first[i] == nil {
					t.Fatalf("payment %d: neither twin got it: %d, %d", i, pair[0].status, pair[1].status)
				}
				if a, b := pair[0], pair[1]; a.status == http.StatusAccepted && b.status == http.StatusAccepted &&
					(a.header.Get(contract.HeaderIdempotentReplayed) == "true") == (b.header.Get(contract.HeaderIdempotentReplayed) == "true") {
					t.Fatalf("payment %d: both twins answered 202, one must be the replay: %v / %v", i, a.header, b.header)
				}
			}
			if len(ids) != n {
				t.Fatalf("%d distinct payments for %d keys", len(ids), n)
			}
			if got := s.events("PaymentInitiated", ""); got != n {
				t.Fatalf("%d payments in the log for %d keys", got, n)
			}
			seen := wire.take()
			requests := seen["/v1/payments"] + seen[contract.PathCommandBatch]
			t.Logf("command service: %v for %d commands", seen, 2*n)
			if seen[contract.PathCommandBatch] == 0 || requests >= n {
				t.Fatalf("the command service saw %v for %d payments: want fewer requests than payments, in batches", seen, n)
			}

			// Afterwards each key replays its payment, and refuses another body. A key whose claim Redis
			// took but did not confirm in time (the gateway then went on without it, and counted it) is
			// in flight until the claim expires: that is Redis' failure, not the batch's.
			bypassed := counterValue(t, s.gateway, "gateway_idempotency_redis_bypass_total")
			for i := range n {
				r := s.post(alphaKey, "/v1/payments", fmt.Sprintf("pay-%d", i),
					fmt.Sprintf(`{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":%d}`, 100+i))
				if r.status == http.StatusConflict && r.problem.Code == problem.CodeIdempotencyKeyInUse && tc.redis == "" && bypassed > 0 {
					t.Logf("payment %d: in flight after %v Redis failures", i, bypassed)
					continue
				}
				replayOf(t, first[i], r)
			}
			expect(t, s.post(alphaKey, "/v1/payments", "pay-0", `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":1}`),
				http.StatusUnprocessableEntity, problem.CodeIdempotencyKeyReused)
		})
	}
}

// deadRedis is a Redis URL where nothing listens: the gateway goes on without its fast path.
const deadRedis = "redis://127.0.0.1:1/0"
