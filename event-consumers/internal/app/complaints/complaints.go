// Package complaints is the process that answers complaints from the log once their payment has ended:
// a complaint raised while its payment was in flight (or any the log answers) is found in the
// "complaints" projection and the command service is asked to resolve it. It also charges back the
// disputes the merchant left unanswered past their due_at (COMPLAINT_TAT), and tries again the refunds of
// settled disputes that failed for want of the merchant's funds once its balance covers them. As for
// collect expiry, every round reads the table afresh (a process that was down catches up), and a
// resolution, chargeback or retry asked twice is replayed by the command service (one event id each:
// the complaint's close and settle slots, the attempt's refund id), never appended twice.
package complaints

import (
	"context"
	"log/slog"
	"time"

	"upi/shared/contract"
)

// Open finds the raised complaints the log may answer, at most limit, oldest first.
// DueDisputes finds the disputes still raised past their due_at; FailedRefunds the settled disputes
// whose latest refund failed and whose merchant's balance seems to cover it.
type Open interface {
	AnswerableComplaints(ctx context.Context, limit int) ([]contract.ComplaintRef, error)
	DueDisputes(ctx context.Context, limit int) ([]contract.ComplaintRef, error)
	FailedRefunds(ctx context.Context, limit int) ([]contract.ComplaintRetry, error)
}

// Resolver asks the command service to resolve complaints (contract.PathComplaintResolutions), to charge
// back disputes (contract.PathComplaintChargebacks) and to try refunds again
// (contract.PathComplaintRefundRetries).
type Resolver interface {
	ResolveComplaints(ctx context.Context, refs []contract.ComplaintRef) ([]contract.ComplaintResolutionResult, error)
	ChargebackComplaints(ctx context.Context, refs []contract.ComplaintRef) ([]contract.ComplaintResolutionResult, error)
	RetryComplaintRefunds(ctx context.Context, retries []contract.ComplaintRetry) ([]contract.ComplaintResolutionResult, error)
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

// Tick asks for the resolution of every raised complaint the log may answer, the chargeback of every
// dispute past its due_at, and a new attempt at every failed settlement refund the merchant's balance
// covers; it returns how many succeeded. A complaint whose payment is still in flight, or a retry the
// merchant's balance does not cover after all, is answered STEP_PRECONDITION and asked again next round.
func (p *Process) Tick(ctx context.Context) (int, error) {
	n, err := tick(ctx, p.open.AnswerableComplaints, p.resolve.ResolveComplaints)
	if err != nil {
		return n, err
	}
	m, err := tick(ctx, p.open.DueDisputes, p.resolve.ChargebackComplaints)
	n += m
	if err != nil {
		return n, err
	}
	m, err = tick(ctx, p.open.FailedRefunds, p.resolve.RetryComplaintRefunds)
	return n + m, err
}

// tick finds a batch and asks for it; it returns how many succeeded.
func tick[T any](ctx context.Context, find func(context.Context, int) ([]T, error),
	ask func(context.Context, []T) ([]contract.ComplaintResolutionResult, error)) (int, error) {
	found, err := find(ctx, contract.MaxComplaintResolutions)
	if err != nil || len(found) == 0 {
		return 0, err
	}
	res, err := ask(ctx, found)
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
