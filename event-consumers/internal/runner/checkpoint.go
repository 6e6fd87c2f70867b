package runner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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
	// A partition's row notifies nobody: readers follow NAME, which worker.syncName moves.
	notify := `returning pg_notify($6, $7)`
	args := []any{name, strconv.FormatUint(to.TxID, 10), to.GlobalPosition,
		strconv.FormatUint(from.TxID, 10), from.GlobalPosition}
	if _, _, _, partition := ParsePartition(name); partition {
		notify = ``
	} else {
		args = append(args, projection.CheckpointChannel, projection.CheckpointPayload(name, to))
	}
	tag, err := q.Exec(ctx, `
		update projection_checkpoints
		set tx_id = $2::text::xid8, global_position = $3, updated_at = now()
		where name = $1 and tx_id = $4::text::xid8 and global_position = $5 `+notify, args...)
	if err != nil {
		return fmt.Errorf("advance checkpoint %s to %v: %w", name, to, err)
	}
	if tag.RowsAffected() != 1 {
		return errCheckpointMoved
	}
	return nil
}

// ResetCheckpoint sets a consumer's checkpoint to `to`, in one transaction that first locks the
// checkpoint row (a live worker's batch waits, then fails its compare-and-set and reloads from `to`).
// tables, when given, are the projection's tables, emptied in the same transaction (a projection's rows
// reflect its checkpoint, so only `to` = Start makes sense for one). The events the consumer held in
// quarantine are dropped: those after `to` are read again. It returns the position it replaced and how
// many held events were dropped.
//
// A partitioned consumer's partitions (of any layout) are reset with it: their rows are locked first, in
// the order partition.go keeps, and set to `to` with NAME; so are their quarantined events dropped.
func ResetCheckpoint(ctx context.Context, pool *pgxpool.Pool, name string, to eventstore.Position, tables []string) (eventstore.Position, int, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return eventstore.Start, 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after commit
	was, _, err := lockLayout(ctx, tx, name)
	if err != nil {
		return eventstore.Start, 0, err
	}
	if len(tables) > 0 {
		quoted := make([]string, len(tables))
		for i, t := range tables {
			quoted[i] = pgx.Identifier{t}.Sanitize()
		}
		if _, err := tx.Exec(ctx, "truncate "+strings.Join(quoted, ", ")); err != nil {
			return eventstore.Start, 0, fmt.Errorf("empty the tables of %s: %w", name, err)
		}
	}
	if _, err := tx.Exec(ctx, `update projection_checkpoints set tx_id = $2::text::xid8, global_position = $3,
		updated_at = now() where name = $1 or left(name, length($1) + 1) = $1 || '#'`,
		name, strconv.FormatUint(to.TxID, 10), to.GlobalPosition); err != nil {
		return eventstore.Start, 0, fmt.Errorf("reset checkpoint %s: %w", name, err)
	}
	tag, err := tx.Exec(ctx, `update consumer_quarantine set status = 'dropped', release_requested_at = null
		where `+ofConsumer+` and status = 'held'`, name)
	if err != nil {
		return eventstore.Start, 0, fmt.Errorf("drop the quarantine of %s: %w", name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return eventstore.Start, 0, fmt.Errorf("commit: %w", err)
	}
	return was, int(tag.RowsAffected()), nil
}
