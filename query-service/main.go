// Command query-service answers every read from the projection tables, never from the event log.
package main

import (
	"context"
	"log/slog"

	"upi/db"
	"upi/query-service/internal/adapters/postgres"
	"upi/query-service/internal/app"
	"upi/query-service/internal/config"
	"upi/query-service/internal/httpapi"
	"upi/shared/platform/httpserver"
	"upi/shared/platform/observability"
	"upi/shared/platform/observability/pgtrace"
	"upi/shared/platform/service"
)

func main() {
	service.Main("query-service", config.Load, func(c config.Config) string { return c.LogLevel }, run)
}

func run(ctx context.Context, log *slog.Logger, cfg config.Config, _ []string) error {
	pool, err := db.Open(ctx, cfg.DatabaseURL, "query-service", cfg.DatabaseRole, 32, pgtrace.Pool)
	if err != nil {
		return err
	}
	defer pool.Close()

	reg := observability.Registry()
	watch := app.NewWatch()
	listener := postgres.NewListener(pool, watch, log, reg)
	lctx, stopListener := context.WithCancel(ctx)
	defer stopListener()
	go listener.Run(lctx)

	router := observability.NewRouter(observability.RouterConfig{
		Log: log, Registry: reg,
		Checks: []observability.Check{{Name: "postgres", Ping: pool.Ping}},
	})
	httpapi.Routes(router, app.New(postgres.NewReader(pool), watch, cfg.QueryWaitMax), log)
	go func() {
		if err := httpserver.ServeDebug(ctx, log, cfg.PprofAddr); err != nil {
			log.Error("pprof server", "err", err)
		}
	}()
	return httpserver.Serve(ctx, log, cfg.Addr, router, nil)
}
