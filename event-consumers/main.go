// Command event-consumers follows the event log: it builds the projections the query service reads, runs
// the payment workflow, expires collect requests and relays the log to RabbitMQ (the event feed).
// `event-consumers rebuild all|NAME` rebuilds projections and exits; `event-consumers verify` checks the
// ledger from the log (docs/failure-handling.md, "Checking the ledger") and exits 0 when it holds;
// `event-consumers parked|payment|quarantine|checkpoint ...` are the operators' commands (internal/operator).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"upi/db"
	"upi/event-consumers/internal/adapters/commandclient"
	"upi/event-consumers/internal/adapters/postgres"
	"upi/event-consumers/internal/adapters/postgres/projections"
	"upi/event-consumers/internal/adapters/rabbitmq/relay"
	"upi/event-consumers/internal/adapters/webhookhttp"
	"upi/event-consumers/internal/app"
	"upi/event-consumers/internal/app/complaints"
	"upi/event-consumers/internal/app/expiry"
	"upi/event-consumers/internal/app/ledger"
	"upi/event-consumers/internal/app/mandates"
	"upi/event-consumers/internal/app/webhooks"
	"upi/event-consumers/internal/app/workflow"
	"upi/event-consumers/internal/config"
	"upi/event-consumers/internal/httpapi"
	"upi/event-consumers/internal/operator"
	"upi/event-consumers/internal/runner"
	"upi/shared/contract/projection"
	"upi/shared/platform/eventstore"
	"upi/shared/platform/httpserver"
	"upi/shared/platform/keyring"
	"upi/shared/platform/observability"
	"upi/shared/platform/observability/pgtrace"
	"upi/shared/platform/service"
	"upi/shared/platform/servicetoken"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "verify" {
		os.Exit(verify(os.Args[2:], os.Stdout, os.Stderr))
	}
	service.Main("event-consumers", config.Load, func(c config.Config) string { return c.LogLevel }, run)
}

// Exit codes of `verify`.
const (
	verifyHolds  = 0 // every check holds
	verifyFails  = 1 // at least one check fails
	verifyCannot = 2 // the check could not run: bad usage or configuration, or the database out of reach
)

// verify is `event-consumers verify [-stuck-after 15m]`: it replays the log of DATABASE_URL (as
// DATABASE_ROLE, like the service) and prints one line per check to out, "ok   NAME: DETAIL" or
// "FAIL NAME: DETAIL". It runs beside a live service: nothing it does writes or holds back the log.
func verify(args []string, out, errs io.Writer) int {
	flags := flag.NewFlagSet("verify", flag.ContinueOnError)
	flags.SetOutput(errs)
	stuckAfter := flags.Duration("stuck-after", ledger.DefaultStuckAfter,
		"fail when a payment or refund has been in flight for longer than this")
	if err := flags.Parse(args); err != nil || flags.NArg() > 0 || *stuckAfter <= 0 {
		fmt.Fprintln(errs, "usage: event-consumers verify [-stuck-after DURATION]")
		return verifyCannot
	}
	cfg, err := config.LoadForVerify()
	if err != nil {
		fmt.Fprintln(errs, err)
		return verifyCannot
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pool, err := db.Open(ctx, cfg.DatabaseURL, "event-consumers-verify", cfg.DatabaseRole, 2)
	if err != nil {
		fmt.Fprintf(errs, "verify: %v\n", err)
		return verifyCannot
	}
	defer pool.Close()
	report, err := ledger.New(projections.NewLedgerStore(pool), ledger.Options{StuckAfter: *stuckAfter}).Run(ctx)
	if err != nil {
		fmt.Fprintf(errs, "verify: %v\n", err)
		return verifyCannot
	}
	for _, line := range report.Lines() {
		fmt.Fprintln(out, line)
	}
	if !report.OK {
		return verifyFails
	}
	return verifyHolds
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

// patience is how long the consumers no client waits on within milliseconds wait after a hint before
// they read (runner.Options.Patience): a merchant's reports, settlement, complaints and webhook deliveries
// (whose sender claims at most every 100 ms anyway). Below saturation a payment's four events then reach
// each of them in one batch, and while they wait, the workflow and the projections a client's GET waits on
// have the cores to themselves.
var patience = map[string]time.Duration{
	projection.Merchant: 50 * time.Millisecond, projection.Settlement: 50 * time.Millisecond,
	projection.Complaints: 50 * time.Millisecond, webhooks.Name: 50 * time.Millisecond,
}

func run(ctx context.Context, log *slog.Logger, cfg config.Config, args []string) error {
	if len(args) == 0 {
		if err := cfg.ServeErr(); err != nil {
			return err
		}
	}
	pool, err := db.Open(ctx, cfg.DatabaseURL, "event-consumers", cfg.DatabaseRole, 16, pgtrace.Pool, asyncCommits, deadPeerTimeouts)
	if err != nil {
		return err
	}
	defer pool.Close()
	if cfg.RelayOnly && len(args) == 0 {
		return runRelayOnly(ctx, log, cfg, pool)
	}

	// Every projection, in the order `rebuild all` rebuilds them.
	projs := []runner.Projection{projections.Accounts{}, projections.Payments{}, projections.Merchant{},
		projections.Settlement{Schedule: cfg.Settlement, Grace: cfg.SettlementCloseGrace}, projections.Complaints{}}
	rebuilds := app.NewRebuilds(runner.NewRebuilder(pool, log, projs, cfg.RebuildBatch, cfg.Partitions), log)

	reg := observability.Registry()

	// The payment workflow moves the money by calling the command service's step route.
	// Every call to the command service carries the consumers' token, made for it and for that request.
	signer := servicetoken.NewSigner(servicetoken.EventConsumers, cfg.ServiceKey)
	steps := &commandclient.Client{
		BaseURL: cfg.CommandServiceURL,
		HTTP: &http.Client{Transport: observability.HTTPTransport(
			signer.Transport(servicetoken.CommandService, &http.Transport{MaxIdleConnsPerHost: 64}))},
		Timeout: 5 * time.Second,
	}
	flowCfg := workflow.DefaultConfig
	parked := postgres.NewParkedSteps(pool, log)
	flow := workflow.New(steps, parked, log, reg, flowCfg)

	if len(args) > 0 {
		// The command line: a rebuild, or an operator's command (internal/operator); each exits when done.
		if args[0] == "rebuild" {
			if len(args) != 2 || !rebuilds.Valid(args[1]) {
				return fmt.Errorf("usage: event-consumers rebuild all|%s", rebuilds.Names())
			}
			return rebuilds.Run(ctx, args[1])
		}
		names := []string{workflow.Name, relay.Name, webhooks.Name}
		for _, p := range projs {
			names = append(names, p.Name())
		}
		op := &operator.Operator{Pool: pool, Parked: parked, Workflow: flow, Projections: projs, Consumers: names,
			Out: os.Stdout}
		if err := op.Run(ctx, args); err != nil {
			if errors.Is(err, operator.ErrUsage) {
				fmt.Fprint(os.Stderr, operator.Usage)
			}
			return err
		}
		return nil
	}

	// The consumers this process runs; each one is a checkpoint, a lock and a loop of its own.
	consumers := make([]runner.Consumer, 0, len(projs)+2)
	for _, p := range projs {
		consumers = append(consumers, p)
	}
	consumers = append(consumers, flow)

	// Webhooks (docs/webhooks.md): the log's state changes queued as deliveries to the clients' endpoints,
	// and the sender, a periodic job (one replica at a time) with a worker per endpoint.
	var sender *webhooks.Sender
	if cfg.WebhooksEnabled {
		queue := postgres.NewWebhooks(pool)
		sender = webhooks.NewSender(webhooks.SenderConfig{
			SecretKey: cfg.WebhookSecretKey, RetryBase: cfg.WebhookRetryBase, RetryMax: cfg.WebhookRetryMax,
			MaxAge: cfg.WebhookMaxAge, DisableAfter: cfg.WebhookDisableAfter, Workers: cfg.WebhookWorkers,
			Concurrency: cfg.WebhookConcurrency,
			ClaimBatch:  webhooks.DefaultSenderConfig.ClaimBatch, Poll: cfg.WebhookPoll,
		}, queue, webhookhttp.New(webhookhttp.Config{Timeout: cfg.WebhookTimeout, AllowHTTP: cfg.Development(),
			AllowPrivate: cfg.WebhookAllowPrivate}), log, reg)
		consumers = append(consumers, webhooks.NewDeliveries(queue, eventstore.New(pool), sender.Wake))
	}

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

	// Its own port serves only /healthz and /readyz to anyone, and the admin routes to the gateway acting
	// for an operator; the operations listener serves them to an operator's key.
	verifier := servicetoken.NewVerifier(servicetoken.VerifierConfig{
		Audience: servicetoken.EventConsumers, Peers: cfg.Peers, Registry: reg,
		Rules: []servicetoken.Rule{{Prefix: "/admin/", Callers: []string{servicetoken.Gateway}}},
	})
	books := ledger.New(projections.NewLedgerStore(pool), ledger.Options{})
	router := observability.NewRouter(observability.RouterConfig{Log: log, Registry: reg, Checks: checks, Guard: verifier.Middleware})
	httpapi.Routes(ctx, router.With(servicetoken.RequireOperator), rebuilds, books)
	ops := observability.NewOpsRouter(observability.OpsConfig{Log: log, Registry: reg, Checks: checks,
		Operators: keyring.New(cfg.Operators)})
	httpapi.Routes(ctx, ops.Admin, rebuilds, books)

	// Collect requests still pending at their expiry become EXPIRED through the command service.
	expiries := &commandclient.Client{
		BaseURL: cfg.CommandServiceURL,
		HTTP: &http.Client{Timeout: 10 * time.Second,
			Transport: observability.HTTPTransport(signer.Transport(servicetoken.CommandService, nil))},
		Timeout: 10 * time.Second,
	}
	watcher := expiry.New(postgres.NewCollectRequests(pool), expiries, log, time.Second)

	// Mandates' timers (expiry, execution, retries, completion) through the command service.
	mandateTimer := mandates.New(postgres.NewMandates(pool), expiries, log, cfg.MandateTimerEvery)

	r := runner.New(pool, log, reg, runner.Options{BatchSize: cfg.BatchSize, Partitions: cfg.Partitions, Patience: patience})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.Run(gctx, consumers...) })
	// Periodic jobs run on one replica at a time, each under a lock of its own.
	g.Go(func() error { r.Periodic(gctx, "retry-parked", flowCfg.RetryParkedEvery, flow.RetryParked); return nil })
	g.Go(func() error { r.Periodic(gctx, "collect-expiry", watcher.Every(), watcher.Round); return nil })
	g.Go(func() error { r.Periodic(gctx, "mandate-timer", mandateTimer.Every(), mandateTimer.Round); return nil })
	// Settlement cycles whose close time passed while the log was idle are closed by this job.
	closer := postgres.NewSettlementCloser(pool, log)
	g.Go(func() error { r.Periodic(gctx, "settlement-closer", time.Second, closer.Round); return nil })
	// Complaints the log answers are resolved once their payment has ended.
	resolver := complaints.New(postgres.NewComplaints(pool), expiries, log, time.Second)
	g.Go(func() error { r.Periodic(gctx, "complaint-resolver", resolver.Every(), resolver.Round); return nil })
	if feed != nil {
		g.Go(func() error { feed.Run(gctx); return nil })
	}
	if sender != nil {
		g.Go(func() error { r.Periodic(gctx, "webhook-sender", sender.Every(), sender.Round); return nil })
		g.Go(func() error { sender.Run(gctx); return nil })
	}
	g.Go(func() error { return httpserver.Serve(gctx, log, cfg.Addr, router, nil) })
	g.Go(func() error { return httpserver.Serve(gctx, log.With("server", "ops"), cfg.OpsAddr, ops.Router, nil) })
	return g.Wait()
}

// runRelayOnly is the process RELAY_ONLY=true starts: the event feed's relay alone, the one consumer
// that needs the broker, so that only it joins the feed's network. It takes the relay's checkpoint lock
// like any replica would; the process running everything else leaves the relay out (RELAY_ENABLED=false).
func runRelayOnly(ctx context.Context, log *slog.Logger, cfg config.Config, pool *pgxpool.Pool) error {
	reg := observability.Registry()
	feed := relay.New(relay.Config{URL: cfg.RabbitMQURL, Exchange: cfg.RelayExchange, InFlight: cfg.RelayInFlight},
		log, relay.NewMetrics(reg))
	defer feed.Close()
	checks := []observability.Check{
		{Name: "postgres", Ping: pool.Ping},
		{Name: "rabbitmq", Ping: feed.Ping, Optional: true},
	}
	verifier := servicetoken.NewVerifier(servicetoken.VerifierConfig{
		Audience: servicetoken.EventConsumers, Peers: cfg.Peers, Registry: reg,
	})
	router := observability.NewRouter(observability.RouterConfig{Log: log, Registry: reg, Checks: checks, Guard: verifier.Middleware})
	ops := observability.NewOpsRouter(observability.OpsConfig{Log: log, Registry: reg, Checks: checks,
		Operators: keyring.New(cfg.Operators)})
	log.Info("event feed: this process runs the relay only (RELAY_ONLY=true)")

	r := runner.New(pool, log, reg, runner.Options{BatchSize: cfg.BatchSize})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.Run(gctx, feed) })
	g.Go(func() error { feed.Run(gctx); return nil })
	g.Go(func() error { return httpserver.Serve(gctx, log, cfg.Addr, router, nil) })
	g.Go(func() error { return httpserver.Serve(gctx, log.With("server", "ops"), cfg.OpsAddr, ops.Router, nil) })
	return g.Wait()
}
