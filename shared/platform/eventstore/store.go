// Package eventstore is the append-only PostgreSQL event store: appending to a stream under its lock,
// loading a stream to rebuild an aggregate, and reading the global log without ever skipping an event
// whose transaction commits late. The rules it follows are in docs/architecture.md.
package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Expected versions for Append besides an exact version.
const (
	AnyVersion = -1 // append whatever the stream's version
	NoStream   = 0  // the stream must not exist yet
)

// NewEvent is an event to append. Data and Metadata are marshalled to JSON.
type NewEvent struct {
	ID       uuid.UUID
	Type     string
	Data     any
	Metadata any
}

// encode marshals the event's payload and metadata ({} when it has none).
func (e NewEvent) encode() (payload, meta []byte, err error) {
	if payload, err = json.Marshal(e.Data); err != nil {
		return nil, nil, fmt.Errorf("marshal %s payload: %w", e.Type, err)
	}
	meta = []byte("{}")
	if e.Metadata != nil {
		if meta, err = json.Marshal(e.Metadata); err != nil {
			return nil, nil, fmt.Errorf("marshal %s metadata: %w", e.Type, err)
		}
	}
	return payload, meta, nil
}

// Event is an event as stored.
type Event struct {
	Position      Position
	ID            uuid.UUID
	AggregateID   string
	AggregateType string
	Type          string
	Version       int
	Payload       json.RawMessage
	Metadata      json.RawMessage
	CreatedAt     time.Time
	// Data is the payload as its appender built it (NewEvent.Data), on events this process appended in a
	// group, and on streams' first events read for Reads.Origin by a store WithPayloads; nil on other
	// events read from the store. An aggregate may fold it instead of decoding Payload.
	Data any
}

// ConflictError is an optimistic-concurrency failure: the stream was not at the expected version.
type ConflictError struct {
	AggregateID string
	Expected    int
	Actual      int
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("stream %s is at version %d, expected %d", e.AggregateID, e.Actual, e.Expected)
}

// ErrConflict matches every *ConflictError with errors.Is.
var ErrConflict = errors.New("concurrency conflict")

func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// DuplicateError means an event with one of the given ids already exists: this exact step already
// happened. Existing holds the stored events with those ids, so the caller can return their outcome.
type DuplicateError struct{ Existing []Event }

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("event %s already exists", e.Existing[0].ID)
}

// ErrDuplicate matches every *DuplicateError with errors.Is.
var ErrDuplicate = errors.New("event already exists")

func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicate }

// Store reads and appends events.
type Store struct {
	pool  *pgxpool.Pool
	hints chan struct{}
	// hintedTx is the highest transaction id whose events were appended, for the next hint's payload.
	hintedTx atomic.Uint64
	states   *lru.Cache[string, cachedState]
	// origins are streams' first events, and committed the events groups read by id or appended: neither
	// ever changes once committed (see Reads.Origin and Reads.Event).
	origins   *lru.Cache[string, Event]
	committed *lru.Cache[uuid.UUID, Event]
	// decode, when set, gives the events this store keeps in memory their Data (WithPayloads).
	decode Decoder
}

// stateCacheSize bounds how many streams' folded states a store keeps in memory (see cachedState),
// originCacheSize how many streams' first events, and eventCacheSize how many events by id.
const (
	stateCacheSize  = 100_000
	originCacheSize = 50_000
	eventCacheSize  = 50_000
)

// New returns a store on pool.
func New(pool *pgxpool.Pool) *Store {
	states, err := lru.New[string, cachedState](stateCacheSize)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	origins, err := lru.New[string, Event](originCacheSize)
	if err != nil {
		panic(err)
	}
	committed, err := lru.New[uuid.UUID, Event](eventCacheSize)
	if err != nil {
		panic(err)
	}
	return &Store{pool: pool, hints: make(chan struct{}, 1), states: states, origins: origins, committed: committed}
}

// WithPayloads makes the store decode, once, the payload of every event it keeps in memory for Reads.Origin
// and Reads.Event into the event's Data, so that decisions that read the same events again and again (an
// account's opening, a payment's, a step's precondition) find them decoded. decode is the event
// contract's decoder.
func (s *Store) WithPayloads(decode Decoder) *Store {
	s.decode = decode
	return s
}

// Pool is the store's connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Append appends events to one stream if it is at expectedVersion (or AnyVersion), in one transaction:
// the stream's advisory lock is the transaction's first statement, so no transaction id is assigned
// before the stream has been seen, and versions of one stream can never sort out of order in the log.
// A version mismatch is a *ConflictError; an event id that already exists is a *DuplicateError.
func (s *Store) Append(ctx context.Context, aggregateType, aggregateID string, expectedVersion int, evs []NewEvent) ([]Event, error) {
	if len(evs) == 0 {
		return nil, errors.New("append: no events")
	}
	var out []Event
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockStream(ctx, tx, aggregateID); err != nil {
			return err
		}
		var version int
		if err := tx.QueryRow(ctx, `select coalesce(max(version), 0) from events where aggregate_id = $1`,
			aggregateID).Scan(&version); err != nil {
			return fmt.Errorf("read version of %s: %w", aggregateID, err)
		}
		if expectedVersion != AnyVersion && version != expectedVersion {
			return &ConflictError{AggregateID: aggregateID, Expected: expectedVersion, Actual: version}
		}
		var err error
		out, err = insert(ctx, tx, aggregateType, aggregateID, version, evs)
		return err
	})
	if err != nil {
		return nil, MarkUnavailable(s.explainDuplicate(ctx, err, aggregateID, evs))
	}
	if len(out) > 0 {
		s.hint(out[len(out)-1].Position.TxID)
	}
	return out, nil
}

// EventsByID returns the stored events with the given ids (in log order); missing ids are left out.
func (s *Store) EventsByID(ctx context.Context, ids ...uuid.UUID) ([]Event, error) {
	evs, err := eventsByID(ctx, s.pool, ids)
	return evs, MarkUnavailable(err)
}

// Origins returns the first event of each of the given streams that exists, by stream.
func (s *Store) Origins(ctx context.Context, streams ...string) (map[string]Event, error) {
	rows, err := s.pool.Query(ctx, originsSQL, streams)
	if err != nil {
		return nil, MarkUnavailable(fmt.Errorf("read stream origins: %w", err))
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, MarkUnavailable(err)
	}
	out := make(map[string]Event, len(evs))
	for _, e := range evs {
		out[e.AggregateID] = e
	}
	return out, nil
}

// ReadLog returns up to limit events after the position `after`, in log order, and only events whose
// transactions are below the snapshot's xmin horizon: every transaction that could still commit an event
// that sorts before them has finished. A consumer that checkpoints the last position it got and reads on
// from there sees every committed event exactly once, whatever order transactions commit in.
func (s *Store) ReadLog(ctx context.Context, after Position, limit int) ([]Event, error) {
	evs, err := ReadLog(ctx, s.pool, after, limit)
	return evs, MarkUnavailable(err)
}

// Querier is what ReadLog needs: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ReadLog is Store.ReadLog on any querier, such as a consumer's own transaction.
func ReadLog(ctx context.Context, q Querier, after Position, limit int) ([]Event, error) {
	rows, err := q.Query(ctx, `
		select `+eventColumns+`
		from events
		where (tx_id, global_position) > ($1::text::xid8, $2)
		  and tx_id < pg_snapshot_xmin(pg_current_snapshot())
		order by events.tx_id, events.global_position
		limit $3`,
		strconv.FormatUint(after.TxID, 10), after.GlobalPosition, limit)
	if err != nil {
		return nil, fmt.Errorf("read log after %v: %w", after, err)
	}
	return scanEvents(rows)
}

// Head is the position of the last event visible to consumers now (below the horizon), and when it was
// appended; Start and the zero time for an empty log.
func (s *Store) Head(ctx context.Context) (Position, time.Time, error) {
	p, at, err := Head(ctx, s.pool)
	return p, at, MarkUnavailable(err)
}

// Head is Store.Head on any querier.
func Head(ctx context.Context, q Querier) (Position, time.Time, error) {
	var p Position
	var at time.Time
	err := q.QueryRow(ctx, `
		select tx_id::text::bigint, global_position, created_at from events
		where tx_id < pg_snapshot_xmin(pg_current_snapshot())
		order by events.tx_id desc, events.global_position desc limit 1`).Scan(&p.TxID, &p.GlobalPosition, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return Start, time.Time{}, nil
	}
	if err != nil {
		return Start, time.Time{}, fmt.Errorf("read log head: %w", err)
	}
	return p, at, nil
}

// eventColumns names its tx_id::text::bigint "tx_id", and a bare ORDER BY name means the output column
// first: order by the table's columns (events.tx_id) or the index cannot serve the order and every read
// of the log sorts the whole table.
const eventColumns = `global_position, tx_id::text::bigint, event_id, aggregate_id, aggregate_type,
	event_type, version, payload, metadata, created_at`

func scanEvents(rows pgx.Rows) ([]Event, error) {
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		// Payload and metadata are scanned as raw bytes: scanned as json.RawMessage, pgx runs them through
		// encoding/json, which was a third of a command's CPU.
		// The id is scanned as [16]byte, which pgx decodes natively (a uuid.UUID goes through sql.Scanner).
		if err := rows.Scan(&e.Position.GlobalPosition, &e.Position.TxID, (*[16]byte)(&e.ID), &e.AggregateID,
			&e.AggregateType, &e.Type, &e.Version, (*[]byte)(&e.Payload), (*[]byte)(&e.Metadata), &e.CreatedAt); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

const (
	lockSQL       = `select pg_advisory_xact_lock(hashtextextended($1, 0))`
	streamSQL     = `select ` + eventColumns + ` from events where aggregate_id = $1 and version > $2 order by version`
	eventsByIDSQL = `select ` + eventColumns + ` from events
		where event_id = any($1) order by events.tx_id, events.global_position`
)

func eventsByID(ctx context.Context, q Querier, ids []uuid.UUID) ([]Event, error) {
	rows, err := q.Query(ctx, eventsByIDSQL, ids)
	if err != nil {
		return nil, fmt.Errorf("load events by id: %w", err)
	}
	return scanEvents(rows)
}

func lockStream(ctx context.Context, tx pgx.Tx, aggregateID string) error {
	if _, err := tx.Exec(ctx, lockSQL, aggregateID); err != nil {
		return fmt.Errorf("lock stream %s: %w", aggregateID, err)
	}
	return nil
}

// insert appends evs after version in one multi-row statement and returns them as stored.
func insert(ctx context.Context, tx pgx.Tx, aggregateType, aggregateID string, version int, evs []NewEvent) ([]Event, error) {
	n := len(evs)
	idCol := make([]uuid.UUID, n)
	typeCol := make([]string, n)
	versionCol := make([]int32, n)
	payloadCol := make([]string, n)
	metaCol := make([]string, n)
	out := make([]Event, n)
	for i, e := range evs {
		payload, meta, err := e.encode()
		if err != nil {
			return nil, err
		}
		idCol[i], typeCol[i], versionCol[i] = e.ID, e.Type, int32(version+1+i)
		payloadCol[i], metaCol[i] = string(payload), string(meta)
		out[i] = Event{ID: e.ID, AggregateID: aggregateID, AggregateType: aggregateType, Type: e.Type,
			Version: version + 1 + i, Payload: payload, Metadata: meta}
	}
	rows, err := tx.Query(ctx, `
		insert into events (event_id, aggregate_id, aggregate_type, event_type, version, payload, metadata)
		select id, $1, $2, typ, ver, payload::jsonb, meta::jsonb
		from unnest($3::uuid[], $4::text[], $5::int[], $6::text[], $7::text[]) as e(id, typ, ver, payload, meta)
		order by ver
		returning version, global_position, tx_id::text::bigint, created_at`,
		aggregateID, aggregateType, idCol, typeCol, versionCol, payloadCol, metaCol)
	if err != nil {
		return nil, fmt.Errorf("insert events into %s: %w", aggregateID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		var p Position
		var at time.Time
		if err := rows.Scan(&v, &p.GlobalPosition, &p.TxID, &at); err != nil {
			return nil, fmt.Errorf("insert events into %s: %w", aggregateID, err)
		}
		out[v-version-1].Position, out[v-version-1].CreatedAt = p, at
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("insert events into %s: %w", aggregateID, err)
	}
	return out, nil
}

func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// explainDuplicate turns a unique violation of the event id into a *DuplicateError carrying the stored
// events, and a unique violation of (aggregate_id, version) into a *ConflictError.
func (s *Store) explainDuplicate(ctx context.Context, err error, aggregateID string, evs []NewEvent) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		return err
	}
	switch pgErr.ConstraintName {
	case "events_pkey":
		ids := make([]uuid.UUID, len(evs))
		for i, e := range evs {
			ids[i] = e.ID
		}
		existing, lerr := s.EventsByID(ctx, ids...)
		if lerr != nil {
			return errors.Join(err, lerr)
		}
		if len(existing) == 0 { // the clashing transaction rolled back after all
			return err
		}
		return &DuplicateError{Existing: existing}
	case "events_stream_version_key":
		return &ConflictError{AggregateID: aggregateID, Expected: -1, Actual: -1}
	}
	return err
}
