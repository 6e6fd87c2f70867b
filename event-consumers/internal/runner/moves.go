package runner

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"upi/shared/contract/projection"
	"upi/shared/platform/eventstore"
)

// checkpointMoves moves the checkpoints of a process's consumers that have nothing else to write, several
// in one statement. Every append wakes every consumer of the process, and most find nothing for them in
// what they read (an account's projection in a payment's own events, the workflow in a completion): each
// then only moves its checkpoint. Alone, that is a round trip and an update per consumer per append, and
// below saturation it was most of PostgreSQL's work: 15,500 checkpoint updates for 555 payments in a run of
// one client, 36 ms of PostgreSQL's CPU a payment.
//
// The first consumer to ask runs its move at once with whatever else is waiting, so a lone move waits for
// nothing; those that ask while a statement is under way go together in the next one. Each move is still
// its own compare-and-set: one that finds its row elsewhere fails alone with errCheckpointMoved. A move
// waits, with the others of its statement, while a rebuild's swap holds its row (for as long as the swap
// takes), as a move alone would.
type checkpointMoves struct {
	pool *pgxpool.Pool

	mu      sync.Mutex
	queue   []*checkpointMove
	running bool
	// statements counts the statements run, for tests.
	statements atomic.Int64
}

// checkpointMove is one consumer's move from `from` to `to`; done receives its outcome.
type checkpointMove struct {
	name     string
	from, to eventstore.Position
	done     chan error
}

// movesTimeout bounds one statement of moves: it runs for every consumer in it, whatever the context of
// the one that runs it.
const movesTimeout = 30 * time.Second

// advance moves name's checkpoint from `from` to `to` if it is still at `from`, and notifies readers, as
// advanceCheckpoint does; errCheckpointMoved if the row was elsewhere.
func (m *checkpointMoves) advance(ctx context.Context, name string, from, to eventstore.Position) error {
	mv := &checkpointMove{name: name, from: from, to: to, done: make(chan error, 1)}
	m.mu.Lock()
	m.queue = append(m.queue, mv)
	if m.running {
		m.mu.Unlock()
		select {
		case err := <-mv.done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.running = true
	for len(m.queue) > 0 {
		batch := m.queue
		m.queue = nil
		m.mu.Unlock()
		m.run(ctx, batch)
		m.mu.Lock()
	}
	m.running = false
	m.mu.Unlock()
	return <-mv.done
}

// run moves batch in one statement and tells each move its outcome. The statement runs on a context of
// its own: the one that runs it may stop waiting (its worker lost its lock) while others wait on it.
func (m *checkpointMoves) run(ctx context.Context, batch []*checkpointMove) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), movesTimeout)
	defer cancel()
	n := len(batch)
	names, notes := make([]string, n), make([]string, n)
	toTx, fromTx := make([]string, n), make([]string, n)
	toPos, fromPos := make([]int64, n), make([]int64, n)
	for i, mv := range batch {
		names[i], notes[i] = mv.name, projection.CheckpointPayload(mv.name, mv.to)
		toTx[i], toPos[i] = strconv.FormatUint(mv.to.TxID, 10), mv.to.GlobalPosition
		fromTx[i], fromPos[i] = strconv.FormatUint(mv.from.TxID, 10), mv.from.GlobalPosition
	}
	m.statements.Add(1)
	moved := make(map[string]bool, n)
	rows, err := m.pool.Query(ctx, `
		update projection_checkpoints c
		set tx_id = u.to_tx::text::xid8, global_position = u.to_pos, updated_at = now()
		from unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::text[])
			as u(name, to_tx, to_pos, from_tx, from_pos, note)
		where c.name = u.name and c.tx_id = u.from_tx::text::xid8 and c.global_position = u.from_pos
		returning c.name, pg_notify($7, u.note)`,
		names, toTx, toPos, fromTx, fromPos, notes, projection.CheckpointChannel)
	if err == nil {
		for rows.Next() {
			var name string
			if err = rows.Scan(&name, nil); err != nil {
				break
			}
			moved[name] = true
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	for _, mv := range batch {
		switch {
		case err != nil:
			mv.done <- fmt.Errorf("advance checkpoint %s to %v: %w", mv.name, mv.to, err)
		case !moved[mv.name]:
			mv.done <- errCheckpointMoved
		default:
			mv.done <- nil
		}
	}
}
