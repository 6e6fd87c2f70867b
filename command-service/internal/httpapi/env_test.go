package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"upi/command-service/internal/app"
	"upi/command-service/internal/domain"
	"upi/command-service/internal/httpapi"
	"upi/shared/contract"
	"upi/shared/contract/problem"
	"upi/shared/platform/eventstore"
	"upi/shared/platform/observability"
	"upi/testenv"
)

// Limits of the tests: the defaults of the configuration.
var limits = contract.Limits{PaymentMaxPaise: 10_000_000, DepositMaxPaise: 100_000_000}

// env is the real router of the service on a fresh, migrated database, served over HTTP.
type env struct {
	t     testing.TB
	srv   *httptest.Server
	pool  *pgxpool.Pool
	store *eventstore.Store
}

func newEnv(t testing.TB) *env {
	t.Helper()
	pool, _ := testenv.PostgresPool(t)
	return newEnvOn(t, pool)
}

func newEnvOn(t testing.TB, pool *pgxpool.Pool) *env {
	t.Helper()
	store := app.NewStore(pool)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	router := observability.NewRouter(observability.RouterConfig{Log: log, Registry: reg})
	// The metrics live on the operations listener in the service; the tests read them here.
	router.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	httpapi.Register(router, httpapi.Config{Service: app.New(store, domain.Limits{}), Limits: limits, // payer limits off: tests pay often from one account
		Log: log, Registry: reg})
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, pool: pool, store: store}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request; client and key are left out when empty.
func (e *env) do(client, key, path, body string) response {
	e.t.Helper()
	// Called from goroutines too: it reports with Errorf (t.Fatal must run on the test's own goroutine)
	// and returns a zero answer, which the caller's checks then refuse.
	r, err := send(e.srv.Client(), e.srv.URL, client, key, path, body)
	if err != nil {
		e.t.Error(err)
		return response{}
	}
	return r
}

func send(hc *http.Client, base, client, key, path, body string) (response, error) {
	req, err := http.NewRequest(http.MethodPost, base+path, bytes.NewReader([]byte(body)))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if client != "" {
		req.Header.Set(contract.HeaderClientID, client)
	}
	if key != "" {
		req.Header.Set(contract.HeaderIdempotencyKey, key)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}, err
}

// must is do that fails the test unless the status is want.
func (e *env) must(want int, client, key, path, body string) response {
	e.t.Helper()
	r := e.do(client, key, path, body)
	if r.status != want {
		e.t.Fatalf("POST %s %s = %d %s, want %d", path, body, r.status, r.body, want)
	}
	return r
}

// refused asserts a problem+json answer with status and code.
func (e *env) refused(r response, status int, code string) problem.Problem {
	e.t.Helper()
	var p problem.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		e.t.Fatalf("body %s: %v", r.body, err)
	}
	if r.status != status || p.Code != code || p.Status != status || r.header.Get("Content-Type") != problem.ContentType {
		e.t.Fatalf("answer %d %s %s, want %d %s problem+json", r.status, r.header.Get("Content-Type"), r.body, status, code)
	}
	return p
}

func (e *env) openAccount(client, vpa string) contract.Account {
	e.t.Helper()
	var a contract.Account
	decode(e.t, e.must(http.StatusCreated, client, "open-"+vpa, "/v1/accounts", `{"vpa":"`+vpa+`","holder_name":"Holder"}`), &a)
	return a
}

func (e *env) deposit(client, vpa string, amount int64, key string) {
	e.t.Helper()
	e.must(http.StatusCreated, client, key, "/v1/accounts/"+vpa+"/deposits",
		`{"amount_paise":`+itoa(amount)+`,"reference":"ref-`+key+`"}`)
}

func (e *env) pay(client, payer, payee string, amount int64, key string) contract.Payment {
	e.t.Helper()
	var p contract.Payment
	decode(e.t, e.must(http.StatusAccepted, client, key, "/v1/payments",
		`{"payer_vpa":"`+payer+`","payee_vpa":"`+payee+`","amount_paise":`+itoa(amount)+`}`), &p)
	return p
}

// metrics is the service's /metrics page.
func (e *env) metrics() string {
	e.t.Helper()
	resp, err := e.srv.Client().Get(e.srv.URL + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

// eventCount is the number of events in the whole log.
func (e *env) eventCount() int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), `select count(*) from events`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// storedEvent is an event's type and metadata as the log holds them.
type storedEvent struct {
	Type     string
	Metadata []byte
}

// stream is one stream's events in version order, as stored.
func (e *env) stream(aggregateID string) []storedEvent {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(),
		`select event_type, metadata from events where aggregate_id = $1 order by version`, aggregateID)
	if err != nil {
		e.t.Fatal(err)
	}
	evs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[storedEvent])
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// account rebuilds an account from its stream, as the next command would see it.
func (e *env) account(vpa string) domain.Account {
	e.t.Helper()
	a, _, err := eventstore.LoadState(context.Background(), e.store, app.AccountAggregate(), vpa)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func decode(t testing.TB, r response, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
