package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/event-consumers/internal/adapters/postgres"
	"upi/event-consumers/internal/app/webhooks"
	"upi/testenv"
)

// queueFixture is a database with one client's endpoint, and the queue on it.
type queueFixture struct {
	t        *testing.T
	ctx      context.Context
	pool     *pgxpool.Pool
	q        *postgres.Webhooks
	endpoint uuid.UUID
}

func newQueueFixture(t *testing.T) *queueFixture {
	pool, _ := testenv.PostgresPool(t)
	f := &queueFixture{t: t, ctx: context.Background(), pool: pool, q: postgres.NewWebhooks(pool), endpoint: uuid.New()}
	f.exec(`insert into webhook_endpoints (endpoint_id, client_id, url, created_at) values ($1, 'client', 'https://x.example/hook',
		now() - interval '1 hour')`, f.endpoint)
	return f
}

func (f *queueFixture) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.pool.Exec(f.ctx, sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

func (f *queueFixture) count(sql string, args ...any) int {
	f.t.Helper()
	var n int
	if err := f.pool.QueryRow(f.ctx, sql, args...).Scan(&n); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// queue queues one delivery per resource, a body of about a kilobyte each (a payment's is), and returns how
// many rows Queue reported.
func (f *queueFixture) queue(events []uuid.UUID, resources []string) int {
	f.t.Helper()
	ds := make([]webhooks.Delivery, len(events))
	for i := range events {
		body := fmt.Sprintf(`{"id":%q,"type":"payment.created","data":{"payment_id":%q,"note":%q}}`,
			events[i], resources[i], strings.Repeat("n", 900))
		ds[i] = webhooks.Delivery{EventID: events[i], Type: "payment.created", ResourceID: resources[i], Body: []byte(body),
			CreatedAt: time.Now(), Client: "client"}
	}
	n, err := f.q.Queue(f.ctx, ds)
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

func (f *queueFixture) claim() []webhooks.Pending {
	f.t.Helper()
	_, ps, err := f.q.Claim(f.ctx, 1000, 1000, nil, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return ps
}

func (f *queueFixture) record(os ...webhooks.Outcome) {
	f.t.Helper()
	if err := f.q.Record(f.ctx, os, nil); err != nil {
		f.t.Fatal(err)
	}
}

// outcome is the outcome of p's next attempt: a status code, and the state that follows.
func outcome(p webhooks.Pending, code int, state string) webhooks.Outcome {
	o := webhooks.Outcome{DeliveryID: p.ID, Endpoint: p.Endpoint, Resource: p.Resource, Attempt: p.Attempts + 1,
		At: time.Now(), StatusCode: code, Latency: 3 * time.Millisecond, Excerpt: fmt.Sprint(code), State: state}
	if state == "PENDING" {
		o.Next = time.Now().Add(-time.Second) // due again at once
	}
	return o
}

// attempts is what the delivery list shows of a delivery's attempts, in order (the query service's
// reading): its attempt rows, then the last attempt kept on its row.
func (f *queueFixture) attempts(id int64) []string {
	f.t.Helper()
	rows, err := f.pool.Query(f.ctx, `
		select n, coalesce(code::text, err) from (
			select attempt, status_code, error from webhook_attempts where delivery_id = $1
			union all
			select attempts, last_status_code, last_error from webhook_deliveries where delivery_id = $1 and last_at is not null
		) a(n, code, err) order by n`, id)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n int
		var what string
		if err := rows.Scan(&n, &what); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d:%s", n, what))
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// state is everything the queue's tables hold, row versions included (xmin): equal states mean that
// nothing was written.
func (f *queueFixture) state() string {
	f.t.Helper()
	var s string
	if err := f.pool.QueryRow(f.ctx, `select concat_ws(' | ',
		(select string_agg(concat_ws(',', xmin, delivery_id, state, attempts, completed_at, last_at, last_status_code, last_error),
		                   ';' order by delivery_id) from webhook_deliveries),
		(select string_agg(concat_ws(',', xmin, delivery_id, attempts, next_attempt_at), ';' order by delivery_id) from webhook_pending),
		(select string_agg(concat_ws(',', xmin, delivery_id, attempt), ';' order by delivery_id, attempt) from webhook_attempts))`).Scan(&s); err != nil {
		f.t.Fatal(err)
	}
	return s
}

// A delivery's queue is its row and a pending row: a success deletes the pending row and keeps the attempt
// on the delivery row, with no attempt row; a failure then a success shows both attempts, in order, the
// failure as an attempt row; a delivery given up keeps its last failure on its row. Repeating a Queue or a
// Record writes nothing.
func TestWebhookQueueKeepsPendingApartAndAttemptRowsForFailuresOnly(t *testing.T) {
	t.Parallel()
	f := newQueueFixture(t)
	events := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New()}
	resources := []string{"pay-a", "pay-b", "pay-c", "pay-a"}
	if n := f.queue(events, resources); n != 4 {
		t.Fatalf("queued %d, want 4", n)
	}
	if n := f.count(`select count(*) from webhook_pending`); n != 4 {
		t.Fatalf("%d pending rows, want 4", n)
	}
	if n := f.count(`select count(*) from webhook_deliveries d join webhook_pending p using (delivery_id)
			where (p.endpoint_id, p.resource_id) = (d.endpoint_id, d.resource_id)`); n != 4 {
		t.Fatalf("%d pending rows match their delivery's endpoint and resource, want 4", n)
	}
	var ids []int64
	rows, err := f.pool.Query(f.ctx, `select delivery_id from webhook_deliveries order by delivery_id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if rows.Err() != nil || len(ids) != 4 {
		t.Fatalf("delivery ids %v: %v", ids, rows.Err())
	}
	var inOrder bool
	if err := f.pool.QueryRow(f.ctx, `select array_agg(event_id order by delivery_id) = $1::uuid[] from webhook_deliveries`,
		events).Scan(&inOrder); err != nil || !inOrder {
		t.Fatalf("delivery ids do not follow the order queued (%v)", err)
	}

	// A repeated batch inserts neither a delivery nor a pending row.
	before := f.state()
	if n := f.queue(events, resources); n != 0 {
		t.Fatalf("a repeated Queue inserted %d", n)
	}
	if after := f.state(); after != before {
		t.Fatalf("a repeated Queue changed the queue:\n%s\n%s", before, after)
	}

	// The claim takes the earliest pending delivery of each resource, with its attempts so far.
	claimed := f.claim()
	if len(claimed) != 3 || claimed[0].ID != ids[0] || claimed[1].ID != ids[1] || claimed[2].ID != ids[2] {
		t.Fatalf("claimed %+v, want deliveries %v (the second of pay-a waits for the first)", claimed, ids[:3])
	}
	for _, p := range claimed {
		if p.Attempts != 0 || p.Endpoint != f.endpoint || len(p.Body) < 900 {
			t.Fatalf("claimed %+v", p)
		}
	}
	a, b, c := claimed[0], claimed[1], claimed[2]

	// a succeeds at once; b fails and is retried; c fails and is given up.
	first := []webhooks.Outcome{outcome(a, 204, "SUCCEEDED"), outcome(b, 500, "PENDING"), outcome(c, 0, "FAILED")}
	first[2].Error = "timed out"
	f.record(first...)
	if n := f.count(`select count(*) from webhook_pending where delivery_id = any($1)`, []int64{a.ID, c.ID}); n != 0 {
		t.Errorf("%d pending rows of finished deliveries", n)
	}
	if n := f.count(`select count(*) from webhook_attempts where delivery_id = any($1)`, []int64{a.ID, c.ID}); n != 0 {
		t.Errorf("%d attempt rows of deliveries finished at their first attempt", n)
	}
	if got := fmt.Sprint(f.attempts(a.ID)); got != "[1:204]" {
		t.Errorf("a's attempts: %s, want [1:204]", got)
	}
	if got := fmt.Sprint(f.attempts(b.ID)); got != "[1:500]" {
		t.Errorf("b's attempts: %s, want [1:500]", got)
	}
	if got := fmt.Sprint(f.attempts(c.ID)); got != "[1:timed out]" {
		t.Errorf("c's attempts: %s, want [1:timed out]", got)
	}
	if n := f.count(`select count(*) from webhook_deliveries where delivery_id = $1 and state = 'SUCCEEDED' and attempts = 1
			and completed_at is not null and last_latency_ms = 3 and last_excerpt = '204'`, a.ID); n != 1 {
		t.Error("a's delivery row does not show its success")
	}
	if n := f.count(`select count(*) from webhook_deliveries where delivery_id = $1 and state = 'FAILED' and last_status_code is null`, c.ID); n != 1 {
		t.Error("c's delivery row does not show it given up")
	}
	if n := f.count(`select count(*) from webhook_deliveries where delivery_id = $1 and state = 'PENDING' and last_at is null`, b.ID); n != 1 {
		t.Error("b's delivery row changed with a retry")
	}

	// The same record again writes nothing.
	before = f.state()
	f.record(first...)
	if after := f.state(); after != before {
		t.Fatalf("a repeated Record changed the queue:\n%s\n%s", before, after)
	}

	// Next: pay-a's second delivery, and b again, with its attempt counted.
	claimed = f.claim()
	if len(claimed) != 2 || claimed[0].ID != ids[1] || claimed[0].Attempts != 1 || claimed[1].ID != ids[3] {
		t.Fatalf("claimed %+v, want b (one attempt made) and pay-a's second", claimed)
	}
	second := []webhooks.Outcome{outcome(claimed[0], 200, "SUCCEEDED"), outcome(claimed[1], 204, "SUCCEEDED")}
	f.record(second...)
	if got := fmt.Sprint(f.attempts(b.ID)); got != "[1:500 2:200]" {
		t.Errorf("b's attempts after a failure and a success: %s, want [1:500 2:200]", got)
	}
	before = f.state()
	f.record(second...)
	f.record(first...)
	if after := f.state(); after != before {
		t.Fatalf("repeated Records changed the queue:\n%s\n%s", before, after)
	}
	if n := f.count(`select count(*) from webhook_pending`); n != 0 {
		t.Errorf("%d pending rows with every delivery done", n)
	}
	if n := f.count(`select count(*) from webhook_attempts`); n != 1 {
		t.Errorf("%d attempt rows, want b's failure only", n)
	}
	if claimed := f.claim(); len(claimed) != 0 {
		t.Errorf("claimed %+v with nothing pending", claimed)
	}
}

// No index of webhook_deliveries holds what finishing a delivery changes, and its pages keep room for a
// second version of their rows: the updates of a whole claim's successes, recorded in one statement as the
// sender does, are HOT (counted by PostgreSQL: n_tup_hot_upd).
func TestWebhookDeliveriesFinishWithHOTUpdates(t *testing.T) {
	t.Parallel()
	f := newQueueFixture(t)
	const n = 400
	events, resources := make([]uuid.UUID, n), make([]string, n)
	for i := range events {
		events[i], resources[i] = uuid.New(), fmt.Sprintf("pay-%d", i)
	}
	if got := f.queue(events, resources); got != n {
		t.Fatalf("queued %d, want %d", got, n)
	}
	claimed := f.claim()
	if len(claimed) != n {
		t.Fatalf("claimed %d, want %d", len(claimed), n)
	}
	stats := func() (upd, hot int) {
		t.Helper()
		if err := f.pool.QueryRow(f.ctx, `select n_tup_upd, n_tup_hot_upd from pg_stat_user_tables
			where relname = 'webhook_deliveries'`).Scan(&upd, &hot); err != nil {
			t.Fatal(err)
		}
		return upd, hot
	}
	upd0, hot0 := stats()
	os := make([]webhooks.Outcome, n)
	for i, p := range claimed {
		os[i] = outcome(p, 204, "SUCCEEDED")
	}
	f.record(os...)
	if done := f.count(`select count(*) from webhook_deliveries where state = 'SUCCEEDED'`); done != n {
		t.Fatalf("%d deliveries succeeded, want %d", done, n)
	}
	// The counts reach the view when the recording session reports them (within a second or so of idling).
	upd, hot := stats()
	for deadline := time.Now().Add(20 * time.Second); upd-upd0 < n && time.Now().Before(deadline); upd, hot = stats() {
		time.Sleep(100 * time.Millisecond)
	}
	if upd-upd0 < n {
		t.Fatalf("pg_stat_user_tables shows %d updates of webhook_deliveries, want %d", upd-upd0, n)
	}
	// Each page holds about four such rows and room for their new versions; a page whose rows grew a little
	// more may lack room for its last one, so not every update must be HOT.
	t.Logf("%d of %d updates HOT", hot-hot0, upd-upd0)
	if float64(hot-hot0) < 0.9*float64(upd-upd0) {
		t.Errorf("%d of %d updates of webhook_deliveries were HOT, want at least 90%%", hot-hot0, upd-upd0)
	}
}
