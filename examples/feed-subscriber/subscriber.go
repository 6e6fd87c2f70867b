// Package subscriber is an example follower of the event feed (docs/event-feed.md): it keeps a running
// total of every account's balance changes in PostgreSQL, with exactly-once effect.
//
// The feed delivers each event at least once. The subscriber records the id of every message it applied
// in the same transaction as the message's effect, and acknowledges the message only after that
// transaction commits:
//   - a repeat (the relay or the broker restarted) finds its id recorded: nothing is applied again;
//   - a crash before the commit applies nothing, and the unacknowledged message is delivered again;
//   - a crash after the commit and before the ack is a repeat.
//
// Copy it, change apply, keep the rest.
package subscriber

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Config says where the feed and the subscriber's database are.
type Config struct {
	RabbitMQURL string // e.g. amqp://guest:guest@127.0.0.1:5672/
	Exchange    string // the feed's exchange, upi.events by default
	Queue       string // this subscriber's durable queue; one name per subscribing application
	Prefetch    int    // unacknowledged messages the broker may push ahead (default 64)
}

// Message is the body of a feed message (docs/event-feed.md, "Message shape").
type Message struct {
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

// Schema creates the subscriber's tables: the ids applied, and the effect.
const Schema = `
create table if not exists feed_example_applied (
	message_id uuid primary key,
	applied_at timestamptz not null default now()
);
create table if not exists feed_example_totals (
	vpa         text primary key,
	total_paise bigint not null,
	events      int not null
);`

// Migrate creates the tables if missing.
func Migrate(ctx context.Context, db *pgxpool.Pool) error {
	_, err := db.Exec(ctx, Schema)
	return err
}

// Subscriber consumes its queue into the database.
type Subscriber struct {
	cfg Config
	db  *pgxpool.Pool
	log *slog.Logger
}

// New returns a subscriber; Run consumes.
func New(cfg Config, db *pgxpool.Pool, log *slog.Logger) *Subscriber {
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 64
	}
	return &Subscriber{cfg: cfg, db: db, log: log}
}

// Bind declares the exchange (as the relay does: durable topic), the subscriber's durable queue, and binds
// it to the account events. The feed a queue receives begins with the first event published after the
// binding exists: bind before the relay runs, or replay (docs/event-feed.md).
func Bind(ch *amqp.Channel, exchange, queue string) error {
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange: %w", err)
	}
	// Durable: it outlives the subscriber and the broker's restarts, keeping what arrives meanwhile. On a
	// cluster of brokers declare it a quorum queue (amqp.Table{"x-queue-type": "quorum"}).
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare queue: %w", err)
	}
	if err := ch.QueueBind(queue, "account.#", exchange, false, nil); err != nil {
		return fmt.Errorf("bind queue: %w", err)
	}
	return nil
}

// Run connects, binds and consumes until ctx ends, reconnecting with back-off when the broker goes away.
func (s *Subscriber) Run(ctx context.Context) error {
	delay := 100 * time.Millisecond
	for {
		err := s.consume(ctx)
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("feed subscriber: consuming stopped; reconnecting", "err", err, "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func (s *Subscriber) consume(ctx context.Context) error {
	conn, err := amqp.Dial(s.cfg.RabbitMQURL)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := Bind(ch, s.cfg.Exchange, s.cfg.Queue); err != nil {
		return err
	}
	if err := ch.Qos(s.cfg.Prefetch, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.ConsumeWithContext(ctx, s.cfg.Queue, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	for d := range deliveries {
		if err := s.Handle(ctx, d.MessageId, d.Body); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Not applied: give it back to be delivered again (a poison message would loop here; a real
			// subscriber dead-letters after a few attempts).
			s.log.Error("feed subscriber: message not applied", "message_id", d.MessageId, "err", err)
			_ = d.Nack(false, true)
			continue
		}
		if err := d.Ack(false); err != nil {
			return err // the connection is gone; the message comes again and is recognised
		}
	}
	return errors.New("delivery channel closed")
}

// Handle applies one message exactly once: its id and its effect commit together, or neither does.
func (s *Subscriber) Handle(ctx context.Context, messageID string, body []byte) error {
	var m Message
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("decode message %s: %w", messageID, err)
	}
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `insert into feed_example_applied (message_id) values ($1) on conflict do nothing`, messageID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return nil // applied before: a repeat
		}
		return apply(ctx, tx, m)
	})
}

// apply is the subscriber's effect: a running total of each account's balance changes.
func apply(ctx context.Context, tx pgx.Tx, m Message) error {
	var sign int64
	switch m.EventType {
	case "FundsDeposited", "AccountCredited", "DebitReversed":
		sign = 1
	case "AccountDebited":
		sign = -1
	default:
		return nil // AccountOpened, DebitRejected: no money moved
	}
	var p struct {
		AmountPaise int64 `json:"amount_paise"`
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		return fmt.Errorf("decode %s payload: %w", m.EventType, err)
	}
	_, err := tx.Exec(ctx, `
		insert into feed_example_totals (vpa, total_paise, events) values ($1, $2, 1)
		on conflict (vpa) do update set total_paise = feed_example_totals.total_paise + excluded.total_paise,
		                                events = feed_example_totals.events + 1`,
		m.AggregateID, sign*p.AmountPaise)
	return err
}

// Totals reads every account's running total.
func Totals(ctx context.Context, db *pgxpool.Pool) (map[string]int64, error) {
	rows, err := db.Query(ctx, `select vpa, total_paise from feed_example_totals`)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for rows.Next() {
		var vpa string
		var total int64
		if err := rows.Scan(&vpa, &total); err != nil {
			return nil, err
		}
		out[vpa] = total
	}
	return out, rows.Err()
}
