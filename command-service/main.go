// Command command-service decides every write: it loads an aggregate by replaying its events, decides the
// command, and appends the new events to the event store. `command-service migrate` applies the schema.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"upi/command-service/internal/app"
	"upi/command-service/internal/config"
	"upi/command-service/internal/httpapi"
	"upi/db"
	"upi/shared/contract"
	"upi/shared/contract/money"
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
	log := observability.NewLogger("command-service", cfg.LogLevel)
	if err := run(ctx, log, cfg, os.Args[1:]); err != nil {
		log.Error("exit", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, cfg config.Config, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "migrate":
			if err := db.Migrate(ctx, cfg.DatabaseURL); err != nil {
				return err
			}
			log.Info("schema up to date", "version", db.LatestVersion())
			return nil
		default:
			return errors.New("usage: command-service [migrate]")
		}
	}
	log.Info("starting", "config", cfg)
	stopTracing, err := observability.StartTracing(ctx, log, "command-service")
	if err != nil {
		return err
	}
	defer stopTracing()
	pool, err := db.Open(ctx, cfg.DatabaseURL, "command-service", cfg.DatabaseRole, 32, pgtrace.Pool)
	if err != nil {
		return err
	}
	defer pool.Close()

	store := app.NewStore(pool)
	go store.RunHints(ctx, log, 2*time.Millisecond)

	reg := observability.Registry()
	router := observability.NewRouter(observability.RouterConfig{
		Log: log, Registry: reg,
		Checks: []observability.Check{{Name: "postgres", Ping: pool.Ping}},
	})
	httpapi.Register(router, httpapi.Config{
		Service:  app.New(store, cfg.Limits()).WithRefundWindow(cfg.RefundWindow),
		Limits:   contract.Limits{PaymentMaxPaise: money.Paise(cfg.PaymentMaxPaise), DepositMaxPaise: money.Paise(cfg.DepositMaxPaise)},
		Log:      log,
		Registry: reg,
	})
	go func() {
		if err := httpserver.ServeDebug(ctx, log, cfg.PprofAddr); err != nil {
			log.Error("pprof server", "err", err)
		}
	}()
	return httpserver.Serve(ctx, log, cfg.Addr, router, nil)
}
