package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/event-consumers/internal/adapters/postgres/projections"
	"upi/event-consumers/internal/app"
	"upi/event-consumers/internal/app/ledger"
	"upi/event-consumers/internal/app/ledger/ledgertest"
	"upi/event-consumers/internal/httpapi"
	"upi/event-consumers/internal/runner"
	"upi/event-consumers/internal/workload"
	"upi/shared/contract/events"
	"upi/shared/platform/eventstore"
	"upi/testenv"
)

// server serves the admin routes on pool's database.
func server(t *testing.T, pool *pgxpool.Pool) *httptest.Server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := chi.NewRouter()
	rebuilds := app.NewRebuilds(runner.NewRebuilder(pool, log, []runner.Projection{projections.Accounts{}, projections.Payments{}}, 0, 1), log)
	httpapi.Routes(context.Background(), r, rebuilds, ledger.New(projections.NewLedgerStore(pool), ledger.Options{}))
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

type checkAnswer struct {
	status      int
	contentType string
	OK          *bool `json:"ok"`
	Checks      []struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"checks"`
	Position string `json:"position"`
	Code     string `json:"code"`
}

func getCheck(t *testing.T, url string) checkAnswer {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := checkAnswer{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type")}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("GET %s: %d, body: %v", url, resp.StatusCode, err)
	}
	return a
}

// waitBelowHorizon waits until the last event appended is below the log's horizon (another test's
// transaction in the cluster can hold it back for a moment; the check reads only below it).
func waitBelowHorizon(t *testing.T, pool *pgxpool.Pool) eventstore.Position {
	t.Helper()
	ctx := context.Background()
	last, err := workload.LastPosition(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		head, _, err := eventstore.Head(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		if head == last {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("the horizon stayed before %s", last.Token())
		}
	}
}

// GET /admin/ledger-check answers the report, 200 whether the books hold or not.
func TestLedgerCheckRouteAnswersTheReport(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	books := ledgertest.New(eventstore.New(pool))
	if err := books.Open(ctx, "alice@okbank", "psp"); err != nil {
		t.Fatal(err)
	}
	if _, err := books.Deposit(ctx, "alice@okbank", "top-up", 900); err != nil {
		t.Fatal(err)
	}
	last := waitBelowHorizon(t, pool)
	srv := server(t, pool)

	a := getCheck(t, srv.URL+"/admin/ledger-check")
	if a.status != 200 || a.OK == nil || !*a.OK || len(a.Checks) != 9 || a.Position != last.Token() {
		t.Fatalf("healthy books: %+v", a)
	}
	for _, c := range a.Checks {
		if !c.OK || c.Name == "" || c.Detail == "" {
			t.Errorf("check %+v", c)
		}
	}

	// A deposit with no settlement leg: money from nowhere.
	if _, err := eventstore.New(pool).Append(ctx, events.AggregateAccount, "alice@okbank", 2, []eventstore.NewEvent{{
		ID: uuid.New(), Type: events.FundsDeposited,
		Data: events.FundsDepositedV1{VPA: "alice@okbank", AmountPaise: 50, Reference: "legless", BalanceAfterPaise: 950},
	}}); err != nil {
		t.Fatal(err)
	}
	waitBelowHorizon(t, pool)
	a = getCheck(t, srv.URL+"/admin/ledger-check?stuck_after=1h")
	if a.status != 200 || a.OK == nil || *a.OK {
		t.Fatalf("books with a legless deposit: %+v", a)
	}
	for _, c := range a.Checks {
		if c.OK == (c.Name == "zero-sum") {
			t.Errorf("check %+v: only zero-sum should fail", c)
		}
	}

	a = getCheck(t, srv.URL+"/admin/ledger-check?stuck_after=soon")
	if a.status != 400 || a.Code != "VALIDATION" || a.contentType != "application/problem+json" {
		t.Errorf("a bad stuck_after: %+v", a)
	}
}

// A database out of reach is a 503 problem, not a report.
func TestLedgerCheckRouteIsUnavailableWithoutTheDatabase(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:1/upi?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	a := getCheck(t, server(t, pool).URL+"/admin/ledger-check")
	if a.status != 503 || a.Code != "DEPENDENCY_UNAVAILABLE" || a.contentType != "application/problem+json" {
		t.Errorf("without a database: %+v", a)
	}
}
