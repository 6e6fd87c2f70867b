// Command query-service answers every read from the projection tables, never from the event log.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"upi/db"
	"upi/query-service/internal/adapters/postgres"
	"upi/query-service/internal/app"
	"upi/query-service/internal/config"
	"upi/query-service/internal/httpapi"
	"upi/shared/platform/httpserver"
	"upi/shared/platform/observability"
	"upi/shared/platform/observability/pgtrace"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := observability.NewLogger("query-service", cfg.LogLevel)
	if err := run(ctx, log, cfg); err != nil {
		log.Error("exit", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, cfg config.Config) error {
	log.Info("starting", "config", cfg)
	stopTracing, err := observability.StartTracing(ctx, log, "query-service")
	if err != nil {
		return err
	}
	defer stopTracing()
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
