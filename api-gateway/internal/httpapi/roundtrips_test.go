package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/httpjson"
)

// stubCommands is a command service that answers every command as accepted (202 for a payment, 201
// otherwise), after hold (when set) returns, and counts the calls it got.
type stubCommands struct {
	*httptest.Server
	calls atomic.Int32
	hold  func()
}

func newStubCommands(t *testing.T) *stubCommands {
	s := &stubCommands{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.calls.Add(1)
		if s.hold != nil {
			s.hold()
		}
		status := http.StatusCreated
		if r.URL.Path == "/v1/payments" {
			status = http.StatusAccepted
			w.Header().Set("Location", "/v1/payments/"+paymentID)
		}
		httpjson.Write(w, status, map[string]any{"payment_id": paymentID, "call": n})
	}))
	t.Cleanup(s.Close)
	return s
}

// countTrips counts the round trips a gateway's Redis client makes from now on, leaving out the one-time
// EVALSHA that finds a script not yet loaded.
func countTrips(g *gateway) *atomic.Int64 {
	c := &roundTrips{}
	g.rdb.AddHook(c)
	return &c.n
}

type roundTrips struct{ n atomic.Int64 }

func (c *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if !redis.HasErrorPrefix(err, "NOSCRIPT") {
			c.n.Add(1)
		}
		return err
	}
}

func (c *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

// TestRedisRoundTripsPerRequest: a POST costs one Redis round trip before it is forwarded (rate limit
// and idempotency claim in one script) and one after (storing the outcome); every other request one.
func TestRedisRoundTripsPerRequest(t *testing.T) {
	stub := newStubCommands(t)
	g := newGateway(t, options{commandURL: stub.URL, queryURL: deadURL})
	// Connect, and load the scripts.
	g.do(req{method: "POST", path: "/v1/payments", key: alphaKey, idem: "warm-up", body: validPayment})
	trips := countTrips(g)

	for _, tc := range []struct {
		name   string
		r      req
		status int
		trips  int64
	}{
		{"payment", req{method: "POST", path: "/v1/payments", key: alphaKey, idem: "p1", body: validPayment}, 202, 2},
		{"account", req{method: "POST", path: "/v1/accounts", key: alphaKey, idem: "a1", body: validAccount}, 201, 2},
		{"deposit", req{method: "POST", path: "/v1/accounts/alice@okbank/deposits", key: alphaKey, idem: "d1", body: validDeposit}, 201, 2},
		{"replay", req{method: "POST", path: "/v1/payments", key: alphaKey, idem: "p1", body: validPayment}, 202, 1},
		{"reused key", req{method: "POST", path: "/v1/payments", key: alphaKey, idem: "p1", body: `{"payer_vpa":"a@b","payee_vpa":"c@d","amount_paise":1}`}, 422, 1},
		{"bad body", req{method: "POST", path: "/v1/payments", key: alphaKey, idem: "p2", body: `{}`}, 400, 1},
		{"no key", req{method: "POST", path: "/v1/payments", key: alphaKey, body: validPayment}, 400, 1},
		{"read", req{method: "GET", path: "/v1/accounts/alice@okbank", key: alphaKey}, 503, 1},
		{"unknown route", req{method: "GET", path: "/v1/nowhere", key: alphaKey}, 404, 1},
		{"wrong method", req{method: "DELETE", path: "/v1/payments", key: alphaKey}, 405, 1},
		{"unauthenticated", req{method: "POST", path: "/v1/payments", idem: "p3", body: validPayment}, 401, 1},
	} {
		before := trips.Load()
		res := g.do(tc.r)
		if res.status != tc.status {
			t.Fatalf("%s: %d %s, want %d", tc.name, res.status, res, tc.status)
		}
		if n := trips.Load() - before; n != tc.trips {
			t.Errorf("%s: %d Redis round trips, want %d", tc.name, n, tc.trips)
		}
	}
	if n := stub.calls.Load(); n != 4 {
		t.Fatalf("command service called %d times, want 4 (warm-up, payment, account, deposit)", n)
	}
}

// TestRateLimitedPOSTClaimsNothing: a POST refused by the rate limit leaves its key free, so the retry
// that the limit later allows is executed, not answered 409.
func TestRateLimitedPOSTClaimsNothing(t *testing.T) {
	stub := newStubCommands(t)
	g := newGateway(t, options{commandURL: stub.URL, rps: 1, burst: 1})
	expect(t, g.do(req{method: "POST", path: "/v1/payments", key: alphaKey, idem: "first", body: validPayment}), http.StatusAccepted, "")
	limited := g.do(req{method: "POST", path: "/v1/payments", key: alphaKey, idem: "second", body: validPayment})
	expect(t, limited, http.StatusTooManyRequests, problem.CodeRateLimited)
	if stub.calls.Load() != 1 {
		t.Fatalf("a limited POST reached the command service")
	}
	keys, err := g.rdb.Keys(context.Background(), "idem:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("idempotency keys after one executed and one limited POST: %v %v, want 1", keys, err)
	}
	time.Sleep(time.Second + 100*time.Millisecond)
	expect(t, g.do(req{method: "POST", path: "/v1/payments", key: alphaKey, idem: "second", body: validPayment}), http.StatusAccepted, "")
	if stub.calls.Load() != 2 {
		t.Fatalf("the allowed retry was not executed")
	}
}

// TestInFlightReusedAndReplayThroughOneScript: while a POST is in flight its key answers 409 (same body)
// or 422 (another body), each in the one round trip; once done, the same body replays.
func TestInFlightReusedAndReplayThroughOneScript(t *testing.T) {
	stub := newStubCommands(t)
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	stub.hold = func() {
		arrived <- struct{}{}
		<-release
	}
	g := newGateway(t, options{commandURL: stub.URL})
	var wg sync.WaitGroup
	var first *result
	wg.Add(1)
	go func() {
		defer wg.Done()
		first = g.do(req{method: "POST", path: "/v1/payments", key: alphaKey, idem: "k", body: validPayment})
	}()
	<-arrived
	trips := countTrips(g)
	inUse := g.do(req{method: "POST", path: "/v1/payments", key: alphaKey, idem: "k", body: validPayment})
	expect(t, inUse, http.StatusConflict, problem.CodeIdempotencyKeyInUse)
	if inUse.header.Get("Retry-After") == "" {
		t.Fatalf("409 without Retry-After")
	}
	expect(t, g.do(req{method: "POST", path: "/v1/payments", key: alphaKey, idem: "k", body: `{"payer_vpa":"a@b","payee_vpa":"c@d","amount_paise":1}`}),
		http.StatusUnprocessableEntity, problem.CodeIdempotencyKeyReused)
	if n := trips.Load(); n != 2 {
		t.Fatalf("409 and 422 took %d Redis round trips, want 2", n)
	}
	stub.hold = nil
	close(release)
	wg.Wait()
	expect(t, first, http.StatusAccepted, "")
	res := g.do(req{method: "POST", path: "/v1/payments", key: alphaKey, idem: "k", body: "{\"amount_paise\":12500, \"note\":\"lunch\",\"payee_vpa\":\"bob@okbank\",\"payer_vpa\":\"alice@okbank\"}"})
	expect(t, res, http.StatusAccepted, "")
	if string(res.body) != string(first.body) || res.header.Get(contract.HeaderIdempotentReplayed) != "true" {
		t.Fatalf("replay %s (headers %v), want %s replayed", res.body, res.header, first.body)
	}
	if n := stub.calls.Load(); n != 1 {
		t.Fatalf("command service called %d times, want 1", n)
	}
	for name, want := range map[string]float64{
		"gateway_idempotency_in_flight_total": 1, "gateway_idempotency_reused_total": 1, "gateway_idempotent_replays_total": 1,
	} {
		if got := counterValue(t, g, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// TestRedisFlushedWhileInFlight: Redis loses the claim while the command runs. The answer still reaches
// the client, nothing is stored against a claim nobody holds, and the retry goes to the command service
// (whose own dedupe answers it with the original outcome, see TestE2ERedisFlushed) and is stored.
func TestRedisFlushedWhileInFlight(t *testing.T) {
	stub := newStubCommands(t)
	g := newGateway(t, options{commandURL: stub.URL})
	stub.hold = func() {
		if err := g.rdb.FlushDB(context.Background()).Err(); err != nil {
			t.Error(err)
		}
	}
	expect(t, g.do(req{method: "POST", path: "/v1/payments", key: alphaKey, idem: "k", body: validPayment}), http.StatusAccepted, "")
	if n, _ := g.rdb.DBSize(context.Background()).Result(); n != 0 {
		t.Fatalf("%d keys after the flush, want none stored for the lost claim", n)
	}
	stub.hold = nil
	expect(t, g.do(req{method: "POST", path: "/v1/payments", key: alphaKey, idem: "k", body: validPayment}), http.StatusAccepted, "")
	if stub.calls.Load() != 2 {
		t.Fatalf("the retry after the flush did not reach the command service")
	}
	res := g.do(req{method: "POST", path: "/v1/payments", key: alphaKey, idem: "k", body: validPayment})
	if res.header.Get(contract.HeaderIdempotentReplayed) != "true" || stub.calls.Load() != 2 {
		t.Fatalf("the retry's outcome was not stored: %v", res.header)
	}
}
