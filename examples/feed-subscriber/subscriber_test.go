package subscriber_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	subscriber "upi/examples/feed-subscriber"
)

// The feed as the relay publishes it, with repeats (a message published again after the subscriber
// applied it, as after a relay restart), while the subscriber itself is stopped and started again twice
// mid-stream (unacknowledged messages come again): each account's total is the sum of its events, once.
func TestSubscriberAppliesEachEventOnce(t *testing.T) {
	url, db := rabbitMQ(t), database(t)
	ctx := context.Background()
	if err := subscriber.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	exchange, queue := "upi.events.example."+random(), "example.totals."+random()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = ch.QueueDelete(queue, false, false, false)
		_ = ch.ExchangeDelete(exchange, false, false)
	})
	if err := subscriber.Bind(ch, exchange, queue); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}

	cfg := subscriber.Config{RabbitMQURL: url, Exchange: exchange, Queue: queue, Prefetch: 16}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func() (stop func()) {
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = subscriber.New(cfg, db, log).Run(ctx) }()
		return func() { cancel(); <-done }
	}

	rng := mrand.New(mrand.NewPCG(3, 4))
	want := map[string]int64{}
	versions := map[string]int{}
	type sentMsg struct {
		p   amqp.Publishing
		key string
	}
	var sent []sentMsg
	publish := func(p amqp.Publishing, key string) {
		dc, err := ch.PublishWithDeferredConfirm(exchange, key, false, false, p)
		if err != nil || !dc.Wait() {
			t.Fatalf("publish: %v", err)
		}
	}
	event := func(aggType, id, typ string, payload any) {
		versions[id]++
		body, _ := json.Marshal(map[string]any{
			"event_id": newID(), "aggregate_type": aggType, "aggregate_id": id, "version": versions[id],
			"event_type": typ, "payload": payload, "metadata": map[string]string{},
			"created_at": time.Now().UTC(), "position": "AAAA",
		})
		var m struct {
			EventID string `json:"event_id"`
		}
		_ = json.Unmarshal(body, &m)
		p := amqp.Publishing{MessageId: m.EventID, Type: typ, ContentType: "application/json",
			DeliveryMode: amqp.Persistent, Body: body}
		publish(p, aggType+"."+typ)
		sent = append(sent, sentMsg{p, aggType + "." + typ})
		if rng.IntN(10) == 0 { // a repeat, some time later
			again := sent[rng.IntN(len(sent))]
			publish(again.p, again.key)
		}
	}

	stop := start()
	vpas := []string{"a@okbank", "b@okbank", "c@okbank", "d@okbank"}
	for _, v := range vpas {
		event("account", v, "AccountOpened", map[string]string{"vpa": v})
	}
	for i := range 1500 {
		v := vpas[rng.IntN(len(vpas))]
		amount := int64(1 + rng.IntN(1000))
		switch rng.IntN(5) {
		case 0:
			event("account", v, "FundsDeposited", map[string]any{"vpa": v, "amount_paise": amount})
			want[v] += amount
		case 1:
			event("account", v, "AccountDebited", map[string]any{"vpa": v, "amount_paise": amount})
			want[v] -= amount
		case 2:
			event("account", v, "AccountCredited", map[string]any{"vpa": v, "amount_paise": amount})
			want[v] += amount
		case 3:
			event("account", v, "DebitRejected", map[string]any{"vpa": v, "amount_paise": amount})
		case 4:
			event("payment", fmt.Sprint("p", i), "PaymentCompleted", map[string]any{"payment_id": i}) // not bound
		}
		if i == 500 || i == 1000 {
			stop()
			stop = start()
		}
	}
	defer stop()

	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := subscriber.Totals(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		if equal(got, want) && queueEmpty(t, ch, queue) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("totals %v, want %v", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var applied, accountEvents int
	if err := db.QueryRow(ctx, `select count(*) from feed_example_applied`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	for id, n := range versions {
		if len(id) > 0 && id[0] != 'p' {
			accountEvents += n
		}
	}
	if applied != accountEvents {
		t.Errorf("%d ids applied, %d account events published", applied, accountEvents)
	}
}

func equal(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func queueEmpty(t *testing.T, ch *amqp.Channel, queue string) bool {
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Messages == 0
}

// rabbitMQ is TEST_RABBITMQ_URL or the local broker; without one the test is skipped, or fails under CI.
func rabbitMQ(t *testing.T) string {
	url := os.Getenv("TEST_RABBITMQ_URL")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		unavailable(t, "rabbitmq (TEST_RABBITMQ_URL)", err)
	}
	conn.Close()
	return url
}

// database creates a scratch database on TEST_DATABASE_URL's server (or the local one), dropped at the end.
func database(t *testing.T) *pgxpool.Pool {
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		unavailable(t, "postgres (TEST_DATABASE_URL)", err)
	}
	name := "feed_example_" + random()
	if _, err := admin.Exec(ctx, "create database "+name); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Database = name
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool.Close()
		_, _ = admin.Exec(context.Background(), "drop database if exists "+name+" with (force)")
		admin.Close(context.Background())
	})
	return pool
}

func unavailable(t *testing.T, what string, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required under CI and is unavailable: %v", what, err)
	}
	t.Skipf("%s unavailable: %v", what, err)
}

func random() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
