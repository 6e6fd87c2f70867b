// Package httpapi is event-consumers' admin routes: POST /admin/rebuild/{name} and GET /admin/ledger-check
// (health and metrics come with observability.NewRouter).
package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"upi/event-consumers/internal/app"
	"upi/event-consumers/internal/app/ledger"
	"upi/shared/contract/problem"
	"upi/shared/platform/httpjson"
)

// Routes adds the admin routes to router. Rebuilds it starts run under ctx, the process's: they outlive
// the request that started them, not the process.
func Routes(ctx context.Context, router chi.Router, rebuilds *app.Rebuilds, checker *ledger.Checker) {
	router.Post("/admin/rebuild/{name}", rebuild(ctx, rebuilds))
	router.Get("/admin/ledger-check", ledgerCheck(checker))
}

// ledgerCheck runs the ledger check (`event-consumers verify`) and answers its report, 200 whether the
// books hold or not ({"ok", "checks": [{"name", "ok", "detail"}], "position"}); 503 when the database
// could not be read. ?stuck_after= (a duration such as 15m) overrides the in-flight threshold. A check
// replays the whole log, so one runs at a time: a second request waits for the first to end.
func ledgerCheck(checker *ledger.Checker) http.HandlerFunc {
	running := make(chan struct{}, 1)
	return func(w http.ResponseWriter, r *http.Request) {
		c := checker
		if s := r.URL.Query().Get("stuck_after"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				problem.Write(w, problem.Validation(problem.FieldError{Field: "stuck_after",
					Message: "must be a positive duration, such as 15m"}))
				return
			}
			c = checker.WithStuckAfter(d)
		}
		select {
		case running <- struct{}{}:
			defer func() { <-running }()
		case <-r.Context().Done():
			return
		}
		report, err := c.Run(r.Context())
		if err != nil {
			problem.Write(w, problem.Unavailable("the ledger check could not read the database; retry"))
			return
		}
		httpjson.Write(w, http.StatusOK, report)
	}
}

// rebuild starts a rebuild in the background (a full replay outlives any HTTP timeout) and answers 202;
// the outcome is logged.
func rebuild(ctx context.Context, rebuilds *app.Rebuilds) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := chi.URLParam(r, "name")
		if !rebuilds.Valid(name) {
			problem.Write(w, problem.New(http.StatusNotFound, problem.CodeNotFound,
				fmt.Sprintf("no projection %q (all|%s)", name, rebuilds.Names())))
			return
		}
		rebuilds.Start(ctx, name)
		httpjson.Write(w, http.StatusAccepted, map[string]string{"projection": name, "status": "started"})
	}
}
