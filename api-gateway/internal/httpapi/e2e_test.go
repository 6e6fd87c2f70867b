package httpapi_test

// End-to-end tests: the real gateway router in process, the real command-service binary, a real
// PostgreSQL database and Redis. Effects are counted in the event store itself.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/testenv"
)

// stack is a gateway in front of a real command service and its database.
type stack struct {
	*gateway
	pool *pgxpool.Pool
}

func newStack(t *testing.T, o options) *stack {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs the command service")
	}
	pool, dbURL := testenv.PostgresPool(t)
	env := map[string]string{"DATABASE_URL": dbURL, "LOG_LEVEL": "warn",
		"LIMIT_DAILY_PAISE": "0", "LIMIT_DAILY_P2P_COUNT": "0", "LIMIT_NEW_ACCOUNT_PAISE": "0"}
	for k, v := range o.limits {
		env[k] = v
	}
	cmd := testenv.StartService(t, "command-service", env)
	o.commandURL = cmd.URL
	return &stack{gateway: newGateway(t, o), pool: pool}
}

// events counts events of a type on one stream ("" for every event in the store).
func (s *stack) events(eventType, aggregate string) int {
	s.t.Helper()
	var n int
	q := `select count(*) from events where ($1 = '' or event_type = $1) and ($2 = '' or aggregate_id = $2)`
	if err := s.pool.QueryRow(context.Background(), q, eventType, aggregate).Scan(&n); err != nil {
		s.t.Fatalf("count events: %v", err)
	}
	return n
}

func (s *stack) post(key, path, idem, body string) *result {
	s.t.Helper()
	return s.do(req{method: http.MethodPost, path: path, key: key, idem: idem, body: body})
}

// replayOf fails unless res is a replay of first: same status and the same bytes, marked replayed.
func replayOf(t *testing.T, first, res *result) {
	t.Helper()
	if res.status != first.status || !bytes.Equal(res.body, first.body) {
		t.Fatalf("replay = %d %s, want %d %s", res.status, res.body, first.status, first.body)
	}
	if res.header.Get(contract.HeaderIdempotentReplayed) != "true" {
		t.Fatalf("replay without Idempotent-Replayed: true (headers %v)", res.header)
	}
	if first.header.Get("Location") != res.header.Get("Location") {
		t.Fatalf("replay Location %q, first %q", res.header.Get("Location"), first.header.Get("Location"))
	}
}

func TestE2EIdempotencyRules(t *testing.T) {
	s := newStack(t, options{})

	// First request executes; a retry with the same meaning (other key order, whitespace) replays it.
	first := s.post(alphaKey, "/v1/accounts", "open-alice", `{"vpa":"alice@okbank","holder_name":"Alice"}`)
	expect(t, first, http.StatusCreated, "")
	if first.header.Get("Location") != "/v1/accounts/alice@okbank" || first.header.Get(contract.HeaderIdempotentReplayed) != "" {
		t.Fatalf("first answer headers: %v", first.header)
	}
	replayOf(t, first, s.post(alphaKey, "/v1/accounts", "open-alice", "{ \"holder_name\" : \"Alice\",\n \"vpa\":\"alice@okbank\" }"))
	if n := s.events("AccountOpened", "alice@okbank"); n != 1 {
		t.Fatalf("%d AccountOpened events, want 1", n)
	}

	// Same key, another body: 422, nothing executed.
	expect(t, s.post(alphaKey, "/v1/accounts", "open-alice", `{"vpa":"carol@okbank","holder_name":"Carol"}`),
		http.StatusUnprocessableEntity, problem.CodeIdempotencyKeyReused)
	if n := s.events("AccountOpened", "carol@okbank"); n != 0 {
		t.Fatalf("a reused key opened carol's account")
	}

	// Another client's same key is its own: executed, and its business 4xx is stored and replayed.
	taken := s.post(betaKey, "/v1/accounts", "open-alice", `{"vpa":"alice@okbank","holder_name":"Mallory"}`)
	expect(t, taken, http.StatusConflict, problem.CodeAccountExists)
	replayOf(t, taken, s.post(betaKey, "/v1/accounts", "open-alice", `{"vpa":"alice@okbank","holder_name":"Mallory"}`))

	// The scope includes the path: one key on two routes is two operations.
	expect(t, s.post(betaKey, "/v1/accounts", "k-shared", `{"vpa":"bob@okbank","holder_name":"Bob"}`), http.StatusCreated, "")
	expect(t, s.post(betaKey, "/v1/accounts/bob@okbank/deposits", "k-shared", validDeposit), http.StatusCreated, "")

	// Deposits: executed once however often retried.
	dep := s.post(alphaKey, "/v1/accounts/alice@okbank/deposits", "dep-1", `{"amount_paise":100000,"reference":"neft-1"}`)
	expect(t, dep, http.StatusCreated, "")
	for i := 0; i < 3; i++ {
		replayOf(t, dep, s.post(alphaKey, "/v1/accounts/alice@okbank/deposits", "dep-1", `{"reference":"neft-1","amount_paise":100000}`))
	}
	if n := s.events("FundsDeposited", "alice@okbank"); n != 1 {
		t.Fatalf("%d deposits, want 1", n)
	}

	// A percent-encoded "@" in the path names the same account.
	expect(t, s.post(alphaKey, "/v1/accounts/alice%40okbank/deposits", "dep-enc", `{"amount_paise":1,"reference":"enc"}`), http.StatusCreated, "")
	if n := s.events("FundsDeposited", "alice@okbank"); n != 2 {
		t.Fatalf("%d deposits, want 2", n)
	}

	// Payments: one payment per key.
	pay := s.post(alphaKey, "/v1/payments", "pay-1", `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":12500,"note":"lunch"}`)
	expect(t, pay, http.StatusAccepted, "")
	if jsonBody(t, pay)["status"] != contract.PaymentPending {
		t.Fatalf("payment answer %s", pay.body)
	}
	replayOf(t, pay, s.post(alphaKey, "/v1/payments", "pay-1", `{"note":"lunch","amount_paise":12500,"payee_vpa":"bob@okbank","payer_vpa":"alice@okbank"}`))
	if n := s.events("PaymentInitiated", ""); n != 1 {
		t.Fatalf("%d payments, want 1", n)
	}

	// A declined payment (unknown payee) is a business outcome: stored and replayed.
	declined := s.post(alphaKey, "/v1/payments", "pay-2", `{"payer_vpa":"alice@okbank","payee_vpa":"nobody@okbank","amount_paise":1}`)
	expect(t, declined, http.StatusUnprocessableEntity, problem.CodePayeeNotFound)
	replayOf(t, declined, s.post(alphaKey, "/v1/payments", "pay-2", `{"payer_vpa":"alice@okbank","payee_vpa":"nobody@okbank","amount_paise":1}`))

	// Edge validation failures are not outcomes: the key stays free for the corrected request.
	expect(t, s.post(alphaKey, "/v1/payments", "pay-3", `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":0}`),
		http.StatusBadRequest, problem.CodeValidation)
	expect(t, s.post(alphaKey, "/v1/payments", "pay-3", `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":5}`),
		http.StatusAccepted, "")
}

func TestE2EOwnershipAndClientIDOverwrite(t *testing.T) {
	s := newStack(t, options{})
	expect(t, s.post(alphaKey, "/v1/accounts", "a", `{"vpa":"alice@okbank","holder_name":"Alice"}`), http.StatusCreated, "")
	expect(t, s.post(betaKey, "/v1/accounts", "b", `{"vpa":"bob@okbank","holder_name":"Bob"}`), http.StatusCreated, "")

	// Beta may not deposit into or pay from alpha's account, even claiming to be alpha.
	for _, claim := range []string{"", "psp-alpha"} {
		h := map[string]string{contract.HeaderClientID: claim}
		expect(t, s.do(req{method: "POST", path: "/v1/accounts/alice@okbank/deposits", key: betaKey, idem: "d" + claim, body: validDeposit, header: h}),
			http.StatusNotFound, problem.CodeAccountNotFound)
		expect(t, s.do(req{method: "POST", path: "/v1/payments", key: betaKey, idem: "p" + claim, header: h,
			body: `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":1}`}),
			http.StatusNotFound, problem.CodeAccountNotFound)
	}
	if n := s.events("FundsDeposited", "") + s.events("PaymentInitiated", ""); n != 0 {
		t.Fatalf("another client's requests had %d effects", n)
	}
	// Anyone may name any existing VPA as payee.
	expect(t, s.post(betaKey, "/v1/payments", "p-ok", `{"payer_vpa":"bob@okbank","payee_vpa":"alice@okbank","amount_paise":1}`),
		http.StatusAccepted, "")
}

// TestE2EConcurrentSameKey: 20 identical requests at once under one key make exactly one payment; each
// caller gets the payment or a 409 to retry, and a retry afterwards gets the payment.
func TestE2EConcurrentSameKey(t *testing.T) {
	s := newStack(t, options{})
	expect(t, s.post(alphaKey, "/v1/accounts", "a", `{"vpa":"alice@okbank","holder_name":"Alice"}`), http.StatusCreated, "")
	expect(t, s.post(betaKey, "/v1/accounts", "b", `{"vpa":"bob@okbank","holder_name":"Bob"}`), http.StatusCreated, "")
	body := `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":700}`

	const n = 20
	results := make([]*result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = s.post(alphaKey, "/v1/payments", "same-key", body)
		}()
	}
	close(start)
	wg.Wait()

	var accepted *result
	counts := map[int]int{}
	for _, r := range results {
		counts[r.status]++
		switch r.status {
		case http.StatusAccepted:
			if accepted != nil && !bytes.Equal(accepted.body, r.body) {
				t.Fatalf("two different answers under one key:\n%s\n%s", accepted.body, r.body)
			}
			accepted = r
		case http.StatusConflict:
			if r.problem.Code != problem.CodeIdempotencyKeyInUse || r.header.Get("Retry-After") == "" {
				t.Fatalf("409 without IDEMPOTENCY_KEY_IN_USE and Retry-After: %v %s", r.header, r.body)
			}
		default:
			t.Fatalf("unexpected answer %d %s", r.status, r.body)
		}
	}
	t.Logf("answers: %v", counts)
	if accepted == nil {
		t.Fatalf("no request got the payment: %v", counts)
	}
	if got := s.events("PaymentInitiated", ""); got != 1 {
		t.Fatalf("%d payments from one key, want exactly 1", got)
	}
	replayOf(t, accepted, s.post(alphaKey, "/v1/payments", "same-key", body))
}

// TestE2ERedisFlushed: Redis losing every key does not make a retry a second effect; the command service
// answers the original outcome.
func TestE2ERedisFlushed(t *testing.T) {
	s := newStack(t, options{})
	expect(t, s.post(alphaKey, "/v1/accounts", "a", `{"vpa":"alice@okbank","holder_name":"Alice"}`), http.StatusCreated, "")
	expect(t, s.post(betaKey, "/v1/accounts", "b", `{"vpa":"bob@okbank","holder_name":"Bob"}`), http.StatusCreated, "")
	body := `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":900}`
	first := s.post(alphaKey, "/v1/payments", "flush-me", body)
	expect(t, first, http.StatusAccepted, "")

	if err := s.rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	replayOf(t, first, s.post(alphaKey, "/v1/payments", "flush-me", body))
	if n := s.events("PaymentInitiated", ""); n != 1 {
		t.Fatalf("%d payments after a flush and a retry, want 1", n)
	}

	// Flushed again, the key is reused with another body: the command service refuses it, and that
	// refusal is not stored against the key, so the original body still replays the original payment.
	if err := s.rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	expect(t, s.post(alphaKey, "/v1/payments", "flush-me", `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":901}`),
		http.StatusUnprocessableEntity, problem.CodeIdempotencyKeyReused)
	replayOf(t, first, s.post(alphaKey, "/v1/payments", "flush-me", body))
	if n := s.events("PaymentInitiated", ""); n != 1 {
		t.Fatalf("%d payments, want 1", n)
	}
}

// TestE2ERedisStopped: with Redis dead, the gateway keeps serving writes (the command service's dedupe
// keeps them exactly-once) and rate-limits in process; it never makes a second effect, and it stays fast.
func TestE2ERedisStopped(t *testing.T) {
	redisURL, kill := startPrivateRedis(t)
	s := newStack(t, options{redisURL: redisURL})
	expect(t, s.post(alphaKey, "/v1/accounts", "a", `{"vpa":"alice@okbank","holder_name":"Alice"}`), http.StatusCreated, "")
	expect(t, s.post(betaKey, "/v1/accounts", "b", `{"vpa":"bob@okbank","holder_name":"Bob"}`), http.StatusCreated, "")
	body := `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":300}`
	first := s.post(alphaKey, "/v1/payments", "before-outage", body)
	expect(t, first, http.StatusAccepted, "")

	kill()

	// A retry of a request made before the outage: the original outcome, no second payment.
	start := time.Now()
	replayOf(t, first, s.post(alphaKey, "/v1/payments", "before-outage", body))
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("a request with Redis down took %v", took)
	}
	// New work is served, and its retries are still exactly-once.
	during := s.post(alphaKey, "/v1/payments", "during-outage", body)
	expect(t, during, http.StatusAccepted, "")
	for i := 0; i < 3; i++ {
		replayOf(t, during, s.post(alphaKey, "/v1/payments", "during-outage", body))
	}
	expect(t, s.post(alphaKey, "/v1/payments", "during-outage", `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":301}`),
		http.StatusUnprocessableEntity, problem.CodeIdempotencyKeyReused)
	if n := s.events("PaymentInitiated", ""); n != 2 {
		t.Fatalf("%d payments, want 2 (one per key)", n)
	}
	if got := counterValue(t, s.gateway, "gateway_idempotency_redis_bypass_total"); got < 5 {
		t.Fatalf("gateway_idempotency_redis_bypass_total = %v, want the bypassed requests counted", got)
	}

	// Rate limiting falls back to a per-process limiter: still limited, neither open nor closed.
	limited := newGateway(t, options{redisURL: redisURL, rps: 1, burst: 3})
	for i := 0; i < 3; i++ {
		expect(t, limited.do(req{method: "POST", path: "/v1/payments", key: alphaKey, idem: "x", body: `{}`}), http.StatusBadRequest, problem.CodeValidation)
	}
	// One token refills per second, so on a slow machine one more request may pass before the limit bites.
	var res *result
	for i := 0; i < 3; i++ {
		if res = limited.do(req{method: "POST", path: "/v1/payments", key: alphaKey, idem: "x", body: `{}`}); res.status != http.StatusBadRequest {
			break
		}
	}
	expect(t, res, http.StatusTooManyRequests, problem.CodeRateLimited)
	if res.header.Get("Retry-After") == "" || res.header.Get("RateLimit-Remaining") != "0" {
		t.Fatalf("fallback 429 headers: %v", res.header)
	}
}

// startPrivateRedis runs a throwaway redis-server that the test may kill.
func startPrivateRedis(t *testing.T) (url string, kill func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server is required under CI (this test stops its own Redis): %v", err)
		}
		t.Skip("redis-server is not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	var once sync.Once
	kill = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-done
		})
	}
	t.Cleanup(kill)
	url = fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("private redis-server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return url, kill
}
