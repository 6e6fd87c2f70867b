package workflow

import (
	"context"
	"sync"

	"github.com/google/uuid"

	"upi/shared/contract"
	"upi/shared/platform/eventstore"
)

// Taking a payment's next step at once.
//
// A step's answer carries the event it appended (contract.StepResult.Payload), and that event calls for
// the payment's next step just as it will when it comes round in the log. Waiting for it costs a trip
// through the log: the append's hint, the horizon, the other consumers' batches ahead of the workflow's
// turn, several milliseconds on every step. So the workflow takes the next step as soon as the answer comes
// (follow), in the same batch, and remembers that it did (taken); when the event then comes round in the
// log, its step is skipped.
//
// Nothing about safety changes. Every step is idempotent by its event id, so a step taken twice (the
// memory lost in a restart, or forgotten when full) finds its earlier outcome; and the event is remembered
// only once its step has an outcome (done, or parked), so a batch that fails before that leaves the step
// to the log, which takes it again. The log stays the record and the fallback; the answer is a shortcut.

// maxTaken bounds the memory of steps taken ahead of the log. Entries leave as their events come round,
// so it holds about the payments in flight; a memory that grows past it (events that never come to this
// worker, as after a change of partitions) is forgotten whole, which costs only replayed steps.
const maxTaken = 100_000

// taken remembers the events whose steps were taken ahead of the log. Shared by a consumer's partitions
// and its parked steps' retries, hence the lock.
type taken struct {
	mu  sync.Mutex
	ids map[uuid.UUID]struct{}
}

// add remembers that the step event id calls for has an outcome.
func (k *taken) add(id uuid.UUID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ids == nil || len(k.ids) >= maxTaken {
		k.ids = make(map[uuid.UUID]struct{})
	}
	k.ids[id] = struct{}{}
}

// take reports whether the step event id calls for was taken ahead of the log, and forgets it: the event
// comes round once.
func (k *taken) take(id uuid.UUID) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.ids[id]; !ok {
		return false
	}
	delete(k.ids, id)
	return true
}

// follow is the task for the step that r's event calls for, if any: the next step of t's payment. An
// answer without its event (an older command service) or whose event the workflow cannot read leaves the
// step to the log, which reports what it cannot read. A step already on its way in this batch, called for
// by the same event, is not taken twice.
func (w *Workflow) follow(ctx context.Context, t *task, r contract.StepResult, queued map[string]bool) *task {
	if len(r.Payload) == 0 {
		return nil
	}
	id, err := uuid.Parse(r.EventID)
	if err != nil {
		return nil
	}
	e := eventstore.Event{ID: id, Type: r.EventType, Payload: r.Payload}
	st, err := Next(e)
	if err != nil || st == nil || queued[st.CausationID] {
		return nil
	}
	queued[st.CausationID] = true
	next := &task{step: *st, cause: id}
	if w.tracer != nil {
		// Its event carries t's traceparent, so its span is a child of t's, as from the log.
		w.startSpan(ctx, next, e, t.step.TraceParent)
	}
	return next
}
