// Package mandates is the timer of UPI AutoPay mandates: it finds in the "merchant" projection what is due
// (a pending mandate past its expiry, a mandate past its validity, a debit due to run, to be retried, past
// its approval's deadline, or whose payment ended) and asks the command service to decide it. Every tick
// reads the tables afresh, so a timer started after a pause (a restart, a crash, a database outage)
// catches up with whatever fell due meanwhile; the command service decides from the log under the
// mandate's lock with deterministic event and payment ids, so a step asked twice, by two ticks or two
// processes, happens once.
package mandates

import (
	"context"
	"log/slog"
	"time"

	"upi/shared/contract"
)

// Due finds what is due now, at most limit items, oldest due first.
type Due interface {
	DueMandates(ctx context.Context, limit int) ([]contract.MandateTimer, error)
}

// Advancer asks the command service to decide what is due (contract.PathMandateTimers).
type Advancer interface {
	AdvanceMandates(ctx context.Context, items []contract.MandateTimer) ([]contract.MandateTimerResult, error)
}

// Timer runs the mandates' due steps.
type Timer struct {
	due   Due
	adv   Advancer
	log   *slog.Logger
	every time.Duration
}

// New returns a timer that looks for due steps every `every` (1s if zero).
func New(due Due, adv Advancer, log *slog.Logger, every time.Duration) *Timer {
	if every <= 0 {
		every = time.Second
	}
	return &Timer{due: due, adv: adv, log: log, every: every}
}

// Every is how often the timer wants Round run (under runner.Periodic's lock, one replica at a time).
func (t *Timer) Every() time.Duration { return t.every }

// Round is one Tick whose failure is logged: the next round tries again.
func (t *Timer) Round(ctx context.Context) {
	if n, err := t.Tick(ctx); err != nil && ctx.Err() == nil {
		t.log.Warn("mandate timer: tick failed; trying again", "err", err)
	} else if n > 0 {
		t.log.Debug("mandate timer: advanced", "count", n)
	}
}

// Tick decides what is due now; it returns how many items it asked for.
func (t *Timer) Tick(ctx context.Context) (int, error) {
	due, err := t.due.DueMandates(ctx, contract.MaxMandateTimers)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	res, err := t.adv.AdvanceMandates(ctx, due)
	if err != nil {
		return 0, err
	}
	for _, r := range res {
		if r.Problem != nil {
			t.log.Info("mandate timer: step refused", "mandate_id", r.MandateID, "notification_id", r.NotificationID,
				"code", r.Problem.Code, "detail", r.Problem.Detail)
		}
	}
	return len(due), nil
}
