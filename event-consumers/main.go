// Command event-consumers follows the event log: it builds the projections the query service reads and
// runs the payment workflow. `event-consumers rebuild all|NAME` rebuilds projections and exits.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"upi/db"
	"upi/event-consumers/internal/config"
	"upi/shared/httpserver"
	"upi/shared/observability"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := observability.NewLogger("event-consumers", cfg.LogLevel)
	if err := run(ctx, log, cfg, os.Args[1:]); err != nil {
		log.Error("exit", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, cfg config.Config, args []string) error {
	log.Info("starting", "config", cfg)
	pool, err := db.Open(ctx, cfg.DatabaseURL, "event-consumers", 16)
	if err != nil {
		return err
	}
	defer pool.Close()

	reg := observability.Registry()
	health := &http.Client{Timeout: 2 * time.Second}
	router := observability.NewRouter(observability.RouterConfig{
		Log: log, Registry: reg,
		Checks: []observability.Check{
			{Name: "postgres", Ping: pool.Ping},
			observability.HTTPCheck("command-service", cfg.CommandServiceURL, health),
		},
	})
	return httpserver.Serve(ctx, log, cfg.Addr, router, nil)
}
