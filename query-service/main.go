// Command query-service answers every read from the projection tables, never from the event log.
package main

import (
	"context"
	"log/slog"

	"golang.org/x/sync/errgroup"

	"upi/db"
	"upi/query-service/internal/adapters/postgres"
	"upi/query-service/internal/app"
	"upi/query-service/internal/app/complaints"
	"upi/query-service/internal/app/settlement"
	"upi/query-service/internal/config"
	"upi/query-service/internal/httpapi"
	"upi/shared/platform/httpserver"
	"upi/shared/platform/keyring"
	"upi/shared/platform/observability"
	"upi/shared/platform/observability/pgtrace"
	"upi/shared/platform/service"
	"upi/shared/platform/servicetoken"
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

	checks := []observability.Check{{Name: "postgres", Ping: pool.Ping}}
	// Only the gateway may call: every read is a client's, or an operator's under /v1/ops/.
	verifier := servicetoken.NewVerifier(servicetoken.VerifierConfig{
		Audience: servicetoken.QueryService, Peers: cfg.Peers, Registry: reg,
		Rules: []servicetoken.Rule{{Prefix: "/v1/", Callers: []string{servicetoken.Gateway}},
			{Prefix: "/ops/", Callers: []string{servicetoken.Gateway}}},
	})
	router := observability.NewRouter(observability.RouterConfig{Log: log, Registry: reg, Checks: checks, Guard: verifier.Middleware})
	httpapi.Routes(router, app.New(postgres.NewReader(pool), watch, cfg.QueryWaitMax), log,
		httpapi.SettlementRoutes(settlement.New(postgres.NewSettlement(pool)), log),
		httpapi.ComplaintRoutes(complaints.New(postgres.NewComplaintReader(pool)), log))
	// Webhook endpoints and deliveries (docs/webhooks.md).
	httpapi.WebhookRoutes(router, app.NewWebhooks(postgres.NewWebhooks(pool)), log)
	ops := observability.NewOpsRouter(observability.OpsConfig{Log: log, Registry: reg, Checks: checks,
		Operators: keyring.New(cfg.Operators)})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return httpserver.Serve(gctx, log, cfg.Addr, router, nil) })
	g.Go(func() error { return httpserver.Serve(gctx, log.With("server", "ops"), cfg.OpsAddr, ops.Router, nil) })
	return g.Wait()
}
