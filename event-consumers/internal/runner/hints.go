package runner

import (
	"context"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/shared/platform/eventstore"
)

// Hints listens on eventstore.HintChannel on one connection and wakes every subscribed worker. A hint only
// shortens a worker's wait: workers poll anyway, so a lost connection costs latency, never events.
type Hints struct {
	listener eventstore.Listener
	// first runs on every hint, with the transaction id it announces (0: none), before any subscriber is
	// woken (nil: nothing).
	first func(tx uint64)

	mu   sync.Mutex
	subs []chan struct{}
}

// NewHints returns a listener on a connection made with pool's settings.
func NewHints(pool *pgxpool.Pool, log *slog.Logger, first func(tx uint64)) *Hints {
	h := &Hints{first: first}
	h.listener = eventstore.Listener{Pool: pool, Channels: []string{eventstore.HintChannel}, Log: log,
		What: "event hint listener",
		// Whatever was appended while there was no connection was not hinted: wake everyone once.
		Listening: func(context.Context, *pgx.Conn) error { h.broadcast(0); return nil },
		Notified:  func(n *pgconn.Notification) { h.broadcast(eventstore.ParseHint(n.Payload)) },
		Lost:      func() { h.broadcast(0) },
	}
	return h
}

// Subscribe returns a channel that receives (coalesced) wake-ups.
func (h *Hints) Subscribe() <-chan struct{} {
	c := make(chan struct{}, 1)
	h.mu.Lock()
	h.subs = append(h.subs, c)
	h.mu.Unlock()
	return c
}

// Run listens until ctx ends, reconnecting with back-off.
func (h *Hints) Run(ctx context.Context) { h.listener.Run(ctx) }

func (h *Hints) broadcast(tx uint64) {
	if h.first != nil {
		h.first(tx)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}
