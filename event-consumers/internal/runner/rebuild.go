package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/shared/platform/eventstore"
)

// RebuildResult is what a rebuild did.
type RebuildResult struct {
	Events   int                 // events replayed (of every type; the projection may skip some)
	Position eventstore.Position // the checkpoint the rebuilt tables reflect
	Duration time.Duration
}

// ErrRebuildRunning means another rebuild of the same projection is in progress.
var ErrRebuildRunning = errors.New("a rebuild of this projection is already running")

// Rebuild replays the whole log into fresh copies of p's tables while the live tables keep serving
// (blue/green), then swaps them in:
//
//  1. create schema rebuild_NAME with empty copies of p's tables (`like ... including all`);
//  2. replay from the start, batch by batch, with search_path pointing p's unqualified table names at the
//     copies;
//  3. in one transaction: lock the live checkpoint row, catch the copies up to the horizon, move the live
//     tables out and the copies in, set the checkpoint to the copies' position, drop the old tables.
//
// A live worker applying a batch meanwhile waits on the checkpoint row and then fails its compare-and-set,
// so it reloads the new checkpoint and nothing is applied twice or skipped. An event the projection cannot
// apply aborts the rebuild with an error and leaves the live tables untouched.
func Rebuild(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, p Projection, batchSize int) (RebuildResult, error) {
	start := time.Now()
	name := p.Name()
	shadow := pgx.Identifier{"rebuild_" + name}.Sanitize()
	old := pgx.Identifier{"rebuild_" + name + "_old"}.Sanitize()
	if batchSize <= 0 {
		batchSize = 5000
	}

	// One rebuild per projection at a time, across processes; the lock ends with the connection.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return RebuildResult{}, fmt.Errorf("rebuild %s: %w", name, err)
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, `select pg_try_advisory_lock(hashtextextended($1, 0))`, "rebuild:"+name).Scan(&got); err != nil {
		return RebuildResult{}, fmt.Errorf("rebuild %s: lock: %w", name, err)
	}
	if !got {
		return RebuildResult{}, fmt.Errorf("rebuild %s: %w", name, ErrRebuildRunning)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `select pg_advisory_unlock(hashtextextended($1, 0))`, "rebuild:"+name) //nolint:errcheck

	ddl := []string{"drop schema if exists " + shadow + " cascade", "drop schema if exists " + old + " cascade",
		"create schema " + shadow}
	for _, t := range p.Tables() {
		ddl = append(ddl, fmt.Sprintf("create table %s.%s (like public.%s including all)", shadow, pgx.Identifier{t}.Sanitize(), pgx.Identifier{t}.Sanitize()))
	}
	for _, stmt := range ddl {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return RebuildResult{}, fmt.Errorf("rebuild %s: prepare shadow tables: %w", name, err)
		}
	}
	dropShadow := func() {
		if _, err := pool.Exec(context.WithoutCancel(ctx), "drop schema if exists "+shadow+" cascade"); err != nil {
			log.Warn("rebuild: shadow tables not dropped", "projection", name, "err", err)
		}
	}

	pos, total := eventstore.Start, 0
	// replay applies batches in tx until one comes back short of a full batch.
	replay := func(tx pgx.Tx) error {
		for {
			batch, err := eventstore.ReadLog(ctx, tx, pos, batchSize)
			if err != nil {
				return err
			}
			if len(batch) == 0 {
				return nil
			}
			if err := p.Apply(ctx, tx, batch); err != nil {
				return err
			}
			pos = batch[len(batch)-1].Position
			total += len(batch)
			if len(batch) < batchSize {
				return nil
			}
		}
	}

	// Bulk replay, one short transaction per batch, so no transaction holds the horizon back for long.
	for {
		before := total
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "set local search_path to "+shadow+", public"); err != nil {
				return err
			}
			if err := customPlans(ctx, tx); err != nil {
				return err
			}
			batch, err := eventstore.ReadLog(ctx, tx, pos, batchSize)
			if err != nil || len(batch) == 0 {
				return err
			}
			if err := p.Apply(ctx, tx, batch); err != nil {
				return err
			}
			pos = batch[len(batch)-1].Position
			total += len(batch)
			return nil
		})
		if err != nil {
			dropShadow()
			return RebuildResult{}, fmt.Errorf("rebuild %s: replay after %v: %w", name, pos, err)
		}
		if total-before < batchSize {
			break
		}
		if (total/batchSize)%20 == 0 {
			log.Info("rebuild progress", "projection", name, "events", total)
		}
	}

	// The swap: short, and serialised with the live worker by the checkpoint row.
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := LoadCheckpoint(ctx, tx, name); err != nil {
			return err
		}
		var live eventstore.Position
		if err := tx.QueryRow(ctx, `select tx_id::text::bigint, global_position from projection_checkpoints
			where name = $1 for update`, name).Scan(&live.TxID, &live.GlobalPosition); err != nil {
			return fmt.Errorf("lock checkpoint: %w", err)
		}
		if _, err := tx.Exec(ctx, "set local search_path to "+shadow+", public"); err != nil {
			return err
		}
		if err := customPlans(ctx, tx); err != nil {
			return err
		}
		if err := replay(tx); err != nil {
			return fmt.Errorf("catch up after %v: %w", pos, err)
		}
		if pos.Less(live) {
			return fmt.Errorf("rebuilt tables reached %v, behind the live checkpoint %v", pos, live)
		}
		stmts := []string{"set local search_path to public", "create schema " + old}
		for _, t := range p.Tables() {
			id := pgx.Identifier{t}.Sanitize()
			stmts = append(stmts, "alter table public."+id+" set schema "+old, "alter table "+shadow+"."+id+" set schema public")
		}
		stmts = append(stmts, "drop schema "+old+" cascade", "drop schema "+shadow)
		for _, stmt := range stmts {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("swap tables: %s: %w", stmt, err)
			}
		}
		if err := advanceCheckpoint(ctx, tx, name, live, pos); err != nil {
			return fmt.Errorf("set checkpoint: %w", err)
		}
		return nil
	})
	if err != nil {
		dropShadow()
		return RebuildResult{}, fmt.Errorf("rebuild %s: %w", name, err)
	}
	res := RebuildResult{Events: total, Position: pos, Duration: time.Since(start)}
	log.Info("rebuild done", "projection", name, "events", total, "checkpoint", pos.Token(),
		"duration", res.Duration.Round(time.Millisecond).String())
	return res, nil
}
