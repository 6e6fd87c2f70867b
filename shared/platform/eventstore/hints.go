package eventstore

import (
	"context"
	"log/slog"
	"strconv"
	"time"
)

// HintChannel is the PostgreSQL NOTIFY channel on which appenders hint that the log has grown.
// A hint is only a hint: it may come early (before the horizon has passed the new events), late, or not
// at all, and consumers still poll; it only shortens their wait.
//
// Its payload is the highest transaction id (decimal) whose events the hint announces, or empty. Those
// events are committed when the hint is sent, but a consumer may not see them yet: they become readable
// only once every transaction that began before them has ended (the horizon, docs/architecture.md). A
// consumer that has not read past that transaction knows there is more to read and soon, and polls
// quickly until it has (LogCache.Pending), instead of backing off as on an empty log.
const HintChannel = "upi_events"

// HintPayload is a hint's payload announcing the events of transactions up to tx.
func HintPayload(tx uint64) string { return strconv.FormatUint(tx, 10) }

// ParseHint reads a hint's payload: the highest transaction id it announces, 0 when it names none.
func ParseHint(payload string) uint64 {
	tx, err := strconv.ParseUint(payload, 10, 64)
	if err != nil {
		return 0
	}
	return tx
}

// hint asks RunHints to send a notification announcing the events of transaction tx. It never blocks:
// hints that arrive while one is pending are merged into it, which announces the highest transaction.
func (s *Store) hint(tx uint64) {
	for {
		cur := s.hintedTx.Load()
		if tx <= cur || s.hintedTx.CompareAndSwap(cur, tx) {
			break
		}
	}
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
		if _, err := s.pool.Exec(ctx, `select pg_notify($1, $2)`, HintChannel, HintPayload(s.hintedTx.Load())); err != nil && ctx.Err() == nil {
			log.Debug("append hint not sent", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}
