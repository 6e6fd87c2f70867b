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
	"golang.org/x/sync/errgroup"

	"upi/api-gateway/internal/adapters/downstream"
	redisadapter "upi/api-gateway/internal/adapters/redis"
	"upi/api-gateway/internal/app"
	"upi/api-gateway/internal/auth"
	"upi/api-gateway/internal/config"
	"upi/api-gateway/internal/httpapi"
	"upi/shared/contract"
	"upi/shared/contract/money"
	"upi/shared/platform/httpserver"
	"upi/shared/platform/keyring"
	"upi/shared/platform/observability"
	"upi/shared/platform/secrets"
	"upi/shared/platform/service"
	"upi/shared/platform/servicetoken"
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
	// Every call to a service carries the gateway's token, made for that service and that request.
	signer := servicetoken.NewSigner(servicetoken.Gateway, cfg.ServiceKey)
	services := downstream.NewClient(reg, func(rt http.RoundTripper) http.RoundTripper { return signer.Transport("", rt) })
	commandService := services.Endpoint(downstream.Service{Name: "command-service", BaseURL: cfg.CommandServiceURL}, http.MethodPost)
	var commands app.Service = commandService
	if cfg.CommandBatchConcurrency > 0 {
		// Commands that arrive while the command service is busy go together (docs/internal-api.md);
		// off by default (docs/benchmarks.md).
		commands = services.NewBatcher(commandService, cfg.CommandBatchConcurrency, reg)
	}
	gateway := app.New(app.Config{
		Log:          log,
		Registry:     reg,
		Limiter:      limiter,
		Idempotency:  redisadapter.NewStore(rdb, limiter, idempotencyLockTTL, cfg.IdempotencyTTL),
		Commands:     commands,
		Queries:      services.Endpoint(downstream.Service{Name: "query-service", BaseURL: cfg.QueryServiceURL}, http.MethodGet),
		Reconciler:   services.Endpoint(downstream.Service{Name: "query-service", BaseURL: cfg.QueryServiceURL}, http.MethodPost),
		Ledger:       services.Endpoint(downstream.Service{Name: "event-consumers", BaseURL: cfg.EventConsumersURL}, http.MethodGet),
		QueryWaitMax: cfg.QueryWaitMax,
		// Commands beyond this many under way are shed at once (503 OVERLOADED).
		MaxCommandsInFlight: cfg.MaxCommandsInFlight,
	})
	checks := []observability.Check{
		{Name: "redis", Ping: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
		observability.HTTPCheck("command-service", cfg.CommandServiceURL, health),
		observability.HTTPCheck("query-service", cfg.QueryServiceURL, health),
	}
	// The keys can be rotated without a restart: from a file, they are re-read while the gateway runs.
	clients, operators := keyring.New(cfg.Clients), keyring.New(cfg.Operators)
	vet := func(variable string) func([]keyring.Entry) error {
		return func(entries []keyring.Entry) error {
			if cfg.Development() {
				return nil
			}
			var check secrets.Check
			keyring.Vet(&check, variable, entries)
			return check.Err("api-gateway")
		}
	}
	if cfg.APIKeysFile != "" {
		go keyring.Watch(ctx, log, clients, "API_KEYS", cfg.APIKeysFile, keyReload, vet("API_KEYS"))
	}
	if cfg.OperatorKeysFile != "" {
		go keyring.Watch(ctx, log, operators, "OPERATOR_KEYS", cfg.OperatorKeysFile, keyReload, vet("OPERATOR_KEYS"))
	}
	router := httpapi.NewRouter(httpapi.Config{
		Log:      log,
		Registry: reg,
		Checks:   checks,
		Auth:     auth.NewKeyrings(clients, operators),
		App:      gateway,
		Limits:   contract.Limits{PaymentMaxPaise: money.Paise(cfg.PaymentMaxPaise), DepositMaxPaise: money.Paise(cfg.DepositMaxPaise)},
	})
	ops := observability.NewOpsRouter(observability.OpsConfig{Log: log, Registry: reg, Checks: checks, Operators: operators})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return httpserver.Serve(gctx, log, cfg.Addr, router, nil) })
	g.Go(func() error { return httpserver.Serve(gctx, log.With("server", "ops"), cfg.OpsAddr, ops.Router, nil) })
	return g.Wait()
}

// keyReload is how often the key files are checked for a change.
const keyReload = 5 * time.Second

// idempotencyLockTTL is how long an in-flight claim holds its key: well beyond the 5s deadline of a
// command, so a live request never loses it, and short enough that a crashed gateway's claim frees itself.
const idempotencyLockTTL = 30 * time.Second

// redisLogger sends go-redis's own messages (one per failed dial, for example) to the service's log at
// debug level: the gateway already logs, once per request, what a Redis failure meant for it.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
