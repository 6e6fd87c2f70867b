// Package relay publishes the event log to RabbitMQ: the event feed (docs/event-feed.md, the contract and
// the subscriber's side).
//
// The relay is one more checkpointed consumer of the runner (a Processor named "event-feed"): the runner
// reads the log by the transaction-id horizon, holds the consumer's worker lock and moves its checkpoint
// after Handle returns nil. Handle publishes a batch in log order on a channel in confirm mode, several
// messages in flight (bounded), and returns nil only when the broker has confirmed every one of them. A
// nack, a lost connection or a confirm that does not come makes Handle fail: the runner hands the same
// batch again after a back-off, so an event is published at least once and never skipped, and a repeat
// carries the same message_id (the event id).
//
// Unroutable events: messages are published without `mandatory`. An event no queue is bound for is
// confirmed by the broker and dropped there; the relay never waits for a subscriber. A subscriber's feed
// begins with the first event the relay publishes after its queue is bound (the `position` in that
// message's body says where in the log); history before that is replayed by moving the relay's checkpoint
// back (docs/event-feed.md, "Replaying").
package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"upi/shared/platform/eventstore"
	"upi/shared/platform/observability"
)

// Name is the relay's consumer name: its checkpoint row and its worker lock.
const Name = "event-feed"

// Config is what a Relay needs; the zero value of a tuning field takes its default.
type Config struct {
	URL      string // the broker, amqp://user:pass@host:port/vhost
	Exchange string // the durable topic exchange the relay declares and publishes to
	// InFlight bounds the messages published and not yet confirmed (default 256).
	InFlight int
	// ConfirmTimeout is how long the relay waits for one confirm before it gives the connection up and
	// publishes the batch again (default 30s). Heartbeats notice a dead peer sooner.
	ConfirmTimeout time.Duration
	// RetryMin and RetryMax bound the back-off between attempts to connect (default 100ms and 10s).
	RetryMin, RetryMax time.Duration
}

func (c Config) withDefaults() Config {
	if c.InFlight <= 0 {
		c.InFlight = 256
	}
	if c.ConfirmTimeout <= 0 {
		c.ConfirmTimeout = 30 * time.Second
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 100 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 10 * time.Second
	}
	return c
}

// Relay is the event-feed consumer. Its methods are safe for concurrent use, though the runner calls
// Handle from one goroutine.
type Relay struct {
	cfg Config
	log *slog.Logger
	m   *Metrics

	mu        sync.Mutex // guards conn, ch and gone
	conn      *amqp.Connection
	ch        *amqp.Channel
	gone      chan struct{} // closed when conn is
	connected atomic.Bool
	lastErr   atomic.Pointer[error]

	// highest is the last position this process has published: an event at or before it is a republish.
	highest eventstore.Position
}

// New returns a relay that connects lazily, on its first batch.
func New(cfg Config, log *slog.Logger, m *Metrics) *Relay {
	return &Relay{cfg: cfg.withDefaults(), log: log.With("consumer", Name), m: m}
}

// Name implements runner.Consumer.
func (r *Relay) Name() string { return Name }

// Ping reports whether the relay holds a connection to the broker (for /readyz), without a round trip.
func (r *Relay) Ping(context.Context) error {
	if r.connected.Load() {
		return nil
	}
	if err := r.lastErr.Load(); err != nil {
		return fmt.Errorf("event feed not connected: %w", *err)
	}
	return errors.New("event feed not connected yet")
}

// Run keeps the relay connected until ctx ends: it connects at once (so that an absent broker is reported
// at start, not at the first event) and again whenever the connection is lost, with back-off.
func (r *Relay) Run(ctx context.Context) {
	for {
		if _, err := r.channel(ctx); err != nil {
			return // ctx ended
		}
		r.mu.Lock()
		gone := r.gone
		r.mu.Unlock()
		if gone == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-gone:
		}
	}
}

// Close closes the connection, if any.
func (r *Relay) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropLocked()
}

// Handle implements runner.Processor: it publishes batch in order and returns nil once the broker has
// confirmed all of it. While the broker cannot be reached it waits (retrying with back-off) until ctx
// ends, so that an absent broker is one log line, not a stream of failed batches.
func (r *Relay) Handle(ctx context.Context, batch []eventstore.Event) error {
	ch, err := r.channel(ctx)
	if err != nil {
		return err
	}
	if err := r.publish(ctx, ch, batch); err != nil {
		// Whatever was in flight is unknown: drop the connection and let the runner hand the batch again.
		r.mu.Lock()
		if r.ch == ch {
			r.fail(err)
			r.dropLocked()
		}
		r.mu.Unlock()
		return err
	}
	return nil
}

// pending is one published message awaiting its confirm.
type pending struct {
	dc *amqp.DeferredConfirmation
	e  *eventstore.Event
}

func (r *Relay) publish(ctx context.Context, ch *amqp.Channel, batch []eventstore.Event) error {
	window := make([]pending, 0, r.cfg.InFlight)
	timer := time.NewTimer(r.cfg.ConfirmTimeout)
	defer timer.Stop()
	// await waits for the oldest message in flight.
	await := func() error {
		p := window[0]
		window = window[1:]
		timer.Reset(r.cfg.ConfirmTimeout)
		select {
		case <-p.dc.Done():
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return fmt.Errorf("no confirm for event %s within %s", p.e.ID, r.cfg.ConfirmTimeout)
		}
		if !p.dc.Acked() {
			r.m.nacked.Inc()
			return fmt.Errorf("broker did not confirm event %s (nack or connection lost)", p.e.ID)
		}
		r.m.confirmed.Inc()
		r.m.commitToConfirm.Observe(time.Since(p.e.CreatedAt).Seconds())
		return nil
	}
	for i := range batch {
		e := &batch[i]
		if len(window) == r.cfg.InFlight {
			if err := await(); err != nil {
				return err
			}
		}
		msg, err := Message(e)
		if err != nil {
			return err
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, r.cfg.Exchange, RoutingKey(e), false, false, msg)
		if err != nil {
			return fmt.Errorf("publish event %s: %w", e.ID, err)
		}
		r.m.published.Inc()
		if !r.highest.Less(e.Position) {
			r.m.republished.Inc()
		} else {
			r.highest = e.Position
		}
		window = append(window, pending{dc: dc, e: e})
	}
	for len(window) > 0 {
		if err := await(); err != nil {
			return err
		}
	}
	return nil
}

// channel returns the open confirm-mode channel, connecting first (and waiting, with back-off, for the
// broker) when there is none.
func (r *Relay) channel(ctx context.Context) (*amqp.Channel, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ch != nil && !r.ch.IsClosed() && !r.conn.IsClosed() {
		return r.ch, nil
	}
	r.dropLocked()
	delay := r.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		err := r.connectLocked()
		if err == nil {
			if attempt > 1 || r.lastErr.Load() != nil {
				r.log.Info("event feed: connected to RabbitMQ; relaying", "url", observability.RedactURL(r.cfg.URL),
					"exchange", r.cfg.Exchange)
			} else {
				r.log.Info("event feed: relaying to RabbitMQ", "url", observability.RedactURL(r.cfg.URL),
					"exchange", r.cfg.Exchange)
			}
			r.lastErr.Store(nil)
			return r.ch, nil
		}
		first := r.lastErr.Load() == nil
		r.fail(err)
		if first {
			// One clear line per outage; the attempts that follow are debug.
			r.log.Warn("event feed: RabbitMQ does not answer; the relay waits for it (retrying with back-off) "+
				"and the other consumers run on. RELAY_ENABLED=false turns the relay off.",
				"url", observability.RedactURL(r.cfg.URL), "err", err)
		} else {
			r.log.Debug("event feed: RabbitMQ still unreachable", "attempt", attempt, "err", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, r.cfg.RetryMax)
	}
}

func (r *Relay) connectLocked() error {
	conn, err := amqp.DialConfig(r.cfg.URL, amqp.Config{
		Heartbeat:  5 * time.Second,
		Dial:       amqp.DefaultDial(5 * time.Second),
		Properties: amqp.Table{"connection_name": "upi event-consumers relay"},
	})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.ExchangeDeclare(r.cfg.Exchange, amqp.ExchangeTopic, true, false, false, false, nil)
		if err != nil {
			err = fmt.Errorf("declare exchange %s: %w", r.cfg.Exchange, err)
		}
	}
	if err == nil {
		if err = ch.Confirm(false); err != nil {
			err = fmt.Errorf("confirm mode: %w", err)
		}
	}
	if err != nil {
		conn.Close()
		return err
	}
	r.conn, r.ch = conn, ch
	r.connected.Store(true)
	r.m.connected.Set(1)
	// Notice a broken connection at once (for /readyz), not only at the next publish.
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	gone := make(chan struct{})
	r.gone = gone
	go func() {
		defer close(gone)
		if err, ok := <-closed; ok && err != nil {
			r.mu.Lock()
			if r.conn == conn {
				r.fail(err)
				r.log.Warn("event feed: connection to RabbitMQ lost; reconnecting", "err", err)
			}
			r.mu.Unlock()
		}
	}()
	return nil
}

// fail records err as the reason the relay is not connected.
func (r *Relay) fail(err error) {
	r.lastErr.Store(&err)
	r.connected.Store(false)
	r.m.connected.Set(0)
}

func (r *Relay) dropLocked() {
	if r.conn != nil {
		_ = r.conn.Close()
	}
	r.conn, r.ch, r.gone = nil, nil, nil
	r.connected.Store(false)
	r.m.connected.Set(0)
}

// Body is the JSON body of a feed message (docs/event-feed.md, "Message shape").
type Body struct {
	EventID       string          `json:"event_id"`
	AggregateType string          `json:"aggregate_type"`
	AggregateID   string          `json:"aggregate_id"`
	Version       int             `json:"version"`
	EventType     string          `json:"event_type"`
	Payload       json.RawMessage `json:"payload"`
	Metadata      json.RawMessage `json:"metadata"`
	CreatedAt     time.Time       `json:"created_at"`
	Position      string          `json:"position"`
}

// RoutingKey is <aggregate_type>.<event_type>, e.g. payment.PaymentCompleted.
func RoutingKey(e *eventstore.Event) string { return e.AggregateType + "." + e.Type }

// Message is the persistent message that carries e.
func Message(e *eventstore.Event) (amqp.Publishing, error) {
	meta := e.Metadata
	if len(meta) == 0 {
		meta = json.RawMessage(`{}`)
	}
	body, err := json.Marshal(Body{
		EventID: e.ID.String(), AggregateType: e.AggregateType, AggregateID: e.AggregateID, Version: e.Version,
		EventType: e.Type, Payload: e.Payload, Metadata: meta, CreatedAt: e.CreatedAt.UTC(),
		Position: e.Position.Token(),
	})
	if err != nil {
		return amqp.Publishing{}, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	return amqp.Publishing{
		MessageId:    e.ID.String(),
		Type:         e.Type,
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		Timestamp:    e.CreatedAt,
		AppId:        "upi-event-consumers",
		Body:         body,
	}, nil
}
