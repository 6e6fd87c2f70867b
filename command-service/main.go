// Command command-service decides every write: it loads an aggregate by replaying its events, decides the
// command, and appends the new events to the event store. `command-service migrate` applies the schema.
package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"

	"upi/command-service/internal/adapters/postgres"
	"upi/command-service/internal/app"
	"upi/command-service/internal/config"
	"upi/command-service/internal/httpapi"
	"upi/db"
	"upi/shared/contract"
	"upi/shared/contract/money"
	"upi/shared/platform/eventstore"
	"upi/shared/platform/httpserver"
	"upi/shared/platform/keyring"
	"upi/shared/platform/observability"
	"upi/shared/platform/observability/pgtrace"
	"upi/shared/platform/service"
	"upi/shared/platform/servicetoken"
)

func main() {
	service.Main("command-service", config.Load, func(c config.Config) string { return c.LogLevel }, run)
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
	if err := cfg.ServeErr(); err != nil {
		return err
	}
	pool, err := db.Open(ctx, cfg.DatabaseURL, "command-service", cfg.DatabaseRole, 32, pgtrace.Pool)
	if err != nil {
		return err
	}
	defer pool.Close()

	store := app.NewStore(pool)
	go store.RunHints(ctx, log, 2*time.Millisecond)

	reg := observability.Registry()
	checks := []observability.Check{{Name: "postgres", Ping: pool.Ping}}
	// Only the gateway (client commands) and the consumers (workflow steps) may call, each its own routes.
	verifier := servicetoken.NewVerifier(servicetoken.VerifierConfig{
		Audience: servicetoken.CommandService, Peers: cfg.Peers, Registry: reg,
		Rules: []servicetoken.Rule{
			{Prefix: contract.PathCommandBatch, Callers: []string{servicetoken.Gateway}},
			{Prefix: "/internal/", Callers: []string{servicetoken.EventConsumers}},
			{Prefix: "/v1/", Callers: []string{servicetoken.Gateway}},
		},
	})
	router := observability.NewRouter(observability.RouterConfig{Log: log, Registry: reg, Checks: checks, Guard: verifier.Middleware})
	httpapi.Register(router, httpapi.Config{
		Service: app.New(store, cfg.Limits()).WithRefundWindow(cfg.RefundWindow).
			WithComplaintTerms(app.ComplaintTerms{Window: cfg.ComplaintWindow, TAT: cfg.ComplaintTAT}).WithCommitter(eventstore.CommitterOptions{
			Concurrency: cfg.CommitGroups, MaxQueue: cfg.CommitQueueMax, MaxWait: cfg.CommitWaitMax, Registry: reg}).
			WithMoneyTerms(cfg.MoneyTerms()).WithMandates(cfg.Mandates()),
		Limits:   contract.Limits{PaymentMaxPaise: money.Paise(cfg.PaymentMaxPaise), DepositMaxPaise: money.Paise(cfg.DepositMaxPaise)},
		Log:      log,
		Registry: reg,
	})
	// Webhook endpoints (docs/webhooks.md): a table of their own, beside the log.
	httpapi.RegisterWebhooks(router, httpapi.WebhooksConfig{
		Webhooks: app.NewWebhooks(postgres.NewWebhooks(pool), cfg.WebhookSecretKey, cfg.Development()),
		Log:      log, Registry: reg,
	})
	ops := observability.NewOpsRouter(observability.OpsConfig{Log: log, Registry: reg, Checks: checks,
		Operators: keyring.New(cfg.Operators)})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return httpserver.Serve(gctx, log, cfg.Addr, router, nil) })
	g.Go(func() error { return httpserver.Serve(gctx, log.With("server", "ops"), cfg.OpsAddr, ops.Router, nil) })
	return g.Wait()
}
