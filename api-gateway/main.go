// Command api-gateway is the only public entry point: it authenticates, rate-limits, validates and makes
// every POST idempotent, then forwards writes to command-service and reads to query-service.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"upi/api-gateway/internal/adapters/downstream"
	redisadapter "upi/api-gateway/internal/adapters/redis"
	"upi/api-gateway/internal/app"
	"upi/api-gateway/internal/auth"
	"upi/api-gateway/internal/config"
	"upi/api-gateway/internal/httpapi"
	"upi/shared/contract"
	"upi/shared/contract/money"
	"upi/shared/platform/httpserver"
	"upi/shared/platform/observability"
	"upi/shared/platform/service"
)

func main() {
	service.Main("api-gateway", config.Load, func(c config.Config) string { return c.LogLevel }, run)
}

func run(ctx context.Context, log *slog.Logger, cfg config.Config, _ []string) error {
	opts, err := config.RedisOptions(cfg.RedisURL)
	if err != nil {
		return err
	}
	redis.SetLogger(redisLogger{log})
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if err := redisadapter.Trace(rdb); err != nil {
		return err
	}

	reg := observability.Registry()
	health := &http.Client{Timeout: 2 * time.Second}
	limiter := redisadapter.NewLimiter(rdb, cfg.RateLimitRPS, cfg.RateLimitBurst, log)
	services := downstream.NewClient(reg)
	gateway := app.New(app.Config{
		Log:          log,
		Registry:     reg,
		Limiter:      limiter,
		Idempotency:  redisadapter.NewStore(rdb, limiter, idempotencyLockTTL, cfg.IdempotencyTTL),
		Commands:     services.Endpoint(downstream.Service{Name: "command-service", BaseURL: cfg.CommandServiceURL}, http.MethodPost),
		Queries:      services.Endpoint(downstream.Service{Name: "query-service", BaseURL: cfg.QueryServiceURL}, http.MethodGet),
		QueryWaitMax: cfg.QueryWaitMax,
		// Commands beyond this many under way are shed at once (503 OVERLOADED).
		MaxCommandsInFlight: cfg.MaxCommandsInFlight,
	})
	router := httpapi.NewRouter(httpapi.Config{
		Log:      log,
		Registry: reg,
		Checks: []observability.Check{
			{Name: "redis", Ping: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
			observability.HTTPCheck("command-service", cfg.CommandServiceURL, health),
			observability.HTTPCheck("query-service", cfg.QueryServiceURL, health),
		},
		Auth:   auth.New(cfg.Clients),
		App:    gateway,
		Limits: contract.Limits{PaymentMaxPaise: money.Paise(cfg.PaymentMaxPaise), DepositMaxPaise: money.Paise(cfg.DepositMaxPaise)},
	})
	go func() {
		if err := httpserver.ServeDebug(ctx, log, cfg.PprofAddr); err != nil {
			log.Error("pprof server", "err", err)
		}
	}()
	return httpserver.Serve(ctx, log, cfg.Addr, router, nil)
}

// idempotencyLockTTL is how long an in-flight claim holds its key: well beyond the 5s deadline of a
// command, so a live request never loses it, and short enough that a crashed gateway's claim frees itself.
const idempotencyLockTTL = 30 * time.Second

// redisLogger sends go-redis's own messages (one per failed dial, for example) to the service's log at
// debug level: the gateway already logs, once per request, what a Redis failure meant for it.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
