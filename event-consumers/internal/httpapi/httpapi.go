// Package httpapi is event-consumers' admin route: POST /admin/rebuild/{name} (health and metrics come
// with observability.NewRouter).
package httpapi

import (
	"context"
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"

	"upi/event-consumers/internal/app"
	"upi/shared/contract/problem"
	"upi/shared/platform/httpjson"
)

// Routes adds the admin routes to router. Rebuilds it starts run under ctx, the process's: they outlive
// the request that started them, not the process.
func Routes(ctx context.Context, router chi.Router, rebuilds *app.Rebuilds) {
	router.Post("/admin/rebuild/{name}", rebuild(ctx, rebuilds))
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
