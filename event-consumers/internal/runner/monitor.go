package runner

import (
	"context"
	"time"

	"upi/shared/platform/eventstore"
)

// monitor refreshes the consumer's checkpoint and lag gauges from the database (so a standby reports
// them too) and warns while the active worker is behind and not advancing.
func (w *worker) monitor(ctx context.Context) {
	t := time.NewTicker(w.r.opts.MonitorEvery)
	defer t.Stop()
	var last eventstore.Position
	lastMoved := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cp, behind, oldest, err := w.lag(ctx)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("consumer lag not measured", "err", err)
			}
			continue
		}
		lagSeconds := 0.0
		if behind > 0 {
			lagSeconds = max(0, time.Since(oldest).Seconds())
		}
		w.r.m.checkpoint.WithLabelValues(w.name).Set(float64(cp.GlobalPosition))
		w.r.m.lagEvents.WithLabelValues(w.name).Set(float64(behind))
		w.r.m.lagSeconds.WithLabelValues(w.name).Set(lagSeconds)
		if cp != last || behind == 0 {
			last, lastMoved = cp, time.Now()
			continue
		}
		if w.active.Load() && time.Since(lastMoved) >= w.r.opts.StallAfter {
			w.log.Warn("consumer stalled: behind the log and not advancing",
				"checkpoint", cp.Token(), "lag_events", behind, "lag_seconds", lagSeconds,
				"stalled_for", time.Since(lastMoved).Round(time.Second).String())
		}
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

// monitorHorizon exports the age of the oldest transaction that holds back the horizon consumers read
// below: while it runs, no consumer sees events appended after it began.
func (r *Runner) monitorHorizon(ctx context.Context) {
	t := time.NewTicker(r.opts.MonitorEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var age float64
		err := r.pool.QueryRow(ctx, `
			select coalesce(extract(epoch from now() - min(xact_start)), 0)::float8
			from pg_stat_activity where backend_xid is not null`).Scan(&age)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("horizon age not measured", "err", err)
			}
			continue
		}
		r.m.horizonAge.Set(age)
	}
}
