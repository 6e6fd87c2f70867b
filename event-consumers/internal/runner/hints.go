package runner

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"upi/shared/platform/eventstore"
)

// Hints listens on eventstore.HintChannel on one connection and wakes every subscribed runner. A hint only
// shortens a runner's wait: runners poll anyway, so a lost connection costs latency, never events.
type Hints struct {
	connect Connector
	log     *slog.Logger

	mu   sync.Mutex
	subs []chan struct{}
}

// NewHints returns a listener that opens its connection with connect.
func NewHints(connect Connector, log *slog.Logger) *Hints {
	return &Hints{connect: connect, log: log}
}

// Subscribe returns a channel that receives (coalesced) wake-ups.
func (h *Hints) Subscribe() <-chan struct{} {
	c := make(chan struct{}, 1)
	h.mu.Lock()
	h.subs = append(h.subs, c)
	h.mu.Unlock()
	return c
}

func (h *Hints) broadcast() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// Run listens until ctx ends, reconnecting with back-off.
func (h *Hints) Run(ctx context.Context) {
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := h.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		h.log.Warn("event hint listener lost, reconnecting", "err", err, "retry_in", delay.String())
		// Whatever was notified while disconnected is lost: wake everyone once.
		h.broadcast()
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func (h *Hints) listen(ctx context.Context) error {
	conn, err := h.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "listen "+eventstore.HintChannel); err != nil {
		return err
	}
	h.broadcast()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		h.broadcast()
	}
}
