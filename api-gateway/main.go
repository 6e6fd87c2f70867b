// Command api-gateway is the only public entry point: it authenticates, rate-limits, validates and makes
// every POST idempotent, then forwards writes to command-service and reads to query-service.
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

	"github.com/redis/go-redis/v9"

	"upi/api-gateway/internal/config"
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
	log := observability.NewLogger("api-gateway", cfg.LogLevel)
	if err := run(ctx, log, cfg); err != nil {
		log.Error("exit", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, cfg config.Config) error {
	log.Info("starting", "config", cfg)
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("parse REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()

	reg := observability.Registry()
	health := &http.Client{Timeout: 2 * time.Second}
	router := observability.NewRouter(observability.RouterConfig{
		Log: log, Registry: reg,
		Checks: []observability.Check{
			{Name: "redis", Ping: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
			observability.HTTPCheck("command-service", cfg.CommandServiceURL, health),
			observability.HTTPCheck("query-service", cfg.QueryServiceURL, health),
		},
	})
	return httpserver.Serve(ctx, log, cfg.Addr, router, nil)
}
