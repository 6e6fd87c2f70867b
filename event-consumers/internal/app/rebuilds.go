// Package app is event-consumers' application: what its admin route and its command line ask for (the
// rebuild of projections by name). The payment workflow and the expiry of collect requests are its
// packages workflow and expiry.
package app

import (
	"context"
	"log/slog"
	"slices"
	"strings"
)

// All names every projection in a rebuild.
const All = "all"

// Rebuilder rebuilds one projection's tables from the log while the live ones keep serving
// (runner.Rebuilder).
type Rebuilder interface {
	// Projections names the projections, in the order a rebuild of all of them takes them.
	Projections() []string
	Rebuild(ctx context.Context, projection string) error
}

// Rebuilds rebuilds projections by name: one, or All of them in order.
type Rebuilds struct {
	rebuilder Rebuilder
	log       *slog.Logger
}

// NewRebuilds returns the rebuilds that rebuilder makes.
func NewRebuilds(rebuilder Rebuilder, log *slog.Logger) *Rebuilds {
	return &Rebuilds{rebuilder: rebuilder, log: log}
}

// Valid reports whether name names a projection, or All.
func (r *Rebuilds) Valid(name string) bool {
	return name == All || slices.Contains(r.rebuilder.Projections(), name)
}

// Names lists the projections' names, as "a|b".
func (r *Rebuilds) Names() string { return strings.Join(r.rebuilder.Projections(), "|") }

// Run rebuilds the projection name, or every one in order for All, stopping at the first that fails.
func (r *Rebuilds) Run(ctx context.Context, name string) error {
	for _, p := range r.rebuilder.Projections() {
		if name == All || name == p {
			if err := r.rebuilder.Rebuild(ctx, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// Start runs a rebuild in the background until it ends or ctx does (a full replay outlives any request),
// and logs its failure. Concurrent rebuilds of one projection are refused by the rebuild's lock.
func (r *Rebuilds) Start(ctx context.Context, name string) {
	go func() {
		if err := r.Run(ctx, name); err != nil {
			r.log.Error("rebuild failed", "projection", name, "err", err)
		}
	}()
}
