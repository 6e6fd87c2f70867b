// Package relaytest holds what the relay's tests share: a queue bound to the feed that records every
// delivery, the check of a feed against the log, and a TCP proxy that cuts the relay off its broker.
package relaytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"upi/event-consumers/internal/adapters/rabbitmq/relay"
	"upi/testenv"
)

// Delivery is one message as a subscriber saw it.
type Delivery struct {
	MessageID, Type, ContentType, RoutingKey string
	Persistent                               bool
	Body                                     relay.Body
	Raw                                      []byte
}

// Feed is an exclusive queue bound to an exchange, recording every delivery.
type Feed struct {
	mu  sync.Mutex
	got []Delivery
	ids map[string]bool
}

// Bind declares exchange as the relay does (so the queue exists before the first publish), binds a new
// exclusive queue to it with key, and records deliveries until the test ends.
func Bind(t testing.TB, url, exchange, key string) *Feed {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("dial rabbitmq: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := amqp.Dial(url); err == nil {
			if ch, err := c.Channel(); err == nil {
				_ = ch.ExchangeDelete(exchange, false, false)
			}
			c.Close()
		}
	})
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, key, exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &Feed{ids: map[string]bool{}}
	go func() {
		for d := range deliveries {
			var b relay.Body
			if err := json.Unmarshal(d.Body, &b); err != nil {
				t.Errorf("undecodable message %s: %v", d.MessageId, err)
			}
			f.mu.Lock()
			f.got = append(f.got, Delivery{MessageID: d.MessageId, Type: d.Type, ContentType: d.ContentType,
				RoutingKey: d.RoutingKey, Persistent: d.DeliveryMode == amqp.Persistent, Body: b, Raw: d.Body})
			f.ids[d.MessageId] = true
			f.mu.Unlock()
		}
	}()
	return f
}

// Deliveries returns what arrived so far, in arrival order.
func (f *Feed) Deliveries() []Delivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Delivery(nil), f.got...)
}

// Distinct is how many different message ids arrived.
func (f *Feed) Distinct() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.ids)
}

// LoggedEvent is an event of the log, as the check needs it.
type LoggedEvent struct {
	ID, AggregateType, AggregateID, Type string
	Version                              int
}

// Log reads every event of the database, committed so far.
func Log(t testing.TB, pool *pgxpool.Pool) []LoggedEvent {
	t.Helper()
	rows, err := pool.Query(context.Background(), `select event_id::text, aggregate_type, aggregate_id, event_type, version
		from events order by tx_id, global_position`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []LoggedEvent
	for rows.Next() {
		var e LoggedEvent
		if err := rows.Scan(&e.ID, &e.AggregateType, &e.AggregateID, &e.Type, &e.Version); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// WaitAll waits until every event of the log has arrived at the feed.
func (f *Feed) WaitAll(t testing.TB, pool *pgxpool.Pool, within time.Duration) []LoggedEvent {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		log := Log(t, pool)
		missing := 0
		f.mu.Lock()
		for _, e := range log {
			if !f.ids[e.ID] {
				missing++
			}
		}
		f.mu.Unlock()
		if missing == 0 {
			return log
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events never arrived at the feed within %s", missing, len(log), within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Check asserts the feed carries the log as the contract says: every event, each message shaped as the
// contract says, first deliveries of each stream in version order, and repeats identical to the first
// delivery (same message_id, same body). It returns how many deliveries were repeats.
func Check(t testing.TB, log []LoggedEvent, got []Delivery) (repeats int) {
	t.Helper()
	byID := make(map[string]LoggedEvent, len(log))
	for _, e := range log {
		byID[e.ID] = e
	}
	first := make(map[string]Delivery, len(log))
	lastVersion := map[string]int{}
	errs := 0
	fail := func(format string, args ...any) {
		if errs++; errs <= 10 {
			t.Errorf(format, args...)
		}
	}
	for _, d := range got {
		e, ok := byID[d.MessageID]
		if !ok {
			fail("message %s is no event of the log", d.MessageID)
			continue
		}
		if prev, seen := first[d.MessageID]; seen {
			repeats++
			if !bytes.Equal(prev.Raw, d.Raw) || prev.RoutingKey != d.RoutingKey {
				fail("repeat of %s differs from its first delivery", d.MessageID)
			}
			continue
		}
		first[d.MessageID] = d
		b := d.Body
		switch {
		case d.Type != e.Type || d.ContentType != "application/json" || !d.Persistent:
			fail("message %s: type %q content type %q persistent %v", d.MessageID, d.Type, d.ContentType, d.Persistent)
		case d.RoutingKey != e.AggregateType+"."+e.Type:
			fail("message %s: routing key %q", d.MessageID, d.RoutingKey)
		case b.EventID != e.ID || b.AggregateID != e.AggregateID || b.AggregateType != e.AggregateType ||
			b.EventType != e.Type || b.Version != e.Version || b.Position == "" || b.CreatedAt.IsZero() ||
			len(b.Payload) == 0 || len(b.Metadata) == 0:
			fail("message %s: body %+v does not match the event %+v", d.MessageID, b, e)
		}
		if want := lastVersion[e.AggregateID] + 1; e.Version != want {
			fail("stream %s: first delivery of version %d where %d was due", e.AggregateID, e.Version, want)
		}
		lastVersion[e.AggregateID] = e.Version
	}
	for _, e := range log {
		if _, ok := first[e.ID]; !ok {
			fail("event %s (%s v%d) never arrived", e.ID, e.AggregateID, e.Version)
		}
	}
	return repeats
}

// Proxy forwards TCP connections to a broker until it is cut: then it closes every connection and
// refuses new ones (accepts and closes them) until restored.
type Proxy struct {
	Addr   string
	target string
	ln     net.Listener

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

// NewProxy listens on a free local port and forwards to target (host:port) until the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.Cut() })
	go p.serve()
	return p
}

// URL is url with its host replaced by the proxy's.
func (p *Proxy) URL(url string) string {
	u, err := amqp.ParseURI(url)
	if err != nil {
		panic(err)
	}
	host, port, _ := net.SplitHostPort(p.Addr)
	u.Host = host
	fmt.Sscan(port, &u.Port)
	return u.String()
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *Proxy) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// Cut closes every forwarded connection and refuses new ones.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
}

// Restore forwards new connections again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// BrokerAddr is the host:port of an amqp URL.
func BrokerAddr(t testing.TB, url string) string {
	t.Helper()
	u, err := amqp.ParseURI(url)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort(u.Host, fmt.Sprint(u.Port))
}

// Exchange is a fresh exchange name for one test on the shared broker.
func Exchange() string { return testenv.UniqueName("upi.events.test.") }
