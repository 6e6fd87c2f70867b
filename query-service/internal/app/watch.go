package app

import (
	"context"
	"sync"
	"time"

	"upi/shared/platform/eventstore"
)

// Watch is the query service's memory of what the projections have reached, fed by the consumers'
// notifications (one LISTEN connection per process): requests wait on it instead of polling the database.
// It is only a way of waking up early; what a response says it reflects is always read from the database.
type Watch struct {
	mu          sync.Mutex
	checkpoints map[string]eventstore.Position
	moved       chan struct{} // closed (and replaced) whenever a checkpoint moves
	settled     map[string]*settleWaiters
}

type settleWaiters struct {
	c chan struct{}
	n int
}

// NewWatch returns an empty watch.
func NewWatch() *Watch {
	return &Watch{checkpoints: map[string]eventstore.Position{}, moved: make(chan struct{}),
		settled: map[string]*settleWaiters{}}
}

// Checkpoint records that projection name has reached p (never moving it back).
func (w *Watch) Checkpoint(name string, p eventstore.Position) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if cur, ok := w.checkpoints[name]; ok && !cur.Less(p) {
		return
	}
	w.checkpoints[name] = p
	close(w.moved)
	w.moved = make(chan struct{})
}

// Moved returns a channel closed at the next move of any projection's checkpoint, and a func to call when
// no longer waiting (nothing to release: the channel is shared).
func (w *Watch) Moved() (<-chan struct{}, func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.moved, func() {}
}

// WaitFor waits until projection name has reached min, at most max or until ctx ends, and reports
// whether it has.
func (w *Watch) WaitFor(ctx context.Context, name string, min eventstore.Position, max time.Duration) bool {
	timer := time.NewTimer(max)
	defer timer.Stop()
	for {
		w.mu.Lock()
		cur := w.checkpoints[name]
		moved := w.moved
		w.mu.Unlock()
		if !cur.Less(min) {
			return true
		}
		select {
		case <-moved:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// Settled returns a channel closed when payment id is announced terminal, and a func to call when no
// longer waiting.
func (w *Watch) Settled(id string) (<-chan struct{}, func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.settled[id]
	if s == nil {
		s = &settleWaiters{c: make(chan struct{})}
		w.settled[id] = s
	}
	s.n++
	var once sync.Once
	return s.c, func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			s.n--
			if s.n == 0 && w.settled[id] == s {
				delete(w.settled, id)
			}
		})
	}
}

// Settle wakes the waiters of payment id.
func (w *Watch) Settle(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s := w.settled[id]; s != nil {
		close(s.c)
		delete(w.settled, id)
	}
}

// WakeAll wakes every payment waiter, for when notifications may have been missed (a reconnect): each
// re-reads and waits again if nothing changed.
func (w *Watch) WakeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, s := range w.settled {
		close(s.c)
		delete(w.settled, id)
	}
}
