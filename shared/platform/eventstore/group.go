package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Op is one command of a group that ExecuteAll runs in a shared transaction: a decision on one stream,
// with the stored events it reads besides the stream. Build it with NewOp.
type Op struct {
	// Stream is the aggregate id the decision appends to; its advisory lock is held while it decides.
	Stream string
	// Dedupe, when set, is the id of the event that stands for the command: if it is in the log (or was
	// produced by an earlier op of the same group), the op is Replayed with it and decides nothing.
	Dedupe uuid.UUID
	// Needs are ids of events the decision reads (Reads.Event), such as a step's precondition.
	Needs []uuid.UUID
	// Origins are streams whose first event the decision reads (Reads.Origin), such as the opening of an
	// account that a payment names.
	Origins []string
	// With are ops that commit with this one or not at all: each decides on its own stream right after it
	// (and sees its events through Reads.Event), and if any of them fails, none of their events, nor this
	// op's, is appended, and this op fails with that error. A joined op that decides nothing (no events, no
	// error) has nothing to add. When this op is Replayed, the ops joined to it are not decided: they
	// committed with it. Their events follow this op's in its Result.
	With []*Op

	agg    erased
	decide func(state any, version int, r Reads) ([]NewEvent, error)
}

// Decision is a decision on a stream's state and version, given what the op asked to read.
type Decision[S any] func(state S, version int, r Reads) ([]NewEvent, error)

// NewOp returns an op deciding on stream of aggregate agg.
func NewOp[S any](agg Aggregate[S], stream string, decide Decision[S]) *Op {
	return &Op{Stream: stream, agg: erase(agg), decide: func(state any, version int, r Reads) ([]NewEvent, error) {
		return decide(state.(S), version, r)
	}}
}

// Reads are the events an op asked for: by id (its Needs, and events produced earlier in its group), and
// the first event of its Origins; and the group's transaction time.
type Reads struct {
	byID    map[uuid.UUID]Event
	origins map[string]Event
	now     time.Time
}

// Now is the time of the group's transaction, the CreatedAt of every event it appends.
func (r Reads) Now() time.Time { return r.now }

// Event returns the stored event with id, or one produced earlier in the same group (whose Position is
// known only after the commit).
func (r Reads) Event(id uuid.UUID) (Event, bool) {
	e, ok := r.byID[id]
	return e, ok
}

// Origin returns the first event of stream, if the stream exists.
func (r Reads) Origin(stream string) (Event, bool) {
	e, ok := r.origins[stream]
	return e, ok
}

// Outcome is what ExecuteAll did with one op: its Result, or the error that failed it alone.
type Outcome struct {
	Result Result
	Err    error
}

// erased is an Aggregate with its state type hidden, so that one group can hold ops on several kinds of
// aggregate.
type erased struct {
	typ      string
	every    int
	schema   int
	zero     func() any
	evolve   func(state any, e Event) (any, error)
	restore  func(raw []byte) (any, error)
	snapshot func(state any) ([]byte, error)
}

func erase[S any](agg Aggregate[S]) erased {
	return erased{
		typ:    agg.Type,
		every:  agg.SnapshotEvery,
		schema: agg.SnapshotSchema,
		zero:   func() any { var s S; return s },
		evolve: func(state any, e Event) (any, error) { return agg.Evolve(state.(S), e) },
		restore: func(raw []byte) (any, error) {
			var s S
			err := json.Unmarshal(raw, &s)
			return s, err
		},
		snapshot: func(state any) ([]byte, error) { return json.Marshal(state.(S)) },
	}
}

// maxGroupAttempts bounds how often a group is run again after its insert met an event id that a
// concurrent transaction committed first (each attempt learns that id, so the next one replays it).
const maxGroupAttempts = 5

// ExecuteAll runs ops in one transaction and two round trips to the database:
//
//  1. begin, lock every stream the ops append to (one advisory lock each, taken in a fixed order so that
//     two groups never deadlock; no transaction id is assigned before them), and read in the same
//     pipeline the events the ops name (dedupe ids, needs), the first events of their origins, and each
//     stream's latest snapshot and the events after it;
//  2. decide each op in order on its stream's state (ops on one stream see each other's events), then
//     insert every new event in one statement, refresh snapshots that are due, and commit.
//
// An op fails alone for its own reason (a domain error, a corrupt stream): its neighbours still commit.
// Every op is answered only after the commit. An error returned by ExecuteAll itself means the database
// failed: nothing committed, or the commit's outcome is unknown, and a retry finds it through the ops'
// deterministic ids.
func (s *Store) ExecuteAll(ctx context.Context, ops []*Op) ([]Outcome, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	known := map[uuid.UUID]bool{}
	for attempt := 1; ; attempt++ {
		out, err := s.runGroup(ctx, ops, known)
		var clash *clashError
		if err == nil || !errors.As(err, &clash) || attempt == maxGroupAttempts {
			return out, MarkUnavailable(err)
		}
		// An event id this group produced was committed by a concurrent transaction (two branches of a
		// step racing on two streams): run again reading that id, and the op that produced it replays
		// it. A version clash (a writer that does not take the lock) is decided afresh.
		if clash.id != uuid.Nil {
			known[clash.id] = true
		}
	}
}

// group is one attempt at running ops: what the first round trip read and what the decisions produced.
type group struct {
	ops     []*Op
	now     time.Time
	byID    map[uuid.UUID]Event
	origins map[string]Event
	streams map[string]*streamState
	out     []Outcome
	// produced are the new events in insertion order.
	produced []producedEvent
}

// producedEvent is a new event of the group and its encoded metadata.
type producedEvent struct {
	Event Event
	meta  []byte
}

type streamState struct {
	agg         erased
	state       any
	version     int
	snapVersion int
	err         error
}

// cachedState is a stream's state as a group of this store left it after its commit, kept in memory like
// a snapshot: the next group on the stream reads only the events after its version (usually none, or the
// few another replica appended) instead of the snapshot row and the tail behind it. It can be behind the
// log, never ahead of it, as it is kept only after a commit; the stream's lock and the version check of
// every event folded onto it keep it exact.
type cachedState struct {
	typ         string
	schema      int
	version     int
	snapVersion int
	state       any
}

// runGroup is one attempt of ExecuteAll: the group's two round trips on one connection, then the states
// it left kept in memory. known are event ids to read as well, found committed by an earlier attempt.
func (s *Store) runGroup(ctx context.Context, ops []*Op, known map[uuid.UUID]bool) ([]Outcome, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	g := &group{ops: ops, out: make([]Outcome, len(ops))}
	if err := g.read(ctx, conn, s, known); err != nil {
		rollback(ctx, conn)
		return nil, err
	}
	g.decide()
	if err := g.write(ctx, conn); err != nil {
		rollback(ctx, conn)
		return nil, err
	}
	if len(g.produced) > 0 {
		s.hint(g.produced[0].Event.Position.TxID) // one transaction: every event of the group has its id
	}
	for id, st := range g.streams {
		if st.err == nil {
			s.states.Add(id, cachedState{typ: st.agg.typ, schema: st.agg.schema, version: st.version,
				snapVersion: st.snapVersion, state: st.state})
		}
	}
	for _, p := range g.produced {
		s.committed.Add(p.Event.ID, p.Event)
		if p.Event.Version == 1 {
			s.origins.Add(p.Event.AggregateID, p.Event)
		}
	}
	return g.out, nil
}

// rollback ends a transaction left open by a failed round trip. A connection that cannot even do that is
// closed by the pool on release, as it is not idle.
func rollback(ctx context.Context, conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, _ = conn.Exec(ctx, "rollback")
}

// The reads of a group take arrays of ids and must stay index lookups however long the arrays and the log
// grow: written as a plain join or "= any($1)", the planner may (and, measured, did) hash the array and scan
// the whole events table for every group. A LATERAL subquery with OFFSET 0 cannot be flattened into a
// join, so each element is one parameterised index probe.
const (
	// lockAllSQL takes the advisory lock of every stream in the order of their keys: every group locks in
	// that order, so two groups that share streams wait for each other and never deadlock.
	lockAllSQL = `select count(pg_advisory_xact_lock(k)) from (
		select distinct hashtextextended(id, 0) as k from unnest($1::text[]) as id order by 1) as keys`
	// knownSQL reads the events with the given ids (by the primary key).
	knownSQL = `select e.* from unnest($1::uuid[]) as want(id) cross join lateral (
		select ` + eventColumns + ` from events where events.event_id = want.id offset 0) as e`
	// originsSQL reads the first event of each given stream (by the stream's version key).
	originsSQL = `select e.* from unnest($1::text[]) as want(id) cross join lateral (
		select ` + eventColumns + ` from events where events.aggregate_id = want.id and events.version = 1
		offset 0) as e`
	// snapshotsSQL and tailsSQL read each stream's snapshot (of the expected type and schema; a schema of
	// -1 matches none) and the events after it; or, for a stream whose state is cached (after >= 0), no
	// snapshot and the events after the cached version.
	snapshotsSQL = `select s.aggregate_id, s.version, s.state
		from unnest($1::text[], $2::text[], $3::int[], $4::int[]) as want(id, typ, schema, after)
		cross join lateral (select * from snapshots where snapshots.aggregate_id = want.id
			and snapshots.aggregate_type = want.typ and snapshots.schema_version = want.schema offset 0) as s
		where want.after < 0`
	tailsSQL = `select e.* from unnest($1::text[], $2::text[], $3::int[], $4::int[]) as want(id, typ, schema, after)
		cross join lateral (select ` + eventColumns + ` from events
			where events.aggregate_id = want.id and events.version > case when want.after >= 0 then want.after
				else coalesce((select s.version from snapshots s where s.aggregate_id = want.id
					and s.aggregate_type = want.typ and s.schema_version = want.schema), 0) end
			order by events.version offset 0) as e`
)

// read is the first round trip: begin, locks, and everything the ops read that the store does not keep in
// memory: a stream's state after the version it cached, and the first events of streams it has not seen.
func (g *group) read(ctx context.Context, conn *pgxpool.Conn, s *Store, known map[uuid.UUID]bool) error {
	g.streams = map[string]*streamState{}
	var streams, types []string
	var schemas, after []int32
	idSet := map[uuid.UUID]bool{}
	for id := range known {
		idSet[id] = true
	}
	originSet := map[string]bool{}
	for _, op := range everyOp(g.ops) {
		if st, ok := g.streams[op.Stream]; ok {
			if st.agg.typ != op.agg.typ {
				return fmt.Errorf("stream %s named as both %s and %s", op.Stream, st.agg.typ, op.agg.typ)
			}
		} else {
			st := &streamState{agg: op.agg, state: op.agg.zero()}
			from := int32(-1)
			if c, ok := s.states.Get(op.Stream); ok && c.typ == op.agg.typ && c.schema == op.agg.schema {
				st.state, st.version, st.snapVersion = c.state, c.version, c.snapVersion
				from = int32(c.version)
			}
			g.streams[op.Stream] = st
			streams, types = append(streams, op.Stream), append(types, op.agg.typ)
			schema := int32(-1)
			if op.agg.every > 0 {
				schema = int32(op.agg.schema)
			}
			schemas, after = append(schemas, schema), append(after, from)
		}
		if op.Dedupe != uuid.Nil {
			idSet[op.Dedupe] = true
		}
		for _, id := range op.Needs {
			idSet[id] = true
		}
		for _, o := range op.Origins {
			originSet[o] = true
		}
	}
	g.byID = make(map[uuid.UUID]Event, len(idSet))
	ids := make([][16]byte, 0, len(idSet)) // [16]byte: pgx encodes it natively, a uuid.UUID through its Valuer
	for id := range idSet {
		if e, ok := s.committed.Get(id); ok {
			g.byID[id] = e
		} else {
			ids = append(ids, id)
		}
	}
	g.origins = make(map[string]Event, len(originSet))
	origins := make([]string, 0, len(originSet))
	for o := range originSet {
		if e, ok := s.origins.Get(o); ok {
			g.origins[o] = e
		} else {
			origins = append(origins, o)
		}
	}

	b := &pgx.Batch{}
	b.Queue("begin")
	b.Queue(lockAllSQL, streams)
	b.Queue("select now()")
	if len(ids) > 0 {
		b.Queue(knownSQL, ids)
	}
	if len(origins) > 0 {
		b.Queue(originsSQL, origins)
	}
	b.Queue(snapshotsSQL, streams, types, schemas, after)
	b.Queue(tailsSQL, streams, types, schemas, after)
	br := conn.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("lock streams: %w", err)
	}
	if err := br.QueryRow().Scan(&g.now); err != nil {
		return fmt.Errorf("read transaction time: %w", err)
	}
	if len(ids) > 0 {
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("look up events by id: %w", err)
		}
		found, err := scanEvents(rows)
		if err != nil {
			return err
		}
		for _, e := range found {
			g.byID[e.ID] = keep(s, s.committed, e.ID, e)
		}
	}
	if len(origins) > 0 {
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("read stream origins: %w", err)
		}
		found, err := scanEvents(rows)
		if err != nil {
			return err
		}
		for _, e := range found {
			g.origins[e.AggregateID] = keep(s, s.origins, e.AggregateID, e)
		}
	}
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("read snapshots: %w", err)
	}
	for rows.Next() {
		var id string
		var version int
		var raw []byte
		if err := rows.Scan(&id, &version, &raw); err != nil {
			rows.Close()
			return fmt.Errorf("read snapshots: %w", err)
		}
		st := g.streams[id]
		if st.state, err = st.agg.restore(raw); err != nil {
			st.err = fmt.Errorf("decode snapshot of %s: %w", id, err)
			st.state = st.agg.zero()
			continue
		}
		st.version, st.snapVersion = version, version
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read snapshots: %w", err)
	}
	rows, err = br.Query()
	if err != nil {
		return fmt.Errorf("read streams: %w", err)
	}
	tail, err := scanEvents(rows)
	if err != nil {
		return err
	}
	for _, e := range tail {
		st := g.streams[e.AggregateID]
		if st.err == nil {
			st.err = st.apply(e)
		}
	}
	return br.Close()
}

// keep keeps e, an event read from the log (and so committed: it can never change), in cache under key for
// the next groups that read it, with its payload decoded when the store has a decoder. An event that does
// not decode is returned as it is and not kept: the decision that reads it reports it.
func keep[K comparable](s *Store, cache *lru.Cache[K, Event], key K, e Event) Event {
	if s.decode != nil {
		data, err := s.decode(e.Type, e.Payload)
		if err != nil {
			return e
		}
		e.Data = data
	}
	cache.Add(key, e)
	return e
}

// apply folds one event of the stream into its state, checking that it is the stream's next version.
func (st *streamState) apply(e Event) error {
	if e.AggregateType != st.agg.typ {
		return fmt.Errorf("stream %s holds a %s event, not %s", e.AggregateID, e.AggregateType, st.agg.typ)
	}
	if e.Version != st.version+1 {
		return fmt.Errorf("stream %s: version %d follows %d", e.AggregateID, e.Version, st.version)
	}
	state, err := st.agg.evolve(st.state, e)
	if err != nil {
		return fmt.Errorf("evolve %s v%d: %w", e.AggregateID, e.Version, err)
	}
	st.state, st.version = state, e.Version
	return nil
}

// decide runs every op in order. An op whose dedupe id (or any id it produces) is already in the log, or
// was produced by an earlier op of the group, is Replayed with those events. An op and the ops joined to
// it (Op.With) are decided as one: all of their events are kept, or none.
func (g *group) decide() {
	for i, op := range g.ops {
		if op.Dedupe != uuid.Nil {
			if e, ok := g.byID[op.Dedupe]; ok {
				g.out[i] = Outcome{Result: Result{Events: []Event{e}, Replayed: true}}
				continue
			}
		}
		if len(op.With) == 0 {
			g.out[i] = g.decideOne(op)
			continue
		}
		undo := g.savepoint(op)
		out := g.decideOne(op)
		for _, joined := range op.With {
			if out.Err != nil || out.Result.Replayed {
				break
			}
			more := g.decideOne(joined)
			if more.Err == nil && more.Result.Replayed {
				more.Err = fmt.Errorf("joined op on %s: its event is already in the log without the op it joins", joined.Stream)
			}
			if more.Err != nil {
				out = Outcome{Err: more.Err}
				break
			}
			out.Result.Events = append(out.Result.Events, more.Result.Events...)
		}
		if out.Err != nil {
			undo()
		}
		g.out[i] = out
	}
}

// decideOne decides one op on its stream's state, and appends what it decided.
func (g *group) decideOne(op *Op) Outcome {
	reads := Reads{byID: g.byID, origins: g.origins, now: g.now}
	st := g.streams[op.Stream]
	if st.err != nil {
		return Outcome{Err: st.err}
	}
	evs, err := op.decide(st.state, st.version, reads)
	if err != nil || len(evs) == 0 {
		return Outcome{Err: err}
	}
	if existing := g.existing(evs); existing != nil {
		return Outcome{Result: Result{Events: existing, Replayed: true}}
	}
	made, err := g.append(op, st, evs)
	if err != nil {
		return Outcome{Err: err}
	}
	return Outcome{Result: Result{Events: made}}
}

// savepoint remembers what deciding op and the ops joined to it can change (their streams' states, the
// events produced so far) and returns the function that puts it back.
func (g *group) savepoint(op *Op) (undo func()) {
	type saved struct {
		state   any
		version int
	}
	states := map[string]saved{}
	for _, o := range append([]*Op{op}, op.With...) {
		st := g.streams[o.Stream]
		states[o.Stream] = saved{st.state, st.version}
	}
	produced := len(g.produced)
	return func() {
		for stream, s := range states {
			st := g.streams[stream]
			st.state, st.version = s.state, s.version
		}
		for _, p := range g.produced[produced:] {
			delete(g.byID, p.Event.ID)
		}
		g.produced = g.produced[:produced]
	}
}

// everyOp is ops and the ops joined to them, in the order they are decided.
func everyOp(ops []*Op) []*Op {
	all := make([]*Op, 0, len(ops))
	for _, op := range ops {
		all = append(all, op)
		all = append(all, op.With...)
	}
	return all
}

// existing returns the known events carrying the ids of evs, when any of them is known.
func (g *group) existing(evs []NewEvent) []Event {
	var out []Event
	for _, ne := range evs {
		if e, ok := g.byID[ne.ID]; ok {
			out = append(out, e)
		}
	}
	return out
}

// append encodes an op's new events, folds them into the stream's state (so the next op on the stream
// sees them) and queues them for the insert. The stream's state is left as it was if any of them fails.
func (g *group) append(op *Op, st *streamState, evs []NewEvent) ([]Event, error) {
	made := make([]Event, len(evs))
	metas := make([][]byte, len(evs))
	state, version := st.state, st.version
	for i, ne := range evs {
		payload, meta, err := ne.encode()
		if err != nil {
			return nil, err
		}
		e := Event{ID: ne.ID, AggregateID: op.Stream, AggregateType: st.agg.typ, Type: ne.Type,
			Version: version + 1, Payload: payload, Metadata: meta, CreatedAt: g.now, Data: ne.Data}
		if state, err = st.agg.evolve(state, e); err != nil {
			return nil, fmt.Errorf("evolve %s v%d: %w", e.AggregateID, e.Version, err)
		}
		made[i], metas[i], version = e, meta, e.Version
	}
	st.state, st.version = state, version
	for i, e := range made {
		g.byID[e.ID] = e
		g.produced = append(g.produced, producedEvent{Event: e, meta: metas[i]})
	}
	return made, nil
}

const insertAllSQL = `
	insert into events (event_id, aggregate_id, aggregate_type, event_type, version, payload, metadata)
	select id, agg, typ, et, ver, payload::jsonb, meta::jsonb
	from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[])
		with ordinality as e(id, agg, typ, et, ver, payload, meta, ord)
	order by ord
	returning event_id, global_position, tx_id::text::bigint`

const saveSnapshotsSQL = `
	insert into snapshots (aggregate_id, aggregate_type, version, schema_version, state)
	select id, typ, ver, schema, state::jsonb
	from unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::text[]) as s(id, typ, ver, schema, state)
	on conflict (aggregate_id) do update
	set version = excluded.version, schema_version = excluded.schema_version,
	    state = excluded.state, updated_at = now()
	where snapshots.version < excluded.version or snapshots.schema_version <> excluded.schema_version`

// write is the second round trip: the insert of every new event, the snapshots that are due, and the
// commit. A unique violation of the events' keys is a *clashError, so the group can run again.
func (g *group) write(ctx context.Context, conn *pgxpool.Conn) error {
	n := len(g.produced)
	b := &pgx.Batch{}
	if n > 0 {
		ids := make([][16]byte, n)
		aggs, typs, ets := make([]string, n), make([]string, n), make([]string, n)
		vers := make([]int32, n)
		payloads, metas := make([]string, n), make([]string, n)
		for i, p := range g.produced {
			e := p.Event
			ids[i], aggs[i], typs[i], ets[i], vers[i] = e.ID, e.AggregateID, e.AggregateType, e.Type, int32(e.Version)
			payloads[i], metas[i] = string(e.Payload), string(p.meta)
		}
		b.Queue(insertAllSQL, ids, aggs, typs, ets, vers, payloads, metas)
	}
	snaps, err := g.snapshots()
	if err != nil {
		return err
	}
	if snaps != nil {
		b.Queue(saveSnapshotsSQL, snaps...)
	}
	b.Queue("commit")
	br := conn.SendBatch(ctx, b)
	defer br.Close()
	if n > 0 {
		rows, err := br.Query()
		if err != nil {
			return explainClash(fmt.Errorf("insert events: %w", err))
		}
		at := make(map[uuid.UUID]Position, n)
		for rows.Next() {
			var id uuid.UUID
			var p Position
			if err := rows.Scan((*[16]byte)(&id), &p.GlobalPosition, &p.TxID); err != nil {
				rows.Close()
				return fmt.Errorf("insert events: %w", err)
			}
			at[id] = p
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return explainClash(fmt.Errorf("insert events: %w", err))
		}
		for i := range g.produced {
			g.produced[i].Event.Position = at[g.produced[i].Event.ID]
		}
		// Every result holding an event of this group learns its position, replays of it by a later op
		// of the group included.
		for i := range g.out {
			evs := g.out[i].Result.Events
			for j := range evs {
				if p, ok := at[evs[j].ID]; ok {
					evs[j].Position = p
				}
			}
		}
	}
	if snaps != nil {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("save snapshots: %w", err)
		}
	}
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return br.Close()
}

// snapshotStreams are the streams whose snapshot is due: SnapshotEvery events or more since the last.
func (g *group) snapshotStreams() []string {
	var due []string
	for id, st := range g.streams {
		if st.agg.every > 0 && st.err == nil && st.version-st.snapVersion >= st.agg.every {
			due = append(due, id)
		}
	}
	sort.Strings(due)
	return due
}

// snapshots are the arguments of saveSnapshotsSQL for the streams that are due, or nil.
func (g *group) snapshots() ([]any, error) {
	due := g.snapshotStreams()
	if len(due) == 0 {
		return nil, nil
	}
	typs, states := make([]string, len(due)), make([]string, len(due))
	vers, schemas := make([]int32, len(due)), make([]int32, len(due))
	for i, id := range due {
		st := g.streams[id]
		raw, err := st.agg.snapshot(st.state)
		if err != nil {
			return nil, fmt.Errorf("encode snapshot of %s: %w", id, err)
		}
		typs[i], vers[i], schemas[i], states[i] = st.agg.typ, int32(st.version), int32(st.agg.schema), string(raw)
		st.snapVersion = st.version // as the cache will know it, once committed
	}
	return []any{due, typs, vers, schemas, states}, nil
}

// clashError is a unique violation of the events' keys met by a group's insert: an event id that a
// concurrent transaction committed first (id), or a stream version taken by a writer that does not lock.
type clashError struct {
	id  uuid.UUID
	err error
}

func (e *clashError) Error() string { return e.err.Error() }
func (e *clashError) Unwrap() error { return e.err }

// Is makes a clash on an event id match ErrDuplicate, and one on a version ErrConflict.
func (e *clashError) Is(target error) bool {
	return (target == ErrDuplicate && e.id != uuid.Nil) || (target == ErrConflict && e.id == uuid.Nil)
}

// explainClash turns a unique violation of the events' primary key into a *clashError naming the event id
// (from the error's detail, "Key (event_id)=(...) already exists."), and one of a stream's version into a
// *clashError without an id; any other error is returned as it is.
func explainClash(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		return err
	}
	switch pgErr.ConstraintName {
	case "events_stream_version_key":
		return &clashError{err: err}
	case "events_pkey":
		_, rest, _ := strings.Cut(pgErr.Detail, "=(")
		value, _, _ := strings.Cut(rest, ")")
		if id, perr := uuid.Parse(value); perr == nil {
			return &clashError{id: id, err: err}
		}
	}
	return err
}
