package eventstore

import (
	"context"
	"log/slog"
	"time"
)

// HintChannel is the PostgreSQL NOTIFY channel on which appenders hint that the log has grown.
// A hint is only a hint: it may come early (before the horizon has passed the new events), late, or not
// at all, and consumers still poll; it only shortens their wait.
const HintChannel = "upi_events"

// hint asks RunHints to send a notification. It never blocks: hints that arrive while one is pending
// are merged into it.
func (s *Store) hint() {
	select {
	case s.hints <- struct{}{}:
	default:
	}
}

// RunHints sends a NOTIFY on HintChannel after appends, at most one per `every`, until ctx ends. The
// NOTIFY is its own tiny transaction after the append committed, so appends never wait on the
// notification queue lock that NOTIFY takes at commit.
func (s *Store) RunHints(ctx context.Context, log *slog.Logger, every time.Duration) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.hints:
		}
		if _, err := s.pool.Exec(ctx, `select pg_notify($1, '')`, HintChannel); err != nil && ctx.Err() == nil {
			log.Debug("append hint not sent", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}
