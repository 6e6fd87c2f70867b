package httpapi_test

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"net/http/httptest"

	"upi/shared/contract"
	"upi/shared/contract/position"
	"upi/shared/contract/problem"
	"upi/shared/platform/httpjson"
)

const (
	validAccount = `{"vpa":"alice@okbank","holder_name":"Alice"}`
	validDeposit = `{"amount_paise":50000,"reference":"neft-1"}`
	validPayment = `{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":12500,"note":"lunch"}`
	paymentID    = "0b4f8f5e-6a3c-4c1e-9d7a-2f1e3b4c5d6e"
)

func TestOperationsRoutesNeedNoKeyAndAreNotLimited(t *testing.T) {
	g := newGateway(t, options{rps: 1, burst: 1})
	for i := 0; i < 5; i++ {
		res := g.do(req{method: http.MethodGet, path: "/healthz"})
		if res.status != http.StatusOK {
			t.Fatalf("GET /healthz #%d = %d %s", i, res.status, res)
		}
	}
	// Downstream services are dead here, so /readyz says so, still without a key, and says nothing of
	// which dependency (that is the operations listener's detailed readiness).
	res := g.do(req{method: http.MethodGet, path: "/readyz"})
	if res.status != http.StatusServiceUnavailable || strings.Contains(string(res.body), "redis") ||
		strings.Contains(string(res.body), "service") {
		t.Fatalf("readyz with dead downstreams = %d %s", res.status, res)
	}
}

// TestPublicPortServesNoOperations: metrics (client ids, volumes) and profiles are not on the public
// port, with or without a key.
func TestPublicPortServesNoOperations(t *testing.T) {
	g := newGateway(t, options{})
	for _, path := range []string{"/metrics", "/debug/pprof/", "/admin/rebuild/all"} {
		for _, key := range []string{"", alphaKey, opsKey} {
			res := g.do(req{method: http.MethodGet, path: path, key: key})
			if res.status != http.StatusNotFound || strings.Contains(string(res.body), "gateway_") {
				t.Errorf("GET %s (key %q) = %d %s", path, key, res.status, res)
			}
		}
	}
}

// TestOperatorAndClientKeysDoNotMix: under /v1/ops/ a client's key is 403 FORBIDDEN and no key 401; an
// operator's key on a client route is 403 too. Every route under /v1/ops/ is covered, whatever it is.
func TestOperatorAndClientKeysDoNotMix(t *testing.T) {
	g := newGateway(t, options{})
	for _, tc := range []struct {
		method, path, key string
		status            int
		code              string
	}{
		{http.MethodGet, "/v1/ops/ledger-check", alphaKey, http.StatusForbidden, "FORBIDDEN"},
		{http.MethodPost, "/v1/ops/anything/at/all", betaKey, http.StatusForbidden, "FORBIDDEN"},
		{http.MethodGet, "/v1/ops/ledger-check", "", http.StatusUnauthorized, "UNAUTHENTICATED"},
		{http.MethodGet, "/v1//ops/ledger-check", alphaKey, http.StatusForbidden, "FORBIDDEN"},
		{http.MethodGet, "/v1/accounts/../ops/ledger-check", alphaKey, http.StatusForbidden, "FORBIDDEN"},
		{http.MethodGet, "/v1/%6Fps/ledger-check", alphaKey, http.StatusForbidden, "FORBIDDEN"},
		{http.MethodGet, "/v1/ops/ledger-check", "not-a-key", http.StatusUnauthorized, "UNAUTHENTICATED"},
		{http.MethodGet, "/v1/accounts/alice@okbank", opsKey, http.StatusForbidden, "FORBIDDEN"},
		{http.MethodGet, "/v1/payments/" + paymentID, opsKey, http.StatusForbidden, "FORBIDDEN"},
		// An operator on an operator route passes authentication (no such route yet: 404).
		{http.MethodGet, "/v1/ops/no-such-route", opsKey, http.StatusNotFound, "NOT_FOUND"},
	} {
		r := req{method: tc.method, path: tc.path, key: tc.key}
		if tc.method == http.MethodPost {
			r.body, r.idem = "{}", "k1"
		}
		res := g.do(r)
		if res.status != tc.status || res.problem.Code != tc.code {
			t.Errorf("%s %s with key %q = %d %s; want %d %s", tc.method, tc.path, tc.key, res.status, res, tc.status, tc.code)
		}
	}
}

func TestAuthentication(t *testing.T) {
	g := newGateway(t, options{})
	for _, tc := range []struct{ name, authorization string }{
		{"no header", ""},
		{"wrong key", "Bearer not-a-key"},
		{"key as prefix", "Bearer " + alphaKey + "x"},
		{"prefix of key", "Bearer " + alphaKey[:5]},
		{"basic scheme", "Basic " + alphaKey},
		{"empty bearer", "Bearer "},
		{"no scheme", alphaKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []req{
				{method: http.MethodPost, path: "/v1/payments", idem: "k", body: validPayment},
				{method: http.MethodGet, path: "/v1/accounts/alice@okbank"},
				{method: http.MethodGet, path: "/v1/nowhere"},
			} {
				r.header = map[string]string{"Authorization": tc.authorization}
				res := g.do(r)
				expect(t, res, http.StatusUnauthorized, problem.CodeUnauthenticated)
				if !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
					t.Fatalf("WWW-Authenticate = %q", res.header.Get("WWW-Authenticate"))
				}
			}
		})
	}
	// A valid key (scheme case-insensitive) gets past authentication to validation, which needs no
	// downstream.
	for _, authz := range []string{"Bearer " + alphaKey, "bearer " + betaKey} {
		res := g.do(req{method: http.MethodPost, path: "/v1/payments", idem: "k", body: `{}`,
			header: map[string]string{"Authorization": authz}})
		expect(t, res, http.StatusBadRequest, problem.CodeValidation)
	}
	// An authenticated request for an unknown route is a 404, for a known route with a wrong method a 405.
	expect(t, g.do(req{method: http.MethodGet, path: "/v1/nowhere", key: alphaKey}), http.StatusNotFound, problem.CodeNotFound)
	expect(t, g.do(req{method: http.MethodDelete, path: "/v1/payments", key: alphaKey}), http.StatusMethodNotAllowed, problem.CodeMethodNotAllowed)
	expect(t, g.do(req{method: http.MethodGet, path: "/nowhere"}), http.StatusNotFound, problem.CodeNotFound)
	expect(t, g.do(req{method: http.MethodPost, path: "/healthz"}), http.StatusMethodNotAllowed, problem.CodeMethodNotAllowed)
}

func TestRateLimitPerClientThen429(t *testing.T) {
	g := newGateway(t, options{rps: 1, burst: 3})
	bad := func(key string) *result {
		return g.do(req{method: http.MethodPost, path: "/v1/payments", key: key, idem: "k", body: `{}`})
	}
	for i := 0; i < 3; i++ {
		res := bad(alphaKey)
		expect(t, res, http.StatusBadRequest, problem.CodeValidation)
		if got := res.header.Get("RateLimit-Remaining"); got != strconv.Itoa(2-i) {
			t.Fatalf("request %d: RateLimit-Remaining = %s, want %d", i, got, 2-i)
		}
		if got := res.header.Get("RateLimit-Limit"); got != "3" {
			t.Fatalf("RateLimit-Limit = %s, want 3", got)
		}
	}
	res := bad(alphaKey)
	expect(t, res, http.StatusTooManyRequests, problem.CodeRateLimited)
	if ra, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || ra < 1 || ra > 2 {
		t.Fatalf("Retry-After = %q, want 1 or 2 seconds", res.header.Get("Retry-After"))
	}
	if res.header.Get("RateLimit-Remaining") != "0" || res.header.Get("RateLimit-Reset") == "" {
		t.Fatalf("RateLimit headers on 429: %v", res.header)
	}
	// Reads count against the same client budget.
	expect(t, g.do(req{method: http.MethodGet, path: "/v1/accounts/alice@okbank", key: alphaKey}), http.StatusTooManyRequests, problem.CodeRateLimited)
	// Another client has its own budget.
	expect(t, bad(betaKey), http.StatusBadRequest, problem.CodeValidation)
	// After the sustained rate refills one token, one more request passes.
	time.Sleep(1100 * time.Millisecond)
	expect(t, bad(alphaKey), http.StatusBadRequest, problem.CodeValidation)
	expect(t, bad(alphaKey), http.StatusTooManyRequests, problem.CodeRateLimited)
}

func TestRateLimitUnauthenticatedPerIP(t *testing.T) {
	g := newGateway(t, options{rps: 1, burst: 3})
	guess := func(i int) *result {
		return g.do(req{method: http.MethodGet, path: "/v1/accounts/alice@okbank", key: "guess-" + strconv.Itoa(i)})
	}
	for i := 0; i < 3; i++ {
		expect(t, guess(i), http.StatusUnauthorized, problem.CodeUnauthenticated)
	}
	// Key guessing from one address is throttled like any traffic...
	expect(t, guess(3), http.StatusTooManyRequests, problem.CodeRateLimited)
	// ...without costing a real client its budget.
	expect(t, g.do(req{method: http.MethodPost, path: "/v1/payments", key: alphaKey, idem: "k", body: `{}`}),
		http.StatusBadRequest, problem.CodeValidation)
}

func TestIdempotencyKeyRequired(t *testing.T) {
	g := newGateway(t, options{})
	for _, tc := range []struct{ name, key string }{
		{"missing", ""},
		{"too long", strings.Repeat("k", 256)},
		{"control character", "key\tx"},
		{"non-ascii", "ключ"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/v1/accounts", "/v1/accounts/alice@okbank/deposits", "/v1/payments"} {
				r := req{method: http.MethodPost, path: path, key: alphaKey, body: validAccount}
				if tc.key != "" {
					r.header = map[string]string{contract.HeaderIdempotencyKey: tc.key}
				}
				expect(t, g.do(r), http.StatusBadRequest, problem.CodeIdempotencyKeyRequired)
			}
		})
	}
}

// TestValidationAtTheEdge: bad input never reaches a service (the downstreams here are dead, so anything
// forwarded would be a 503) and is a 4xx problem naming the field.
func TestValidationAtTheEdge(t *testing.T) {
	g := newGateway(t, options{})
	big := `{"vpa":"alice@okbank","holder_name":"` + strings.Repeat("a", contract.MaxBodyBytes) + `"}`
	goodToken := position.Position{TxID: 7, GlobalPosition: 9}.Token()
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code, field              string
	}{
		{"account: bad vpa", "POST", "/v1/accounts", `{"vpa":"no-at","holder_name":"A"}`, 400, problem.CodeValidation, "vpa"},
		{"account: empty name", "POST", "/v1/accounts", `{"vpa":"a@b","holder_name":" "}`, 400, problem.CodeValidation, "holder_name"},
		{"account: name of 101", "POST", "/v1/accounts", `{"vpa":"a@b","holder_name":"` + strings.Repeat("n", 101) + `"}`, 400, problem.CodeValidation, "holder_name"},
		{"account: unknown field", "POST", "/v1/accounts", `{"vpa":"a@b","holder_name":"A","owner":"x"}`, 400, problem.CodeValidation, "owner"},
		{"account: wrong type", "POST", "/v1/accounts", `{"vpa":7,"holder_name":"A"}`, 400, problem.CodeValidation, "vpa"},
		{"account: malformed", "POST", "/v1/accounts", `{"vpa":"a@b",`, 400, problem.CodeMalformedJSON, ""},
		{"account: two objects", "POST", "/v1/accounts", validAccount + validAccount, 400, problem.CodeMalformedJSON, ""},
		{"account: array", "POST", "/v1/accounts", `[]`, 400, problem.CodeMalformedJSON, ""},
		{"account: over 64KiB", "POST", "/v1/accounts", big, 413, problem.CodeBodyTooLarge, ""},
		{"deposit: zero", "POST", "/v1/accounts/alice@okbank/deposits", `{"amount_paise":0,"reference":"r"}`, 400, problem.CodeValidation, "amount_paise"},
		{"deposit: float", "POST", "/v1/accounts/alice@okbank/deposits", `{"amount_paise":1.5,"reference":"r"}`, 400, problem.CodeValidation, "amount_paise"},
		{"deposit: string amount", "POST", "/v1/accounts/alice@okbank/deposits", `{"amount_paise":"5","reference":"r"}`, 400, problem.CodeValidation, "amount_paise"},
		{"deposit: over max", "POST", "/v1/accounts/alice@okbank/deposits", `{"amount_paise":100000001,"reference":"r"}`, 400, problem.CodeValidation, "amount_paise"},
		{"deposit: no reference", "POST", "/v1/accounts/alice@okbank/deposits", `{"amount_paise":5}`, 400, problem.CodeValidation, "reference"},
		{"deposit: bad vpa in path", "POST", "/v1/accounts/NOT!VALID/deposits", validDeposit, 400, problem.CodeValidation, "vpa"},
		{"payment: same payer and payee", "POST", "/v1/payments", `{"payer_vpa":"a@b","payee_vpa":"A@B","amount_paise":1}`, 400, problem.CodeValidation, "payee_vpa"},
		{"payment: over max", "POST", "/v1/payments", `{"payer_vpa":"a@b","payee_vpa":"c@d","amount_paise":10000001}`, 400, problem.CodeValidation, "amount_paise"},
		{"payment: negative", "POST", "/v1/payments", `{"payer_vpa":"a@b","payee_vpa":"c@d","amount_paise":-1}`, 400, problem.CodeValidation, "amount_paise"},
		{"payment: note of 101", "POST", "/v1/payments", `{"payer_vpa":"a@b","payee_vpa":"c@d","amount_paise":1,"note":"` + strings.Repeat("n", 101) + `"}`, 400, problem.CodeValidation, "note"},
		{"payment: currency field", "POST", "/v1/payments", `{"payer_vpa":"a@b","payee_vpa":"c@d","amount_paise":1,"currency":"USD"}`, 400, problem.CodeValidation, "currency"},
		{"get account: bad vpa", "GET", "/v1/accounts/nope", "", 400, problem.CodeValidation, "vpa"},
		{"balance: bad token", "GET", "/v1/accounts/alice@okbank/balance?min_position=xyz", "", 400, problem.CodeValidation, "min_position"},
		{"balance: bad escape", "GET", "/v1/accounts/alice@okbank/balance?min_position=%zz", "", 400, problem.CodeValidation, "query"},
		{"balance: empty token", "GET", "/v1/accounts/alice@okbank/balance?min_position=", "", 400, problem.CodeValidation, "min_position"},
		{"transactions: limit 0", "GET", "/v1/accounts/alice@okbank/transactions?limit=0", "", 400, problem.CodeValidation, "limit"},
		{"transactions: limit 201", "GET", "/v1/accounts/alice@okbank/transactions?limit=201", "", 400, problem.CodeValidation, "limit"},
		{"transactions: limit text", "GET", "/v1/accounts/alice@okbank/transactions?limit=ten", "", 400, problem.CodeValidation, "limit"},
		{"transactions: huge cursor", "GET", "/v1/accounts/alice@okbank/transactions?cursor=" + strings.Repeat("c", 600), "", 400, problem.CodeValidation, "cursor"},
		{"payment: not a uuid", "GET", "/v1/payments/12345", "", 400, problem.CodeValidation, "payment_id"},
		{"payment: wait 31s", "GET", "/v1/payments/" + paymentID + "?wait=31s", "", 400, problem.CodeValidation, "wait"},
		{"payment: wait negative", "GET", "/v1/payments/" + paymentID + "?wait=-1s", "", 400, problem.CodeValidation, "wait"},
		{"payment: wait text", "GET", "/v1/payments/" + paymentID + "?wait=soon", "", 400, problem.CodeValidation, "wait"},
		{"events: bad uuid and token", "GET", "/v1/payments/x/events?min_position=" + goodToken + "!", "", 400, problem.CodeValidation, "min_position"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := g.do(req{method: tc.method, path: tc.path, key: alphaKey, idem: "key-1", body: tc.body})
			expect(t, res, tc.status, tc.code)
			if tc.field != "" && !fieldErr(res, tc.field) {
				t.Fatalf("errors do not name %s: %s", tc.field, res.body)
			}
		})
	}
	t.Run("wrong content type", func(t *testing.T) {
		res := g.do(req{method: "POST", path: "/v1/accounts", key: alphaKey, idem: "k", body: validAccount,
			header: map[string]string{"Content-Type": "text/plain"}})
		expect(t, res, http.StatusUnsupportedMediaType, problem.CodeUnsupportedMediaType)
	})
}

// TestDeadlines: a slow service gives a quick 504, a dead one a quick 503; the key is released so a retry
// executes again. The fake service stands for the failures; it also shows what the gateway sends it.
func TestDeadlines(t *testing.T) {
	var calls atomic.Int32
	var gotClient, gotRequestID, gotKey atomic.Value
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		gotClient.Store(r.Header.Get(contract.HeaderClientID))
		gotRequestID.Store(r.Header.Get("X-Request-ID"))
		gotKey.Store(r.Header.Get(contract.HeaderIdempotencyKey))
		select {
		case <-time.After(1500 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "PENDING"})
	}))
	t.Cleanup(slow.Close)
	g := newGateway(t, options{commandURL: slow.URL, queryURL: slow.URL,
		commandTimeout: 300 * time.Millisecond, queryTimeout: 300 * time.Millisecond})

	start := time.Now()
	res := g.do(req{method: "POST", path: "/v1/payments", key: alphaKey, idem: "slow-1", body: validPayment,
		header: map[string]string{contract.HeaderClientID: "psp-beta", "X-Request-ID": "req-abc-123"}})
	expect(t, res, http.StatusGatewayTimeout, problem.CodeUpstreamTimeout)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("504 took %v", took)
	}
	if gotClient.Load() != "psp-alpha" {
		t.Fatalf("service saw X-Client-ID %q, want the authenticated psp-alpha", gotClient.Load())
	}
	if gotRequestID.Load() != "req-abc-123" || res.header.Get("X-Request-ID") != "req-abc-123" {
		t.Fatalf("request id not passed on: service saw %q, client got %q", gotRequestID.Load(), res.header.Get("X-Request-ID"))
	}
	if gotKey.Load() != "slow-1" {
		t.Fatalf("service saw Idempotency-Key %q", gotKey.Load())
	}
	// Not stored and not held: the retry executes again (and times out again), rather than a 409.
	expect(t, g.do(req{method: "POST", path: "/v1/payments", key: alphaKey, idem: "slow-1", body: validPayment}),
		http.StatusGatewayTimeout, problem.CodeUpstreamTimeout)
	if calls.Load() != 2 {
		t.Fatalf("service called %d times, want 2", calls.Load())
	}

	// A read that asks to wait gets a deadline that long plus the margin, so the long-poll is not cut off.
	res = g.do(req{method: "GET", path: "/v1/payments/" + paymentID + "?wait=2s", key: alphaKey})
	if res.status != http.StatusOK {
		t.Fatalf("long-poll = %d %s, want the service's 200", res.status, res)
	}
	expect(t, g.do(req{method: "GET", path: "/v1/payments/" + paymentID, key: alphaKey}), http.StatusGatewayTimeout, problem.CodeUpstreamTimeout)

	dead := newGateway(t, options{commandTimeout: 300 * time.Millisecond})
	start = time.Now()
	res = dead.do(req{method: "POST", path: "/v1/accounts", key: alphaKey, idem: "dead-1", body: validAccount})
	expect(t, res, http.StatusServiceUnavailable, problem.CodeDependencyUnavailable)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("503 took %v", took)
	}
	expect(t, dead.do(req{method: "GET", path: "/v1/accounts/alice@okbank/balance", key: alphaKey}),
		http.StatusServiceUnavailable, problem.CodeDependencyUnavailable)
	// The released key lets the retry through to the (still dead) service again.
	expect(t, dead.do(req{method: "POST", path: "/v1/accounts", key: alphaKey, idem: "dead-1", body: validAccount}),
		http.StatusServiceUnavailable, problem.CodeDependencyUnavailable)
}
