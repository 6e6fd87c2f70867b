// Package expiry is the watcher of collect requests' due dates: it finds the requests still pending past
// their expires_at in the "payments" projection and has the command service append their CollectExpired.
// Every tick reads the table afresh, so a watcher started after a pause (a restart, a crash) catches up
// with whatever fell due meanwhile; an expiry asked twice, by two ticks or two processes, is replayed by
// the command service, never appended twice.
package expiry

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"upi/shared/contract"
)

// DueCollects finds the collect requests still pending past their expiry, at most limit, oldest due first.
type DueCollects interface {
	DueCollects(ctx context.Context, limit int) ([]uuid.UUID, error)
}

// Expirer asks the command service to expire collect requests (contract.PathCollectExpiries), with one
// result per request.
type Expirer interface {
	ExpireCollects(ctx context.Context, due []uuid.UUID) ([]contract.CollectExpiryResult, error)
}

// Watcher expires due collect requests.
type Watcher struct {
	due    DueCollects
	expire Expirer
	log    *slog.Logger
	every  time.Duration
}

// New returns a watcher that looks for due requests every `every` (1s if zero): with the projection's
// lag, a request expires within about that much of its expires_at.
func New(due DueCollects, expire Expirer, log *slog.Logger, every time.Duration) *Watcher {
	if every <= 0 {
		every = time.Second
	}
	return &Watcher{due: due, expire: expire, log: log, every: every}
}

// Every is how often the watcher wants Round run (the service runs it under a lock, runner.Periodic, so
// that one replica at a time expires requests).
func (w *Watcher) Every() time.Duration { return w.every }

// Round is one Tick whose failure is logged: the next round tries again.
func (w *Watcher) Round(ctx context.Context) {
	if n, err := w.Tick(ctx); err != nil && ctx.Err() == nil {
		w.log.Warn("collect expiry: tick failed; trying again", "err", err)
	} else if n > 0 {
		w.log.Debug("collect expiry: expired", "count", n)
	}
}

// Tick expires the requests due now; it returns how many it asked for.
func (w *Watcher) Tick(ctx context.Context) (int, error) {
	due, err := w.due.DueCollects(ctx, contract.MaxCollectExpiries)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	res, err := w.expire.ExpireCollects(ctx, due)
	if err != nil {
		return 0, err
	}
	for _, r := range res {
		if r.Problem != nil {
			// A request not due yet by the database's clock, or already closed: the next tick sees it again
			// until the projection catches up.
			w.log.Info("collect expiry: not expired", "collect_id", r.CollectID, "code", r.Problem.Code, "detail", r.Problem.Detail)
		}
	}
	return len(due), nil
}
