// Command event-consumers follows the event log: it builds the projections the query service reads, runs
// the payment workflow, expires collect requests and relays the log to RabbitMQ (the event feed).
// `event-consumers rebuild all|NAME` rebuilds projections and exits.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"upi/db"
	"upi/event-consumers/internal/adapters/commandclient"
	"upi/event-consumers/internal/adapters/postgres"
	"upi/event-consumers/internal/adapters/postgres/projections"
	"upi/event-consumers/internal/adapters/rabbitmq/relay"
	"upi/event-consumers/internal/app"
	"upi/event-consumers/internal/app/expiry"
	"upi/event-consumers/internal/app/workflow"
	"upi/event-consumers/internal/config"
	"upi/event-consumers/internal/httpapi"
	"upi/event-consumers/internal/runner"
	"upi/shared/platform/httpserver"
	"upi/shared/platform/observability"
	"upi/shared/platform/observability/pgtrace"
	"upi/shared/platform/service"
)

func main() {
	service.Main("event-consumers", config.Load, func(c config.Config) string { return c.LogLevel }, run)
}

// asyncCommits makes this process's commits return without waiting for their WAL to reach disk
// (synchronous_commit=off). Everything it writes is derived from the log and written again from it if
// lost: projection rows with the checkpoint that covers them (one transaction), the workflow's and the
// relay's checkpoints, parked steps. A crash of PostgreSQL loses at most the last few hundred
// milliseconds of these, never out of order (the WAL is one sequence), and the consumers redo that work
// from the log: every step is idempotent, every feed message carries its id. The log is appended only by
// the command service, whose commits stay synchronous, so an event a consumer has read is already on
// disk. On 2 cores this cut PostgreSQL's CPU per payment by 6-11% at saturation (docs/benchmarks.md).
func asyncCommits(c *pgxpool.Config) { c.ConnConfig.RuntimeParams["synchronous_commit"] = "off" }

func run(ctx context.Context, log *slog.Logger, cfg config.Config, args []string) error {
	pool, err := db.Open(ctx, cfg.DatabaseURL, "event-consumers", cfg.DatabaseRole, 16, pgtrace.Pool, asyncCommits, deadPeerTimeouts)
	if err != nil {
		return err
	}
	defer pool.Close()

	// Every projection, in the order `rebuild all` rebuilds them.
	projs := []runner.Projection{projections.Accounts{}, projections.Payments{}}
	rebuilds := app.NewRebuilds(runner.NewRebuilder(pool, log, projs, cfg.RebuildBatch), log)
	if len(args) > 0 {
		if len(args) != 2 || args[0] != "rebuild" || !rebuilds.Valid(args[1]) {
			return fmt.Errorf("usage: event-consumers [rebuild all|%s]", rebuilds.Names())
		}
		return rebuilds.Run(ctx, args[1])
	}

	reg := observability.Registry()

	// The payment workflow moves the money by calling the command service's step route.
	steps := &commandclient.Client{
		BaseURL: cfg.CommandServiceURL,
		HTTP:    &http.Client{Transport: observability.HTTPTransport(&http.Transport{MaxIdleConnsPerHost: 64})},
		Timeout: 5 * time.Second,
	}
	flowCfg := workflow.DefaultConfig
	flow := workflow.New(steps, postgres.NewParkedSteps(pool, log), log, reg, flowCfg)

	// The consumers this process runs; each one is a checkpoint, a lock and a loop of its own.
	consumers := make([]runner.Consumer, 0, len(projs)+2)
	for _, p := range projs {
		consumers = append(consumers, p)
	}
	consumers = append(consumers, flow)

	health := &http.Client{Timeout: 2 * time.Second}
	checks := []observability.Check{
		{Name: "postgres", Ping: pool.Ping},
		observability.HTTPCheck("command-service", cfg.CommandServiceURL, health),
	}

	// The event feed: one more consumer, publishing the log to RabbitMQ. Its broker is reported by
	// /readyz but does not make the process unready: the projections and the workflow do not need it.
	var feed *relay.Relay
	if cfg.RelayEnabled {
		feed = relay.New(relay.Config{URL: cfg.RabbitMQURL, Exchange: cfg.RelayExchange, InFlight: cfg.RelayInFlight},
			log, relay.NewMetrics(reg))
		defer feed.Close()
		consumers = append(consumers, feed)
		checks = append(checks, observability.Check{Name: "rabbitmq", Ping: feed.Ping, Optional: true})
	} else {
		log.Info("event feed: relay disabled (RELAY_ENABLED=false)")
	}

	router := observability.NewRouter(observability.RouterConfig{Log: log, Registry: reg, Checks: checks})
	httpapi.Routes(ctx, router, rebuilds)

	// Collect requests still pending at their expiry become EXPIRED through the command service.
	expiries := &commandclient.Client{
		BaseURL: cfg.CommandServiceURL,
		HTTP:    &http.Client{Timeout: 10 * time.Second, Transport: observability.HTTPTransport(nil)},
		Timeout: 10 * time.Second,
	}
	watcher := expiry.New(postgres.NewCollectRequests(pool), expiries, log, time.Second)

	r := runner.New(pool, log, reg, runner.Options{BatchSize: cfg.BatchSize})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.Run(gctx, consumers...) })
	g.Go(func() error { runner.Every(gctx, flowCfg.RetryParkedEvery, flow.RetryParked); return nil })
	g.Go(func() error { watcher.Run(gctx); return nil })
	if feed != nil {
		g.Go(func() error { feed.Run(gctx); return nil })
	}
	g.Go(func() error { return httpserver.Serve(gctx, log, cfg.Addr, router, nil) })
	g.Go(func() error { return httpserver.ServeDebug(gctx, log, cfg.PprofAddr) })
	return g.Wait()
}
