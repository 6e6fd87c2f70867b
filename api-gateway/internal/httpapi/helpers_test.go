package httpapi_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"upi/api-gateway/internal/adapters/downstream"
	redisadapter "upi/api-gateway/internal/adapters/redis"
	"upi/api-gateway/internal/apispec"
	"upi/api-gateway/internal/app"
	"upi/api-gateway/internal/auth"
	"upi/api-gateway/internal/config"
	"upi/api-gateway/internal/httpapi"
	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/keyring"
	"upi/shared/platform/observability"
	"upi/shared/platform/servicetoken"
	"upi/testenv"
)

// Keys of the test clients.
const (
	alphaKey = "alpha-secret"
	betaKey  = "beta-secret"
	apiKeys  = "psp-alpha=" + alphaKey + ",psp-beta=" + betaKey
	// opsKey is the test operator's key (OPERATOR_KEYS).
	opsKey = "ops-secret-of-the-tests"
)

// deadURL is a base URL where nothing listens: a test that reaches it by mistake sees 503.
const deadURL = "http://127.0.0.1:1"

type options struct {
	commandURL, queryURL string
	redisURL             string // default: a private database of the test Redis
	rps, burst           int
	commandTimeout       time.Duration
	// limits are the command service's LIMIT_* settings; unset, every payer limit is off (tests pay often
	// from one account).
	limits       map[string]string
	queryTimeout time.Duration
	// maxInFlight is the gateway's MaxCommandsInFlight (0: its default).
	maxInFlight int
	// batch is the gateway's COMMAND_BATCH_CONCURRENCY (0: 2 here, so that every end-to-end test runs
	// through the batches, which the gateway's default leaves off; -1: no batches).
	batch int
}

// gateway is the real router served over HTTP, with a real Redis.
type gateway struct {
	t      testing.TB
	url    string
	router chi.Router
	reg    *prometheus.Registry
	rdb    *redis.Client
}

var (
	specOnce sync.Once
	spec     *apispec.Spec
	specErr  error
)

func loadSpec(t testing.TB) *apispec.Spec {
	t.Helper()
	specOnce.Do(func() { spec, specErr = apispec.Load() })
	if specErr != nil {
		t.Fatalf("load openapi.yaml: %v", specErr)
	}
	return spec
}

func newGateway(t testing.TB, o options) *gateway {
	t.Helper()
	if o.commandURL == "" {
		o.commandURL = deadURL
	}
	if o.queryURL == "" {
		o.queryURL = deadURL
	}
	if o.redisURL == "" {
		o.redisURL = testenv.Redis(t)
	}
	if o.rps == 0 {
		o.rps, o.burst = 100000, 100000
	}
	clients, err := config.ParseAPIKeys(apiKeys)
	if err != nil {
		t.Fatal(err)
	}
	ropts, err := config.RedisOptions(o.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(ropts)
	t.Cleanup(func() { rdb.Close() })

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	reg := observability.Registry()
	limiter := redisadapter.NewLimiter(rdb, o.rps, o.burst, log)
	// The services started by tests run in development mode: they trust the gateway's development key.
	signer := servicetoken.NewSigner(servicetoken.Gateway, servicetoken.DevRoot(servicetoken.Gateway))
	services := downstream.NewClient(reg, func(rt http.RoundTripper) http.RoundTripper { return signer.Transport("", rt) })
	commandService := services.Endpoint(downstream.Service{Name: "command-service", BaseURL: o.commandURL}, http.MethodPost)
	var commands app.Service = commandService
	if o.batch >= 0 {
		commands = services.NewBatcher(commandService, cmp.Or(o.batch, 2), reg)
	}
	router := httpapi.NewRouter(httpapi.Config{
		Log:      log,
		Registry: reg,
		Checks: []observability.Check{
			{Name: "redis", Ping: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
			observability.HTTPCheck("command-service", o.commandURL, http.DefaultClient),
			observability.HTTPCheck("query-service", o.queryURL, http.DefaultClient),
		},
		Auth: auth.NewKeyrings(keyring.New(clients), keyring.FromMap(map[string]string{opsKey: "test-operator"})),
		App: app.New(app.Config{
			Log:            log,
			Registry:       reg,
			Limiter:        limiter,
			Idempotency:    redisadapter.NewStore(rdb, limiter, 30*time.Second, 24*time.Hour),
			Commands:       commands,
			Queries:        services.Endpoint(downstream.Service{Name: "query-service", BaseURL: o.queryURL}, http.MethodGet),
			QueryWaitMax:   2 * time.Second,
			CommandTimeout: o.commandTimeout,
			QueryTimeout:   o.queryTimeout,

			MaxCommandsInFlight: o.maxInFlight,
		}),
		Limits: contract.Limits{PaymentMaxPaise: 10_000_000, DepositMaxPaise: 100_000_000},
	})
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	return &gateway{t: t, url: srv.URL, router: router, reg: reg, rdb: rdb}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// result is what a client saw.
type result struct {
	status  int
	header  http.Header
	body    []byte
	problem problem.Problem
}

func (r *result) String() string { return r.header.Get("Content-Type") + " " + string(r.body) }

// req is one request to the gateway.
type req struct {
	method, path string
	key          string // API key; "" sends no Authorization
	idem         string // Idempotency-Key; "" sends none
	body         string
	header       map[string]string
}

// do sends r and checks what every answer must be, whatever the test: it carries X-Request-ID, /v1 answers
// carry the RateLimit headers, and every error is problem+json with a status and code documented for the
// route in docs/openapi.yaml.
func (g *gateway) do(r req) *result {
	g.t.Helper()
	// Called from goroutines too: it reports with Errorf (t.Fatal must run on the test's own goroutine)
	// and returns a zero answer, which the caller's checks then refuse.
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequest(r.method, g.url+r.path, body)
	if err != nil {
		g.t.Error(err)
		return &result{header: http.Header{}}
	}
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.key != "" {
		hr.Header.Set("Authorization", "Bearer "+r.key)
	}
	if r.idem != "" {
		hr.Header.Set(contract.HeaderIdempotencyKey, r.idem)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		g.t.Errorf("%s %s: %v", r.method, r.path, err)
		return &result{header: http.Header{}}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		g.t.Error(err)
		return &result{header: http.Header{}}
	}
	res := &result{status: resp.StatusCode, header: resp.Header, body: b}
	checkAnswer(g.t, r.method, hr.URL.Path, res)
	return res
}

func checkAnswer(t testing.TB, method, path string, res *result) {
	t.Helper()
	if res.header.Get(observability.HeaderRequestID) == "" {
		t.Errorf("%s %s: no X-Request-ID", method, path)
	}
	pattern := routeOf(loadSpec(t), path)
	// A command the gateway shed before its rate limit was looked at (503 OVERLOADED) has no RateLimit
	// headers: it did not count against the client's limit.
	shedAtEdge := res.status == http.StatusServiceUnavailable && bytes.Contains(res.body, []byte(`"code":"OVERLOADED"`)) &&
		res.header.Get("RateLimit-Limit") == ""
	if strings.HasPrefix(path, "/v1/") && pattern != "" && !shedAtEdge {
		for _, h := range []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
			if res.header.Get(h) == "" {
				t.Errorf("%s %s: no %s header", method, path, h)
			}
		}
	}
	if res.status < 400 || pattern == "/readyz" { // readiness answers its JSON report in either case
		if err := loadSpec(t).Documented(method, pattern, res.status, ""); err != nil {
			t.Errorf("%v", err)
		}
		return
	}
	mt, _, _ := mime.ParseMediaType(res.header.Get("Content-Type"))
	if mt != problem.ContentType {
		t.Errorf("%s %s: %d with Content-Type %q, want problem+json; body %s", method, path, res.status, mt, res.body)
		return
	}
	if err := json.Unmarshal(res.body, &res.problem); err != nil {
		t.Errorf("%s %s: problem body: %v: %s", method, path, err, res.body)
		return
	}
	if res.problem.Status != res.status || res.problem.Code == "" || res.problem.Type == "" || res.problem.Title == "" {
		t.Errorf("%s %s: incomplete problem %s", method, path, res.body)
	}
	if err := loadSpec(t).Documented(method, pattern, res.status, res.problem.Code); err != nil {
		t.Errorf("%v", err)
	}
}

// routeOf is the spec path template matching a request path, or "" when none does.
func routeOf(s *apispec.Spec, path string) string {
	segs := strings.Split(path, "/")
	for tmpl := range s.Paths {
		ts := strings.Split(tmpl, "/")
		if len(ts) != len(segs) {
			continue
		}
		ok := true
		for i := range ts {
			if !strings.HasPrefix(ts[i], "{") && ts[i] != segs[i] {
				ok = false
				break
			}
		}
		if ok {
			return tmpl
		}
	}
	return ""
}

// expect fails unless res has the status and (for errors) the code.
func expect(t testing.TB, res *result, status int, code string) {
	t.Helper()
	if res.status != status || (code != "" && res.problem.Code != code) {
		t.Fatalf("got %d %s, want %d %s", res.status, res, status, code)
	}
}

// fieldErr reports whether a VALIDATION problem names field.
func fieldErr(res *result, field string) bool {
	for _, e := range res.problem.Errors {
		if e.Field == field {
			return true
		}
	}
	return false
}

func jsonBody(t testing.TB, res *result) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(res.body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", res.body, err)
	}
	return m
}

// counterValue reads a counter (summed over its labels) from the gateway's registry.
func counterValue(t testing.TB, g *gateway, name string) float64 {
	t.Helper()
	families, err := g.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
