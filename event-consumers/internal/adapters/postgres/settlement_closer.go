package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/shared/contract/projection"
)

// SettlementCloser closes the settlement cycles whose close time has passed while the log was idle: the
// "settlement" projection closes a cycle when it sees an append past the cycle's close time, which an idle
// log never gives it. A round closes them only when the projection has applied everything below the
// log's horizon (nothing committed is waiting for it), under the projection's clock lock, so it never
// races a batch. It runs as a periodic job (runner.Periodic), one replica at a time.
type SettlementCloser struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

// NewSettlementCloser returns the closer of the database behind pool.
func NewSettlementCloser(pool *pgxpool.Pool, log *slog.Logger) *SettlementCloser {
	return &SettlementCloser{pool: pool, log: log}
}

// Round is one Close whose failure is logged: the next round tries again.
func (c *SettlementCloser) Round(ctx context.Context) {
	if n, err := c.Close(ctx); err != nil && ctx.Err() == nil {
		c.log.Warn("settlement closer: round failed; trying again", "err", err)
	} else if n > 0 {
		c.log.Info("settlement closer: cycles closed", "count", n)
	}
}

// Close closes the cycles due, if the projection is caught up with the log's horizon; it returns how many.
// Most rounds find no cycle due (a cycle lasts hours; the projection closes those it sees pass) and end
// at one indexed look, without waiting for the projection's clock lock.
func (c *SettlementCloser) Close(ctx context.Context) (int64, error) {
	var due bool
	if err := c.pool.QueryRow(ctx, `select exists (select 1 from settlement_cycles where not closed and closes_at <= now())`).
		Scan(&due); err != nil {
		return 0, fmt.Errorf("close settlement cycles: %w", err)
	}
	if !due {
		return 0, nil
	}
	var closed int64
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		var clock bool
		if err := tx.QueryRow(ctx, `select exists (select 1 from settlement_clock where id = 1 for update)`).Scan(&clock); err != nil || !clock {
			return err // nothing filed yet
		}
		// Behind: the first event after the projection's checkpoint is below the horizon (committed). The
		// log's index on (tx_id, global_position) finds it with the checkpoint as a constant; a join with the
		// checkpoint's row would scan the whole log.
		var cpTx string
		var cpPos int64
		err := tx.QueryRow(ctx, `select tx_id::text, global_position from projection_checkpoints where name = $1`,
			projection.Settlement).Scan(&cpTx, &cpPos)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		behind := false
		if err == nil {
			err = tx.QueryRow(ctx, `
			select coalesce((
				select e.tx_id < pg_snapshot_xmin(pg_current_snapshot()) from events e
				where (e.tx_id, e.global_position) > ($1::xid8, $2)
				order by e.tx_id, e.global_position limit 1), false)`, cpTx, cpPos).Scan(&behind)
		}
		if err != nil {
			return err
		}
		if behind {
			return nil
		}
		tag, err := tx.Exec(ctx, `update settlement_cycles set closed = true, closed_at = now()
			where not closed and closes_at <= now()`)
		closed = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("close settlement cycles: %w", err)
	}
	return closed, nil
}
