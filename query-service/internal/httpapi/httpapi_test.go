package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"upi/db"
	"upi/query-service/internal/adapters/postgres"
	"upi/query-service/internal/app"
	"upi/query-service/internal/httpapi"
	"upi/shared/contract/projection"
	"upi/shared/platform/eventstore"
	"upi/shared/platform/observability"
	"upi/shared/platform/servicetoken"
	"upi/testenv"
)

// The query service's input is the projection tables and the consumers' notifications; these tests write
// both the way event-consumers does, and read through the real router.

type fixture struct {
	t    *testing.T
	pool *pgxpool.Pool
	srv  *httptest.Server
	pos  int64 // last position handed out
}

// newFixture serves the routes as the query service does: reading as upi_query, the role it runs as, so
// that a read model it cannot read fails here too. The fixture writes as the migration owner.
func newFixture(t *testing.T, waitMax time.Duration) *fixture {
	t.Helper()
	pool, url := testenv.PostgresPool(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	watch := app.NewWatch()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	readPool, err := db.Open(ctx, url, "query-service-test", "upi_query", 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(readPool.Close)
	go postgres.NewListener(readPool, watch, log, reg).Run(ctx)
	router := observability.NewRouter(observability.RouterConfig{Log: log, Registry: reg})
	httpapi.Routes(router, app.New(postgres.NewReader(readPool), watch, waitMax), log)
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	f := &fixture{t: t, pool: pool, srv: srv, pos: 100}
	f.advance(projection.Accounts)
	f.advance(projection.Payments)
	return f
}

func (f *fixture) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.pool.Exec(context.Background(), sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

// next hands out the next log position.
func (f *fixture) next() eventstore.Position {
	f.pos++
	return eventstore.Position{TxID: uint64(f.pos), GlobalPosition: f.pos}
}

// advance moves a projection's checkpoint to a new position and notifies, as the runner does.
func (f *fixture) advance(name string) eventstore.Position {
	p := f.next()
	f.exec(`update projection_checkpoints set tx_id = $2::text::xid8, global_position = $3 where name = $1`,
		name, strconv.FormatUint(p.TxID, 10), p.GlobalPosition)
	f.exec(`select pg_notify($1, $2)`, projection.CheckpointChannel, projection.CheckpointPayload(name, p))
	return p
}

func (f *fixture) account(vpa, owner string, balance int64) {
	p := f.next()
	f.exec(`insert into accounts values ($1, $2, 'Holder', $3, 1, now(), now(), $4::text::xid8, $5)`,
		vpa, owner, balance, strconv.FormatUint(p.TxID, 10), p.GlobalPosition)
	f.exec(`insert into payment_account_owners values ($1, $2)`, vpa, owner)
}

func (f *fixture) payment(payer, payee string) uuid.UUID {
	id := uuid.New()
	p := f.next()
	f.exec(`insert into payments values ($1, $2::text, $3::text, 500, 'lunch', 'c',
		(select owner_client_id from payment_account_owners where vpa = $2::text),
		(select owner_client_id from payment_account_owners where vpa = $3::text),
		'PENDING', null, now(), now(), 1, $4::text::xid8, $5)`, id, payer, payee, strconv.FormatUint(p.TxID, 10), p.GlobalPosition)
	f.exec(`insert into payment_events values ($1, $2, 'PaymentInitiated', now(), '{"payment_id": "x"}', $3::text::xid8, $4)`,
		uuid.New(), id, strconv.FormatUint(p.TxID, 10), p.GlobalPosition)
	return id
}

func (f *fixture) complete(id uuid.UUID) {
	f.exec(`update payments set status = 'COMPLETED', version = 2 where payment_id = $1`, id)
	f.exec(`select pg_notify($1, $2)`, projection.PaymentSettledChannel, id.String())
}

type response struct {
	status int
	header http.Header
	body   map[string]any
}

func (f *fixture) get(client, path string) response {
	f.t.Helper()
	return f.getWith(path, "X-Client-ID", client)
}

// getOps is a read made for an operator, as the service's token check leaves it.
func (f *fixture) getOps(path string) response {
	f.t.Helper()
	return f.getWith(path, servicetoken.HeaderOperatorID, "ops-alice")
}

func (f *fixture) getWith(path, header, value string) response {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	if value != "" {
		req.Header.Set(header, value)
	}
	// Called from goroutines too: it reports with Errorf (t.Fatal must run on the test's own goroutine)
	// and returns a zero answer, which the caller's checks then refuse.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Error(err)
		return response{}
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		f.t.Errorf("GET %s: body: %v", path, err)
		return response{status: resp.StatusCode, header: resp.Header}
	}
	return response{resp.StatusCode, resp.Header, body}
}

func expect(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status || (code != "" && r.body["code"] != code) {
		t.Fatalf("got %d %v, want %d %s", r.status, r.body, status, code)
	}
}

func TestAccountsAreVisibleToTheirOwnerOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 100*time.Millisecond)
	f.account("alice@okbank", "psp-alpha", 1250)
	cp := f.advance(projection.Accounts)

	r := f.get("psp-alpha", "/v1/accounts/Alice@OKBANK")
	expect(t, r, 200, "")
	want := map[string]any{"vpa": "alice@okbank", "holder_name": "Holder", "type": "PERSON", "status": "ACTIVE",
		"balance_paise": float64(1250), "currency": "INR"}
	for k, v := range want {
		if r.body[k] != v {
			t.Errorf("%s = %v, want %v", k, r.body[k], v)
		}
	}
	if len(r.body) != 9 {
		t.Errorf("account has fields %v, want exactly the contract's 8", r.body)
	}
	if got := r.header.Get("X-Projection-Position"); got != cp.Token() {
		t.Errorf("X-Projection-Position %q, want %q", got, cp.Token())
	}
	r = f.get("psp-alpha", "/v1/accounts/alice@okbank/balance")
	expect(t, r, 200, "")
	if r.body["balance_paise"] != float64(1250) || len(r.body) != 4 {
		t.Errorf("balance body %v", r.body)
	}

	expect(t, f.get("psp-beta", "/v1/accounts/alice@okbank"), 404, "ACCOUNT_NOT_FOUND")
	expect(t, f.get("psp-beta", "/v1/accounts/alice@okbank/balance"), 404, "ACCOUNT_NOT_FOUND")
	expect(t, f.get("psp-beta", "/v1/accounts/alice@okbank/transactions"), 404, "ACCOUNT_NOT_FOUND")
	expect(t, f.get("psp-alpha", "/v1/accounts/nobody@okbank"), 404, "ACCOUNT_NOT_FOUND")
	expect(t, f.get("", "/v1/accounts/alice@okbank"), 401, "UNAUTHENTICATED")
	expect(t, f.get("psp-alpha", "/v1/accounts/not%20a%20vpa"), 400, "VALIDATION")
}

func TestPaymentsAreVisibleToPayerAndPayeeOwners(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 100*time.Millisecond)
	f.account("alice@okbank", "psp-alpha", 0)
	f.account("bob@okbank", "psp-beta", 0)
	id := f.payment("alice@okbank", "bob@okbank")
	f.advance(projection.Payments)

	for _, c := range []string{"psp-alpha", "psp-beta"} {
		r := f.get(c, "/v1/payments/"+id.String())
		expect(t, r, 200, "")
		if r.body["status"] != "PENDING" || r.body["failure_code"] != nil || r.body["payment_id"] != id.String() || len(r.body) != 14 ||
			r.body["upi_txn_id"] != "UPI"+strings.ReplaceAll(id.String(), "-", "") || r.body["npci_code"] != nil ||
			r.body["refunded_paise"] != float64(0) {
			t.Errorf("%s sees %v", c, r.body)
		}
		r = f.get(c, "/v1/payments/"+id.String()+"/events")
		expect(t, r, 200, "")
		if items, _ := r.body["items"].([]any); len(items) != 1 {
			t.Errorf("%s sees audit trail %v", c, r.body)
		}
	}
	expect(t, f.get("psp-gamma", "/v1/payments/"+id.String()), 404, "PAYMENT_NOT_FOUND")
	expect(t, f.get("psp-gamma", "/v1/payments/"+id.String()+"/events"), 404, "PAYMENT_NOT_FOUND")
	expect(t, f.get("psp-alpha", "/v1/payments/"+uuid.NewString()), 404, "PAYMENT_NOT_FOUND")
	expect(t, f.get("psp-alpha", "/v1/payments/not-a-uuid"), 400, "VALIDATION")
	expect(t, f.get("psp-alpha", "/v1/payments/"+id.String()+"?wait=31s"), 400, "VALIDATION")
	expect(t, f.get("psp-alpha", "/v1/payments/"+id.String()+"?wait=soon"), 400, "VALIDATION")
}

func TestTransactionsPaginationWalksEveryRowOnceNewestFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 100*time.Millisecond)
	f.account("alice@okbank", "psp-alpha", 0)
	const n = 237
	f.exec(`insert into account_transactions
		select 'alice@okbank', v, 'DEPOSIT', v, v * 10, null, null, 'ref-' || v, now(), (1000 + v)::text::xid8, 1000 + v
		from generate_series(2, $1 + 1) v`, n)
	f.advance(projection.Accounts)

	seen := map[float64]bool{}
	last := float64(1 << 40)
	cursor := ""
	pages := 0
	for {
		path := "/v1/accounts/alice@okbank/transactions?limit=50"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := f.get("psp-alpha", path)
		expect(t, r, 200, "")
		pages++
		for _, it := range r.body["items"].([]any) {
			amount := it.(map[string]any)["amount_paise"].(float64)
			if seen[amount] || amount >= last {
				t.Fatalf("row %v repeated or out of order (after %v)", amount, last)
			}
			seen[amount], last = true, amount
			if _, has := it.(map[string]any)["payment_id"]; has {
				t.Fatalf("a deposit shows a payment_id: %v", it)
			}
		}
		next, ok := r.body["next_cursor"].(string)
		if !ok {
			break
		}
		cursor = next
	}
	if len(seen) != n || pages != 5 {
		t.Fatalf("walked %d rows in %d pages, want %d in 5", len(seen), pages, n)
	}
	for _, q := range []string{"limit=0", "limit=201", "limit=x", "cursor=bogus", "cursor=" + "dHgxLi0x"} {
		expect(t, f.get("psp-alpha", "/v1/accounts/alice@okbank/transactions?"+q), 400, "VALIDATION")
	}
	r := f.get("psp-alpha", "/v1/accounts/alice@okbank/transactions")
	if items := r.body["items"].([]any); len(items) != 50 {
		t.Fatalf("default page has %d items, want 50", len(items))
	}
}

func TestMinPositionWaitsForTheProjectionOrAnswersStale(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 300*time.Millisecond)
	f.account("alice@okbank", "psp-alpha", 7)
	cp := f.advance(projection.Accounts)
	ahead := eventstore.Position{TxID: cp.TxID + 10, GlobalPosition: cp.GlobalPosition + 10}

	// Reached already: answers at once, not stale.
	r := f.get("psp-alpha", "/v1/accounts/alice@okbank?min_position="+cp.Token())
	expect(t, r, 200, "")
	if r.header.Get("X-Projection-Stale") != "" {
		t.Fatal("stale although the checkpoint was reached")
	}
	// Not reached within QUERY_WAIT_MAX: answers anyway, marked stale, with what it reflects.
	start := time.Now()
	r = f.get("psp-alpha", "/v1/accounts/alice@okbank/balance?min_position="+ahead.Token())
	expect(t, r, 200, "")
	if r.header.Get("X-Projection-Stale") != "true" || r.header.Get("X-Projection-Position") != cp.Token() {
		t.Fatalf("headers %v, want stale at %s", r.header, cp.Token())
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Fatalf("answered stale after %v, before waiting QUERY_WAIT_MAX", el)
	}
	expect(t, f.get("psp-alpha", "/v1/accounts/alice@okbank?min_position=nonsense"), 400, "VALIDATION")
	expect(t, f.get("psp-alpha", "/v1/payments/"+uuid.NewString()+"?min_position=AAAA"), 400, "VALIDATION")

	// Reached while waiting: the notification wakes the request, which answers fresh.
	g := newFixture(t, 5*time.Second)
	g.account("bob@okbank", "psp-beta", 9)
	target := g.next()
	done := make(chan response, 1)
	go func() { done <- g.get("psp-beta", "/v1/accounts/bob@okbank?min_position="+target.Token()) }()
	time.Sleep(200 * time.Millisecond)
	start = time.Now()
	g.pos = int64(target.GlobalPosition) - 1
	reached := g.advance(projection.Accounts)
	r = <-done
	if reached != target || r.status != 200 || r.header.Get("X-Projection-Stale") != "" {
		t.Fatalf("got %d stale=%q at %s", r.status, r.header.Get("X-Projection-Stale"), r.header.Get("X-Projection-Position"))
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("answered %v after the checkpoint moved", el)
	}
}

func TestPaymentLongPollAnswersWhenThePaymentSettles(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 100*time.Millisecond)
	f.account("alice@okbank", "psp-alpha", 0)
	f.account("bob@okbank", "psp-beta", 0)
	id := f.payment("alice@okbank", "bob@okbank")
	f.advance(projection.Payments)

	// No settlement: the wait runs to its end and answers the pending payment.
	start := time.Now()
	r := f.get("psp-alpha", "/v1/payments/"+id.String()+"?wait=300ms")
	if r.body["status"] != "PENDING" || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("got %v after %v", r.body["status"], time.Since(start))
	}

	done := make(chan response, 1)
	go func() { done <- f.get("psp-beta", "/v1/payments/"+id.String()+"?wait=20s") }()
	time.Sleep(300 * time.Millisecond)
	settledAt := time.Now()
	f.complete(id)
	select {
	case r := <-done:
		if r.status != 200 || r.body["status"] != "COMPLETED" {
			t.Fatalf("long-poll answered %d %v", r.status, r.body)
		}
		if el := time.Since(settledAt); el > 2*time.Second {
			t.Fatalf("long-poll answered %v after the payment settled", el)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long-poll did not answer when the payment settled")
	}
	// A terminal payment answers at once, whatever the wait.
	start = time.Now()
	if r := f.get("psp-alpha", "/v1/payments/"+id.String()+"?wait=20s"); r.body["status"] != "COMPLETED" || time.Since(start) > 2*time.Second {
		t.Fatalf("terminal payment: %v after %v", r.body["status"], time.Since(start))
	}
}

// The payee lookup shows any client the registered name and kind of a VPA, and nothing else.
func TestVPALookupShowsNameAndTypeOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 100*time.Millisecond)
	f.account("alice@okbank", "psp-alpha", 1250)
	f.account("shop@okbank", "psp-beta", 99)
	f.exec(`update accounts set type = 'ENTITY', mcc = '5411', holder_name = 'Shop' where vpa = 'shop@okbank'`)
	f.advance(projection.Accounts)
	for _, c := range []string{"psp-alpha", "psp-gamma"} {
		r := f.get(c, "/v1/vpas/Alice@okbank")
		expect(t, r, 200, "")
		if len(r.body) != 3 || r.body["vpa"] != "alice@okbank" || r.body["name"] != "Holder" || r.body["type"] != "PERSON" {
			t.Errorf("%s sees %v", c, r.body)
		}
		r = f.get(c, "/v1/vpas/shop@okbank")
		expect(t, r, 200, "")
		if len(r.body) != 4 || r.body["name"] != "Shop" || r.body["type"] != "ENTITY" || r.body["mcc"] != "5411" {
			t.Errorf("%s sees %v", c, r.body)
		}
	}
	expect(t, f.get("psp-alpha", "/v1/vpas/nobody@okbank"), 404, "VPA_NOT_FOUND")
	expect(t, f.get("psp-alpha", "/v1/vpas/not%20a%20vpa"), 400, "VALIDATION")
	expect(t, f.get("", "/v1/vpas/alice@okbank"), 401, "UNAUTHENTICATED")
}

// A payment found by its RRN is listed to the owners of its payer and payee only.
func TestPaymentsByRRNVisibleToOwnersOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 100*time.Millisecond)
	f.account("alice@okbank", "psp-alpha", 0)
	f.account("bob@okbank", "psp-beta", 0)
	id := f.payment("alice@okbank", "bob@okbank")
	f.exec(`update payments set rrn = '612312000042' where payment_id = $1`, id)
	f.advance(projection.Payments)
	for c, want := range map[string]int{"psp-alpha": 1, "psp-beta": 1, "psp-gamma": 0} {
		r := f.get(c, "/v1/payments?rrn=612312000042")
		expect(t, r, 200, "")
		items, _ := r.body["items"].([]any)
		if len(items) != want {
			t.Fatalf("%s sees %v", c, r.body)
		}
		if want == 1 {
			p, _ := items[0].(map[string]any)
			if p["payment_id"] != id.String() || p["rrn"] != "612312000042" {
				t.Fatalf("%s sees %v", c, p)
			}
		}
	}
	if r := f.get("psp-alpha", "/v1/payments?rrn=000000000000"); r.status != 200 || len(r.body["items"].([]any)) != 0 {
		t.Fatalf("unknown rrn: %v", r.body)
	}
	expect(t, f.get("psp-alpha", "/v1/payments?rrn=12ab"), 400, "VALIDATION")
	expect(t, f.get("psp-alpha", "/v1/payments"), 400, "VALIDATION")
}
