// Package service is the process around each service: its signals, configuration, log, tracing and exit
// codes, the same for all four, so that each main says only what its service is made of.
package service

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
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
	if observability.PersonalData() {
		log.Warn("LOG_PERSONAL_DATA is on: logs and spans carry VPAs and RRNs; turn it off after debugging")
	}
	if err := start(name, log, cfg, run); err != nil {
		log.Error("exit", "err", err)
		os.Exit(1)
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
