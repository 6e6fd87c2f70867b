// Package service is the process around each service: its signals, configuration, log, tracing and exit
// codes, the same for all four, so that each main says only what its service is made of.
package service

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"upi/shared/platform/observability"
)

// Main runs the service name: it loads the configuration (an invalid one exits 2, saying why), logs at the
// level it names, starts tracing (observability.StartTracing, off without an OTLP endpoint), and calls run
// with the command-line arguments and a context that ends on SIGINT or SIGTERM. An error from run is
// logged and exits 1; the spans still buffered are flushed first.
func Main[C any](name string, load func() (C, error), logLevel func(C) string,
	run func(ctx context.Context, log *slog.Logger, cfg C, args []string) error) {
	cfg, err := load()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// LOG_PERSONAL_DATA belongs to the process around every service (its logs and spans), like the OTEL_*
	// variables StartTracing reads, not to any one service's configuration.
	observability.SetPersonalData(os.Getenv("LOG_PERSONAL_DATA") == "true")
	log := observability.NewLogger(name, logLevel(cfg))
	tuneGC(os.LookupEnv)
	if observability.PersonalData() {
		log.Warn("LOG_PERSONAL_DATA is on: logs and spans carry VPAs and RRNs; turn it off after debugging")
	}
	if err := start(name, log, cfg, run); err != nil {
		log.Error("exit", "err", err)
		os.Exit(1)
	}
}

// The garbage collector's settings where the environment leaves Go's own GOGC or GOMEMLIMIT unset. Go's
// default, GOGC=100 with a 4 MB floor, collects every few megabytes allocated; the services' live heaps are
// small (a few MB; the command service's cache of stream states and recent events up to a few hundred), so
// at saturation the collector took 5-16% of each service's CPU (docs/benchmarks.md). At 400 the heap may
// grow to five times what is live before a collection, a quarter as many collections; the soft limit makes
// the collector work harder instead as the heap nears 1 GiB. A host with less memory than that for a
// service sets GOMEMLIMIT to about 80% of what it has (docs/deployment.md).
const (
	defaultGOGC        = 400
	defaultMemoryLimit = 1 << 30
)

// tuneGC applies the defaults above to whichever of GOGC and GOMEMLIMIT lookup finds unset or empty
// (compose passes an unset SERVICE_GOGC on as an empty GOGC, which Go itself reads as unset too).
func tuneGC(lookup func(string) (string, bool)) {
	if v, _ := lookup("GOGC"); v == "" {
		debug.SetGCPercent(defaultGOGC)
	}
	if v, _ := lookup("GOMEMLIMIT"); v == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}

func start[C any](name string, log *slog.Logger, cfg C,
	run func(ctx context.Context, log *slog.Logger, cfg C, args []string) error) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	log.Info("starting", "config", cfg, "args", args)
	stopTracing, err := observability.StartTracing(ctx, log, name)
	if err != nil {
		return err
	}
	defer stopTracing()
	return run(ctx, log, cfg, args)
}
