package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"upi/shared/platform/eventstore"
)

// Quarantine: an event a consumer cannot decode or apply holds back its own stream only.
//
// When a batch fails for a lasting reason (not the database being unavailable, nor a moved checkpoint),
// the runner applies it again one event at a time and sets aside each event that fails, with its error, in
// consumer_quarantine; the later events of that stream are set aside behind it (with no error: they wait),
// and every other event is applied, and the checkpoint moves past the batch, in one transaction for a
// projection. From then on the live consumer sets aside every event of a held stream as it reads it, so the
// stream keeps its order. An operator who has fixed the cause (a new build that decodes the event, a
// repaired read model) releases the stream (bin/event-consumers quarantine release); the consumer then
// applies what it holds of that stream, in log order, and marks it released in the same transaction: each
// event is applied once, by the live path or by the release, never both. If an event still fails, it and
// those behind it stay held, with the new error.
//
// The metric consumer_quarantined_events{consumer} counts the held events (the alert); the events and their
// errors are listed by bin/event-consumers quarantine list.

// maxQuarantinePerBatch bounds how many streams one batch may set aside: a batch where more fail is
// taken as a fault of the consumer itself (a missing table, a bug that fails every event), not of some
// events, and it is retried whole, as before, with the consumer stalled and loud.
const maxQuarantinePerBatch = 10

// Lasting is a Processor that says which of its errors are about the events it was handed (worth
// setting those events aside) rather than about the moment (a dependency down: retry the batch). A
// Processor that does not implement it never has events quarantined.
type Lasting interface {
	Lasting(err error) bool
}

// heldEvent is an event set aside: failed with err, or waiting (err nil) behind an earlier one of its
// stream.
type heldEvent struct {
	e   eventstore.Event
	err error
}

// lasting reports whether err, from applying or handling a batch, is about its events.
func (w *worker) lasting(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, errCheckpointMoved) ||
		errors.Is(eventstore.MarkUnavailable(err), eventstore.ErrUnavailable) {
		return false
	}
	if w.proj != nil {
		return true
	}
	l, ok := w.proc.(Lasting)
	return ok && l.Lasting(err)
}

// split sets aside the events of streams already held: they wait behind the held event.
func (w *worker) split(batch []eventstore.Event) (live []eventstore.Event, hold []heldEvent) {
	if len(w.held) == 0 {
		return batch, nil
	}
	live = make([]eventstore.Event, 0, len(batch))
	for _, e := range batch {
		if w.held[e.AggregateID] {
			hold = append(hold, heldEvent{e: e})
		} else {
			live = append(live, e)
		}
	}
	return live, hold
}

// holdEvents records events set aside (tx's caller commits them with the checkpoint that passes them).
func holdEvents(ctx context.Context, q execQuerier, consumer string, hold []heldEvent) error {
	for _, h := range hold {
		var reason *string
		if h.err != nil {
			s := h.err.Error()
			reason = &s
		}
		if _, err := q.Exec(ctx, `insert into consumer_quarantine
			(consumer, event_id, aggregate_id, tx_id, global_position, event_type, error)
			values ($1, $2, $3, $4::text::xid8, $5, $6, $7) on conflict (consumer, event_id) do nothing`,
			consumer, h.e.ID, h.e.AggregateID, strconv.FormatUint(h.e.Position.TxID, 10), h.e.Position.GlobalPosition,
			h.e.Type, reason); err != nil {
			return fmt.Errorf("quarantine event %s for %s: %w", h.e.ID, consumer, err)
		}
	}
	return nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func heldStreams(ctx context.Context, q querier, consumer string) (map[string]bool, error) {
	rows, err := q.Query(ctx, `select distinct aggregate_id from consumer_quarantine
		where consumer = $1 and status = 'held'`, consumer)
	if err != nil {
		return nil, fmt.Errorf("read held streams of %s: %w", consumer, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read held streams of %s: %w", consumer, err)
	}
	held := make(map[string]bool, len(ids))
	for _, id := range ids {
		held[id] = true
	}
	return held, nil
}

// isolateFunc applies live one event at a time, after from, setting aside each event that fails for a
// lasting reason and the later events of its stream; it commits what it applied, the held events and the
// checkpoint at to together (a projection) or in that order (a processor). It returns the events set aside,
// or an error when the batch must be retried whole.
type isolateFunc func(ctx context.Context, from, to eventstore.Position, live []eventstore.Event, hold []heldEvent, cause error) ([]heldEvent, error)

// holding returns a set of the streams held by w and by hold, to grow as events fail.
func (w *worker) holding(hold []heldEvent) map[string]bool {
	held := make(map[string]bool, len(w.held)+len(hold))
	for id := range w.held {
		held[id] = true
	}
	for _, h := range hold {
		held[h.e.AggregateID] = true
	}
	return held
}

// tooMany is the error of a batch where more streams failed than a batch may set aside.
func tooMany(cause error) error {
	return fmt.Errorf("more than %d streams of the batch failed; retrying it whole: %w", maxQuarantinePerBatch, cause)
}

// projectionIsolate is isolateFunc for a projection: one transaction, each event under a savepoint.
func (r *Runner) projectionIsolate(w *worker, p Projection) isolateFunc {
	return func(ctx context.Context, from, to eventstore.Position, live []eventstore.Event, hold []heldEvent, cause error) ([]heldEvent, error) {
		held := w.holding(hold)
		tx, err := r.pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: beginWithCustomPlans})
		if err != nil {
			return nil, fmt.Errorf("begin: %w", err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after commit
		if err := advanceCheckpoint(ctx, tx, w.name, from, to); err != nil {
			return nil, err
		}
		failed := 0
		for _, e := range live {
			if held[e.AggregateID] {
				hold = append(hold, heldEvent{e: e})
				continue
			}
			err := applyOne(ctx, tx, p, e)
			if err == nil {
				continue
			}
			if !w.lasting(ctx, err) {
				return nil, err
			}
			if failed++; failed > maxQuarantinePerBatch {
				return nil, tooMany(cause)
			}
			hold = append(hold, heldEvent{e: e, err: err})
			held[e.AggregateID] = true
		}
		if err := holdEvents(ctx, tx, w.name, hold); err != nil {
			return nil, err
		}
		if err := w.syncName(ctx, tx); err != nil {
			return nil, err
		}
		if err := tx.Commit(ctx); err != nil {
			return nil, fmt.Errorf("commit batch: %w", err)
		}
		return hold, nil
	}
}

// applyOne applies e alone under a savepoint of tx: if it fails, tx is as before.
func applyOne(ctx context.Context, tx pgx.Tx, p Projection, e eventstore.Event) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	if err := p.Apply(ctx, sp, []eventstore.Event{e}); err != nil {
		if rerr := sp.Rollback(ctx); rerr != nil {
			return errors.Join(err, fmt.Errorf("rollback to savepoint: %w", rerr))
		}
		return err
	}
	if err := sp.Commit(ctx); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	return nil
}

// processorIsolate is isolateFunc for a processor: each event handled alone (handling is idempotent, so
// those handled before a failure may be handled again), then the held events and the checkpoint in one
// transaction.
func (r *Runner) processorIsolate(w *worker, p Processor) isolateFunc {
	return func(ctx context.Context, from, to eventstore.Position, live []eventstore.Event, hold []heldEvent, cause error) ([]heldEvent, error) {
		held := w.holding(hold)
		failed := 0
		for _, e := range live {
			if held[e.AggregateID] {
				hold = append(hold, heldEvent{e: e})
				continue
			}
			err := p.Handle(ctx, []eventstore.Event{e})
			if err == nil {
				continue
			}
			if !w.lasting(ctx, err) {
				return nil, err
			}
			if failed++; failed > maxQuarantinePerBatch {
				return nil, tooMany(cause)
			}
			hold = append(hold, heldEvent{e: e, err: err})
			held[e.AggregateID] = true
		}
		return hold, commitHeld(ctx, r, w, from, to, hold)
	}
}

// commitHeld records hold and moves the checkpoint from `from` to `to` in one transaction (with NAME, for
// a partition).
func commitHeld(ctx context.Context, r *Runner, w *worker, from, to eventstore.Position, hold []heldEvent) error {
	name := w.name
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after commit
	if err := advanceCheckpoint(ctx, tx, name, from, to); err != nil {
		return err
	}
	if err := holdEvents(ctx, tx, name, hold); err != nil {
		return err
	}
	if err := w.syncName(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// noteHeld adds hold's streams to the worker's held set, counts and logs the events that failed.
func (w *worker) noteHeld(hold []heldEvent) {
	if w.held == nil {
		w.held = map[string]bool{}
	}
	defer func() { w.heldStreams.Store(int64(len(w.held))) }()
	for _, h := range hold {
		w.held[h.e.AggregateID] = true
		if h.err != nil {
			w.r.m.quarantined.WithLabelValues(w.name).Inc()
			w.log.Error("event quarantined: its stream is held until an operator releases it",
				"event_id", h.e.ID.String(), "event_type", h.e.Type, "stream", h.e.AggregateID,
				"position", h.e.Position.Token(), "err", h.err)
		}
	}
}

// releaseRequested applies what the consumer holds of every stream an operator released, in log order.
// A stream whose events all apply is free again; one whose event fails again stays held with the new
// error, and the request is answered (cleared) either way. An error (the database, a dependency down)
// leaves the requests for the next look.
func (w *worker) releaseRequested(ctx context.Context) error {
	rows, err := w.r.pool.Query(ctx, `select distinct aggregate_id from consumer_quarantine
		where consumer = $1 and status = 'held' and release_requested_at is not null`, w.name)
	if err != nil {
		return fmt.Errorf("read release requests: %w", err)
	}
	streams, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read release requests: %w", err)
	}
	for _, stream := range streams {
		if err := w.release(ctx, stream); err != nil {
			return fmt.Errorf("release %s of %s: %w", stream, w.name, err)
		}
	}
	return nil
}

// release applies the held events of one stream, in log order, up to the first that fails.
func (w *worker) release(ctx context.Context, stream string) error {
	rows, err := w.r.pool.Query(ctx, `select event_id from consumer_quarantine
		where consumer = $1 and aggregate_id = $2 and status = 'held' order by tx_id, global_position`, w.name, stream)
	if err != nil {
		return err
	}
	evs, err := w.eventsOf(ctx, rows)
	if err != nil || len(evs) == 0 {
		return err
	}
	slices.SortFunc(evs, func(a, b eventstore.Event) int {
		switch {
		case a.Position.Less(b.Position):
			return -1
		case b.Position.Less(a.Position):
			return 1
		}
		return 0
	})
	applied, failure, err := w.releaseApply(ctx, stream, evs)
	if err != nil {
		return err
	}
	if failure == nil {
		delete(w.held, stream)
		w.heldStreams.Store(int64(len(w.held)))
		w.log.Info("quarantined stream released", "stream", stream, "events", applied)
		return nil
	}
	w.log.Error("quarantined stream not released: an event still fails", "stream", stream, "applied", applied,
		"event_id", evs[applied].ID.String(), "event_type", evs[applied].Type, "err", failure)
	return nil
}

// releaseApply applies evs (one stream's held events, in log order) until one fails for a lasting reason,
// and records the outcome: the events applied are released; the one that failed keeps its new error and,
// with those behind it, stays held; the request is cleared. For a projection the events' effects and
// their release commit together. It returns how many applied and the failure, if any.
func (w *worker) releaseApply(ctx context.Context, stream string, evs []eventstore.Event) (int, error, error) {
	tx, err := w.r.pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: beginWithCustomPlans})
	if err != nil {
		return 0, nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after commit
	// The checkpoint row is locked first, as by a batch: a rebuild of the projection cannot swap its
	// tables in under the release, nor a reset of the checkpoint. A processor handles its events outside
	// the transaction (its calls may take longer than an idle transaction may last), before the lock.
	applied, failure, err := 0, error(nil), error(nil)
	if w.proc != nil {
		applied, failure, err = w.handleInOrder(ctx, evs)
		if err != nil {
			return 0, nil, err
		}
	}
	if _, err := lockCheckpoint(ctx, tx, w.name); err != nil {
		return 0, nil, err
	}
	if w.proj != nil {
		applied, failure, err = w.applyInOrder(ctx, tx, evs)
		if err != nil {
			return 0, nil, err
		}
	}
	ids := make([]uuid.UUID, applied)
	for i, e := range evs[:applied] {
		ids[i] = e.ID
	}
	if _, err := tx.Exec(ctx, `update consumer_quarantine
		set status = 'released', released_at = now(), release_requested_at = null
		where consumer = $1 and event_id = any($2)`, w.name, ids); err != nil {
		return 0, nil, fmt.Errorf("mark released: %w", err)
	}
	if failure != nil {
		if _, err := tx.Exec(ctx, `update consumer_quarantine set error = $3
			where consumer = $1 and event_id = $2`, w.name, evs[applied].ID, failure.Error()); err != nil {
			return 0, nil, fmt.Errorf("record failure: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `update consumer_quarantine set release_requested_at = null
		where consumer = $1 and aggregate_id = $2 and status = 'held'`, w.name, stream); err != nil {
		return 0, nil, fmt.Errorf("clear release request: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, nil, fmt.Errorf("commit release: %w", err)
	}
	return applied, failure, nil
}

// applyInOrder applies evs in tx one by one, up to the first that fails for a lasting reason: how many
// applied, and that failure; an error for any other failure.
func (w *worker) applyInOrder(ctx context.Context, tx pgx.Tx, evs []eventstore.Event) (int, error, error) {
	for i, e := range evs {
		if err := applyOne(ctx, tx, w.proj, e); err != nil {
			if !w.lasting(ctx, err) {
				return 0, nil, err
			}
			return i, err, nil
		}
	}
	return len(evs), nil, nil
}

// handleInOrder is applyInOrder for a processor.
func (w *worker) handleInOrder(ctx context.Context, evs []eventstore.Event) (int, error, error) {
	for i, e := range evs {
		if err := w.proc.Handle(ctx, []eventstore.Event{e}); err != nil {
			if !w.lasting(ctx, err) {
				return 0, nil, err
			}
			return i, err, nil
		}
	}
	return len(evs), nil, nil
}

// measureQuarantine sets the consumer's quarantine gauge and, when an operator has released a held
// stream, tells the worker's loop.
func (w *worker) measureQuarantine(ctx context.Context) {
	var held, requested, streams int
	err := w.r.pool.QueryRow(ctx, `select count(*), count(*) filter (where release_requested_at is not null),
			count(distinct aggregate_id)
		from consumer_quarantine where consumer = $1 and status = 'held'`, w.name).Scan(&held, &requested, &streams)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("quarantine not measured", "err", err)
		}
		return
	}
	w.r.m.held.WithLabelValues(w.name).Set(float64(held))
	if requested > 0 {
		w.releaseDue.Store(true)
	}
	if int64(streams) != w.heldStreams.Load() {
		// Changed by someone else: a rebuild or a checkpoint reset released or dropped what was held.
		w.reloadHeld.Store(true)
	}
}

// QuarantinedEvent is an event a consumer holds in quarantine, as an operator sees it.
type QuarantinedEvent struct {
	Consumer      string
	EventID       uuid.UUID
	Stream        string
	EventType     string
	Position      eventstore.Position
	Status        string // held, released, dropped
	Error         string // why it failed; "" for an event waiting behind one that failed
	QuarantinedAt time.Time
	ReleaseAsked  bool
}

// Quarantined lists the events in quarantine, held ones only unless all, of one consumer and its
// partitions ("" for every consumer), in log order.
func Quarantined(ctx context.Context, q querier, consumer string, all bool) ([]QuarantinedEvent, error) {
	rows, err := q.Query(ctx, `select consumer, event_id, aggregate_id, event_type, tx_id::text::bigint,
			global_position, status, coalesce(error, ''), quarantined_at, release_requested_at is not null
		from consumer_quarantine
		where ($1 = '' or `+ofConsumer+`) and ($2 or status = 'held')
		order by consumer, tx_id, global_position`, consumer, all)
	if err != nil {
		return nil, fmt.Errorf("list quarantine: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (QuarantinedEvent, error) {
		var e QuarantinedEvent
		var id [16]byte
		err := row.Scan(&e.Consumer, &id, &e.Stream, &e.EventType, &e.Position.TxID, &e.Position.GlobalPosition,
			&e.Status, &e.Error, &e.QuarantinedAt, &e.ReleaseAsked)
		e.EventID = id
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list quarantine: %w", err)
	}
	return out, nil
}

// RequestRelease asks the consumer to apply what it holds of stream: the consumer's active worker (that
// of the partition holding it, for a partitioned consumer) does it within its monitor's interval
// (MonitorEvery). It returns how many events the request covers (0: the
// consumer holds nothing of that stream).
func RequestRelease(ctx context.Context, q execQuerier, consumer, stream string) (int, error) {
	tag, err := q.Exec(ctx, `update consumer_quarantine set release_requested_at = now()
		where `+ofConsumer+` and aggregate_id = $2 and status = 'held'`, consumer, stream)
	if err != nil {
		return 0, fmt.Errorf("release %s of %s: %w", stream, consumer, err)
	}
	return int(tag.RowsAffected()), nil
}

// loadHeld reads the streams the consumer holds into w.held.
func (w *worker) loadHeld(ctx context.Context) error {
	held, err := heldStreams(ctx, w.r.pool, w.name)
	if err != nil {
		return err
	}
	w.held = held
	w.heldStreams.Store(int64(len(held)))
	return nil
}

// eventsOf reads from the log the events whose ids rows hold (one uuid column), in log order.
func (w *worker) eventsOf(ctx context.Context, rows pgx.Rows) ([]eventstore.Event, error) {
	ids, err := pgx.CollectRows(rows, pgx.RowTo[[16]byte])
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	uids := make([]uuid.UUID, len(ids))
	for i, id := range ids {
		uids[i] = id
	}
	return eventstore.New(w.r.pool).EventsByID(ctx, uids...)
}
