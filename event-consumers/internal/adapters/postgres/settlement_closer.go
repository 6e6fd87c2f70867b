package postgres

import (
	"context"
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
func (c *SettlementCloser) Close(ctx context.Context) (int64, error) {
	var closed int64
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		var clock bool
		if err := tx.QueryRow(ctx, `select exists (select 1 from settlement_clock where id = 1 for update)`).Scan(&clock); err != nil || !clock {
			return err // nothing filed yet
		}
		var behind bool
		if err := tx.QueryRow(ctx, `
			select exists (
				select 1 from events e, projection_checkpoints c
				where c.name = $1 and (e.tx_id, e.global_position) > (c.tx_id, c.global_position)
					and e.tx_id < pg_snapshot_xmin(pg_current_snapshot()))`, projection.Settlement).Scan(&behind); err != nil {
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
