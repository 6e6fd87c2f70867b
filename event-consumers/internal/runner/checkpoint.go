package runner

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"upi/shared/contract/projection"
	"upi/shared/platform/eventstore"
)

// errCheckpointMoved means the compare-and-set of a checkpoint found another position than the one the
// batch was read after: another worker (or a rebuild) moved it. The batch is dropped and the checkpoint
// reloaded.
var errCheckpointMoved = errors.New("checkpoint moved by another worker")

// LoadCheckpoint returns a consumer's checkpoint, creating it at the start of the log if it is new.
func LoadCheckpoint(ctx context.Context, q execQuerier, name string) (eventstore.Position, error) {
	if _, err := q.Exec(ctx, `insert into projection_checkpoints (name) values ($1) on conflict do nothing`, name); err != nil {
		return eventstore.Start, fmt.Errorf("create checkpoint %s: %w", name, err)
	}
	var p eventstore.Position
	err := q.QueryRow(ctx, `select tx_id::text::bigint, global_position from projection_checkpoints where name = $1`,
		name).Scan(&p.TxID, &p.GlobalPosition)
	if err != nil {
		return eventstore.Start, fmt.Errorf("load checkpoint %s: %w", name, err)
	}
	return p, nil
}

// lockCheckpoint locks a consumer's checkpoint row for the rest of tx, creating it if it is new, and
// returns it: a live worker's next batch then waits on the row.
func lockCheckpoint(ctx context.Context, tx pgx.Tx, name string) (eventstore.Position, error) {
	if _, err := LoadCheckpoint(ctx, tx, name); err != nil {
		return eventstore.Start, err
	}
	var live eventstore.Position
	if err := tx.QueryRow(ctx, `select tx_id::text::bigint, global_position from projection_checkpoints
		where name = $1 for update`, name).Scan(&live.TxID, &live.GlobalPosition); err != nil {
		return eventstore.Start, fmt.Errorf("lock checkpoint: %w", err)
	}
	return live, nil
}

// advanceCheckpoint moves a checkpoint from `from` to `to` if it is still at `from`, and notifies readers
// (the notification is delivered only if the surrounding transaction commits).
func advanceCheckpoint(ctx context.Context, q execQuerier, name string, from, to eventstore.Position) error {
	tag, err := q.Exec(ctx, `
		update projection_checkpoints
		set tx_id = $2::text::xid8, global_position = $3, updated_at = now()
		where name = $1 and tx_id = $4::text::xid8 and global_position = $5
		returning pg_notify($6, $7)`,
		name, strconv.FormatUint(to.TxID, 10), to.GlobalPosition,
		strconv.FormatUint(from.TxID, 10), from.GlobalPosition,
		projection.CheckpointChannel, projection.CheckpointPayload(name, to))
	if err != nil {
		return fmt.Errorf("advance checkpoint %s to %v: %w", name, to, err)
	}
	if tag.RowsAffected() != 1 {
		return errCheckpointMoved
	}
	return nil
}
