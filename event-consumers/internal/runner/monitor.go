package runner

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"upi/shared/platform/eventstore"
)

// Every runs job every `every` until ctx ends, the first time one interval after the start: the schedule
// of the consumers' monitors and of the service's periodic jobs (the retry of parked workflow steps).
func Every(ctx context.Context, every time.Duration, job func(context.Context)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		job(ctx)
	}
}

// monitor refreshes the consumer's checkpoint and lag gauges from the database (so a standby reports
// them too) and warns while the active worker is behind and not advancing.
func (w *worker) monitor(ctx context.Context) {
	s := stallWatch{lastMoved: time.Now()}
	Every(ctx, w.r.opts.MonitorEvery, func(ctx context.Context) {
		w.measureLag(ctx, &s)
		w.measureQuarantine(ctx)
	})
}

// stallWatch is what the monitor remembers between two looks: the checkpoint and since when it has not
// moved.
type stallWatch struct {
	last      eventstore.Position
	lastMoved time.Time
}

// measureLag sets the consumer's checkpoint and lag gauges, and warns when the active worker has been
// behind without advancing for StallAfter.
func (w *worker) measureLag(ctx context.Context, s *stallWatch) {
	// The worker's position, taken before the stored checkpoint is read: the worker stores a position
	// only after it committed it, so a stored checkpoint read later and behind it was moved back.
	mine := w.position.Load()
	cp, behind, oldest, err := w.lag(ctx)
	if errors.Is(err, pgx.ErrNoRows) {
		return // no checkpoint yet: the consumer (or this partition of it) has not started anywhere
	}
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("consumer lag not measured", "err", err)
		}
		return
	}
	lagSeconds := 0.0
	if behind > 0 {
		lagSeconds = max(0, time.Since(oldest).Seconds())
	}
	if mine != nil && w.active.Load() && cp.Less(*mine) {
		// The stored checkpoint is behind the worker's: someone moved it back (a checkpoint reset). The
		// worker never does, and an idle worker would not find out by itself (it reads after its own).
		w.reloadCheckpoint.Store(true)
	}
	w.r.m.checkpoint.WithLabelValues(w.name).Set(float64(cp.GlobalPosition))
	w.r.m.lagEvents.WithLabelValues(w.name).Set(float64(behind))
	w.r.m.lagSeconds.WithLabelValues(w.name).Set(lagSeconds)
	if cp != s.last || behind == 0 {
		s.last, s.lastMoved = cp, time.Now()
		return
	}
	if w.active.Load() && time.Since(s.lastMoved) >= w.r.opts.StallAfter {
		w.log.Warn("consumer stalled: behind the log and not advancing",
			"checkpoint", cp.Token(), "lag_events", behind, "lag_seconds", lagSeconds,
			"stalled_for", time.Since(s.lastMoved).Round(time.Second).String())
	}
}

// lag reads the checkpoint, how many visible events lie after it (capped) and when the oldest of them was
// appended, in one statement.
func (w *worker) lag(ctx context.Context) (cp eventstore.Position, behind int64, oldest time.Time, err error) {
	var oldestPtr *time.Time
	err = w.r.pool.QueryRow(ctx, `
		with cp as (select tx_id, global_position from projection_checkpoints where name = $1),
		pending as (
			select e.created_at from events e, cp
			where (e.tx_id, e.global_position) > (cp.tx_id, cp.global_position)
			  and e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
			order by e.tx_id, e.global_position
			limit 100000)
		select cp.tx_id::text::bigint, cp.global_position,
		       (select count(*) from pending), (select min(created_at) from pending)
		from cp`, w.name).Scan(&cp.TxID, &cp.GlobalPosition, &behind, &oldestPtr)
	if oldestPtr != nil {
		oldest = *oldestPtr
	}
	return cp, behind, oldest, err
}

// measureHorizon exports the age of the oldest transaction that holds back the horizon consumers read
// below: while it runs, no consumer sees events appended after it began.
func (r *Runner) measureHorizon(ctx context.Context) {
	var age float64
	err := r.pool.QueryRow(ctx, `
		select coalesce(extract(epoch from now() - min(xact_start)), 0)::float8
		from pg_stat_activity where backend_xid is not null`).Scan(&age)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("horizon age not measured", "err", err)
		}
		return
	}
	r.m.horizonAge.Set(age)
}
