package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
)

// memQueue is the queue's contract in memory (the PostgreSQL one is exercised end to end in
// event-consumers' webhooks tests): enough to watch what the sender does with it.
type memQueue struct {
	mu       sync.Mutex
	eps      map[uuid.UUID]Endpoint
	rows     []*memRow
	claims   int
	records  int
	outcomes int
}

type memRow struct {
	p     Pending
	state string
	due   time.Time
}

func (q *memQueue) Claim(_ context.Context, limit, perEndpoint int, skip []uuid.UUID, busy []Key) ([]Endpoint, []Pending, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.claims++
	skipped, out := map[uuid.UUID]bool{}, map[Key]bool{}
	for _, s := range skip {
		skipped[s] = true
	}
	for _, k := range busy {
		out[k] = true
	}
	first, per := map[Key]bool{}, map[uuid.UUID]int{}
	var eps []Endpoint
	var ps []Pending
	for _, r := range q.rows { // in delivery order
		k := Key{r.p.Endpoint, r.p.Resource}
		if r.state != "PENDING" || first[k] {
			continue
		}
		first[k] = true
		if skipped[k.Endpoint] || out[k] || r.due.After(time.Now()) || per[k.Endpoint] >= perEndpoint || len(ps) >= limit {
			continue
		}
		if per[k.Endpoint] == 0 {
			eps = append(eps, q.eps[k.Endpoint])
		}
		per[k.Endpoint]++
		ps = append(ps, r.p)
	}
	return eps, ps, nil
}

func (q *memQueue) Record(_ context.Context, os []Outcome, _ []Health) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.records++
	q.outcomes += len(os)
	for _, o := range os {
		for _, r := range q.rows {
			if r.p.ID == o.DeliveryID && r.state == "PENDING" {
				r.state, r.due = o.State, o.Next
				r.p.Attempts = o.Attempt
			}
		}
	}
	return nil
}

func (q *memQueue) Open(context.Context, []*json.RawMessage) error { return nil }

func (q *memQueue) pending(ep uuid.UUID) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, r := range q.rows {
		if r.p.Endpoint == ep && r.state == "PENDING" {
			n++
		}
	}
	return n
}

// memTransport answers 204 at once, except at hang, where it waits for release (or the attempt's end).
type memTransport struct {
	hang     string
	release  chan struct{}
	mu       sync.Mutex
	inflight map[string]int
	most     map[string]int
	sent     map[string][]string // by URL and resource: the event types in the order sent
}

func (t *memTransport) Send(ctx context.Context, r Request) Response {
	var body struct{ Type, Resource string }
	_ = json.Unmarshal(r.Body, &body)
	t.mu.Lock()
	t.inflight[r.URL]++
	t.most[r.URL] = max(t.most[r.URL], t.inflight[r.URL])
	t.sent[r.URL+" "+body.Resource] = append(t.sent[r.URL+" "+body.Resource], body.Type)
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.inflight[r.URL]--
		t.mu.Unlock()
	}()
	if r.URL == t.hang {
		select {
		case <-t.release:
		case <-ctx.Done():
			return Response{Err: ctx.Err()}
		}
	}
	return Response{Status: 204}
}

// The sender claims and records many deliveries at a time, never has two deliveries of a resource out at
// once nor more than Concurrency attempts at an endpoint, sends each resource's deliveries in order, and
// goes on with every other endpoint while one hangs.
func TestSenderBatchesAndIsolatesEndpoints(t *testing.T) {
	slow, fast := uuid.New(), uuid.New()
	q := &memQueue{eps: map[uuid.UUID]Endpoint{
		slow: {ID: slow, URL: "https://slow.example/hook", SecretVersion: 1},
		fast: {ID: fast, URL: "https://fast.example/hook", SecretVersion: 1},
	}}
	id := int64(0)
	add := func(ep uuid.UUID, resources int) {
		for _, typ := range []string{"payment.created", "payment.completed"} {
			for i := range resources {
				id++
				res := fmt.Sprintf("pay-%d", i)
				body := fmt.Sprintf(`{"type":%q,"resource":%q}`, typ, res)
				q.rows = append(q.rows, &memRow{state: "PENDING", p: Pending{ID: id, Endpoint: ep, EventID: uuid.New(),
					Resource: res, Type: typ, Body: []byte(body), CreatedAt: time.Now()}})
			}
		}
	}
	add(slow, 1) // fewer than its slots: the sender claims again while its delivery hangs
	add(fast, 200)
	tr := &memTransport{hang: "https://slow.example/hook", release: make(chan struct{}),
		inflight: map[string]int{}, most: map[string]int{}, sent: map[string][]string{}}
	cfg := DefaultSenderConfig
	cfg.SecretKey, cfg.Concurrency, cfg.Poll = "k", 2, 50*time.Millisecond
	s := NewSender(cfg, q, tr, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	s.Round(ctx)
	s.Wake()

	deadline := time.Now().Add(10 * time.Second)
	for q.pending(fast) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries of the fast endpoint still pending while the slow one hangs", q.pending(fast))
		}
		s.Round(ctx)
		time.Sleep(20 * time.Millisecond)
	}
	if n := q.pending(slow); n != 2 {
		t.Errorf("slow endpoint: %d pending while it hangs, want both", n)
	}
	close(tr.release)
	for q.pending(slow) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries of the slow endpoint still pending after it answered", q.pending(slow))
		}
		s.Round(ctx)
		time.Sleep(20 * time.Millisecond)
	}

	tr.mu.Lock()
	defer tr.mu.Unlock()
	for url, n := range tr.most {
		if n > cfg.Concurrency {
			t.Errorf("%s: %d attempts at once, want at most %d", url, n, cfg.Concurrency)
		}
	}
	keys := make([]string, 0, len(tr.sent))
	for k := range tr.sent {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) != 201 {
		t.Errorf("%d resources sent, want 201", len(keys))
	}
	for _, k := range keys {
		if got := tr.sent[k]; len(got) != 2 || got[0] != "payment.created" || got[1] != "payment.completed" {
			t.Errorf("%s: sent %v, want created then completed, once each", k, got)
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.outcomes != 402 {
		t.Errorf("%d outcomes recorded, want 402", q.outcomes)
	}
	if q.records > 402/4 || q.claims > 402/4 {
		t.Errorf("%d records and %d claims for 402 deliveries: not batched", q.records, q.claims)
	}
}
