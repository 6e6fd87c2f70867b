package httpapi_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"upi/command-service/internal/app"
	"upi/command-service/internal/domain"
	"upi/command-service/internal/httpapi"
	"upi/shared/contract/problem"
	"upi/shared/platform/eventstore"
	"upi/shared/platform/observability"
	"upi/testenv"
)

// More client commands at once than the committer lets wait: the ones it sheds are answered 503
// OVERLOADED, problem+json with Retry-After, and wrote nothing; every other is answered as usual and
// wrote its event; and a shed request retried with its key runs.
func TestOverloadShedsWith503Overloaded(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	store := app.NewStore(pool)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	router := observability.NewRouter(observability.RouterConfig{Log: log, Registry: reg})
	svc := app.New(store, domain.Limits{}).WithCommitter(eventstore.CommitterOptions{Concurrency: 1, MaxOps: 4, MaxQueue: 4})
	httpapi.Register(router, httpapi.Config{Service: svc, Limits: limits, Log: log, Registry: reg})
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	e := &env{t: t, srv: srv, pool: pool, store: store}

	const n = 200
	answers := make([]response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			answers[i] = e.do("psp-a", fmt.Sprintf("open-%d", i), "/v1/accounts",
				fmt.Sprintf(`{"vpa":"u%d@okbank","holder_name":"Holder"}`, i))
		})
	}
	wg.Wait()

	var shed []int
	for i, r := range answers {
		vpa := fmt.Sprintf("u%d@okbank", i)
		switch r.status {
		case http.StatusCreated:
			if got := len(e.stream(vpa)); got != 1 {
				t.Errorf("%s answered 201 but its stream holds %d events", vpa, got)
			}
		case http.StatusServiceUnavailable:
			e.refused(r, http.StatusServiceUnavailable, problem.CodeOverloaded)
			if ra := r.header.Get("Retry-After"); ra != "1" {
				t.Errorf("503 OVERLOADED with Retry-After %q, want 1", ra)
			}
			if got := len(e.stream(vpa)); got != 0 {
				t.Errorf("%s was shed but its stream holds %d events", vpa, got)
			}
			shed = append(shed, i)
		default:
			t.Errorf("open %s: %d %s, want 201 or 503 OVERLOADED", vpa, r.status, r.body)
		}
	}
	if len(shed) == 0 {
		t.Fatalf("%d concurrent commands with a queue of 4: none was shed", n)
	}
	t.Logf("%d of %d shed", len(shed), n)

	// Retrying with the same key is safe and, once the load is gone, runs the command.
	time.Sleep(10 * time.Millisecond)
	for _, i := range shed {
		e.must(http.StatusCreated, "psp-a", fmt.Sprintf("open-%d", i), "/v1/accounts",
			fmt.Sprintf(`{"vpa":"u%d@okbank","holder_name":"Holder"}`, i))
	}
	if got := e.eventCount(); got != n {
		t.Errorf("the log holds %d events after the retries, want %d (one opening each)", got, n)
	}
}
