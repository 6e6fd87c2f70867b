package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Aggregate tells Execute how to rebuild the state of one kind of stream.
type Aggregate[S any] struct {
	// Type is stored in events.aggregate_type.
	Type string
	// Evolve folds one stored event into the state. It must be pure, and return a new state rather than
	// change the one it is given: states are kept in memory between commands (see cachedState).
	Evolve func(state S, e Event) (S, error)
	// SnapshotEvery writes a snapshot of the state once this many events have been appended since the
	// last one, so that loading a long stream reads the snapshot and a short tail. 0 disables snapshots.
	SnapshotEvery int
	// SnapshotSchema is the shape of S in snapshots; bump it when S changes and older snapshots are
	// ignored (and rewritten).
	SnapshotSchema int
}

// Command is a decision on a stream's current state: the events to append, or a (domain) error. An empty
// result appends nothing.
type Command[S any] func(state S, version int) ([]NewEvent, error)

// Result is what Execute did.
type Result struct {
	// Events are the events appended, or, when Replayed, the earlier events carrying the command's ids.
	Events []Event
	// Replayed is true when the command's dedupe id (or an id it produced) was already in the log: the
	// step had happened before and nothing was appended now.
	Replayed bool
}

// Last is the last event of the result, or nil.
func (r Result) Last() *Event {
	if len(r.Events) == 0 {
		return nil
	}
	return &r.Events[len(r.Events)-1]
}

// Find is the event of the result with id, or nil.
func (r Result) Find(id uuid.UUID) *Event {
	for i := range r.Events {
		if r.Events[i].ID == id {
			return &r.Events[i]
		}
	}
	return nil
}

// Execute runs one command against one stream: ExecuteAll with a group of one op. It takes the stream's
// advisory lock (before anything that assigns a transaction id), returns the event with dedupeID as
// Replayed when it is in the log, else rebuilds the state from the latest snapshot and the events after it,
// decides, appends what the decision returns, refreshes the snapshot when due, and commits.
//
// Commands on one stream are serialised by the lock, so a hot stream never fails with a concurrency
// conflict: concurrent commands queue for a few milliseconds instead. An event id produced by the decision
// that already exists (a step recorded concurrently on another stream) also ends in Replayed.
func Execute[S any](ctx context.Context, s *Store, agg Aggregate[S], aggregateID string, dedupeID uuid.UUID, decide Command[S]) (Result, error) {
	op := NewOp(agg, aggregateID, func(state S, version int, _ Reads) ([]NewEvent, error) {
		return decide(state, version)
	})
	op.Dedupe = dedupeID
	out, err := s.ExecuteAll(ctx, []*Op{op})
	if err != nil {
		return Result{}, err
	}
	return out[0].Result, out[0].Err
}

// LoadState rebuilds the state of one stream outside any command, from its snapshot and the events after
// it. It returns the state and the stream's version (0 for a stream with no events).
func LoadState[S any](ctx context.Context, s *Store, agg Aggregate[S], aggregateID string) (S, int, error) {
	var state S
	var version int
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		read, err := readStream(ctx, tx, agg, aggregateID)
		if err != nil {
			return err
		}
		state, version, err = fold(agg, aggregateID, read)
		return err
	})
	return state, version, MarkUnavailable(err)
}

// streamRead is what one round trip learns about a stream: the latest usable snapshot and the events
// after it.
type streamRead struct {
	snapVersion int
	snapState   []byte
	tail        []Event
}

const (
	snapshotSQL = `select version, state from snapshots
		where aggregate_id = $1 and aggregate_type = $2 and schema_version = $3`
	tailAfterSnapshotSQL = `select ` + eventColumns + ` from events
		where aggregate_id = $1 and version > coalesce((select version from snapshots
			where aggregate_id = $1 and aggregate_type = $2 and schema_version = $3), 0)
		order by version`
)

// readStream sends, in one round trip, the snapshot and the tail after it.
func readStream[S any](ctx context.Context, tx pgx.Tx, agg Aggregate[S], aggregateID string) (streamRead, error) {
	var out streamRead
	b := &pgx.Batch{}
	if agg.SnapshotEvery > 0 {
		b.Queue(snapshotSQL, aggregateID, agg.Type, agg.SnapshotSchema)
		b.Queue(tailAfterSnapshotSQL, aggregateID, agg.Type, agg.SnapshotSchema)
	} else {
		b.Queue(streamSQL, aggregateID, 0)
	}
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	if agg.SnapshotEvery > 0 {
		err := br.QueryRow().Scan(&out.snapVersion, &out.snapState)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return out, fmt.Errorf("load snapshot of %s: %w", aggregateID, err)
		}
	}
	rows, err := br.Query()
	if err != nil {
		return out, fmt.Errorf("load stream %s: %w", aggregateID, err)
	}
	if out.tail, err = scanEvents(rows); err != nil {
		return out, err
	}
	return out, br.Close()
}

// fold rebuilds the state from a snapshot and the events after it, checking that the versions follow on.
func fold[S any](agg Aggregate[S], aggregateID string, read streamRead) (state S, version int, err error) {
	if read.snapState != nil {
		if err := json.Unmarshal(read.snapState, &state); err != nil {
			return state, 0, fmt.Errorf("decode snapshot of %s: %w", aggregateID, err)
		}
	}
	version = read.snapVersion
	for _, e := range read.tail {
		if e.AggregateType != agg.Type {
			return state, 0, fmt.Errorf("stream %s holds a %s event, not %s", aggregateID, e.AggregateType, agg.Type)
		}
		if e.Version != version+1 {
			return state, 0, fmt.Errorf("stream %s: version %d follows %d", aggregateID, e.Version, version)
		}
		if state, err = agg.Evolve(state, e); err != nil {
			return state, 0, fmt.Errorf("evolve %s v%d: %w", aggregateID, e.Version, err)
		}
		version = e.Version
	}
	return state, version, nil
}
