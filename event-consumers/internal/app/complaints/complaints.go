// Package complaints is the process that answers complaints from the log once their payment has ended:
// a complaint raised while its payment was in flight (or any the log answers) is found in the
// "complaints" projection and the command service is asked to resolve it. As for collect expiry, every
// round reads the table afresh (a process that was down catches up), and a resolution asked twice is
// replayed by the command service (one event id per complaint's resolution), never appended twice.
package complaints

import (
	"context"
	"log/slog"
	"time"

	"upi/shared/contract"
)

// Open finds the raised complaints the log may answer, at most limit, oldest first.
type Open interface {
	AnswerableComplaints(ctx context.Context, limit int) ([]contract.ComplaintRef, error)
}

// Resolver asks the command service to resolve complaints (contract.PathComplaintResolutions).
type Resolver interface {
	ResolveComplaints(ctx context.Context, refs []contract.ComplaintRef) ([]contract.ComplaintResolutionResult, error)
}

// Process resolves complaints from the log.
type Process struct {
	open    Open
	resolve Resolver
	log     *slog.Logger
	every   time.Duration
}

// New returns the process, looking every `every` (1s if zero).
func New(open Open, resolve Resolver, log *slog.Logger, every time.Duration) *Process {
	if every <= 0 {
		every = time.Second
	}
	return &Process{open: open, resolve: resolve, log: log, every: every}
}

// Every is how often Round wants to run (under runner.Periodic, one replica at a time).
func (p *Process) Every() time.Duration { return p.every }

// Round is one Tick whose failure is logged: the next round tries again.
func (p *Process) Round(ctx context.Context) {
	if n, err := p.Tick(ctx); err != nil && ctx.Err() == nil {
		p.log.Warn("complaints: round failed; trying again", "err", err)
	} else if n > 0 {
		p.log.Debug("complaints: resolved", "count", n)
	}
}

// Tick asks for the resolution of every raised complaint the log may answer; it returns how many were
// resolved. A complaint whose payment is still in flight is answered STEP_PRECONDITION and asked again
// next round.
func (p *Process) Tick(ctx context.Context) (int, error) {
	open, err := p.open.AnswerableComplaints(ctx, contract.MaxComplaintResolutions)
	if err != nil || len(open) == 0 {
		return 0, err
	}
	res, err := p.resolve.ResolveComplaints(ctx, open)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range res {
		if r.Problem == nil {
			n++
		}
	}
	return n, nil
}
