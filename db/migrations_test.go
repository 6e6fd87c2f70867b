package db_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"upi/db"
)

// Migration 00081 moves the pending webhook deliveries into webhook_pending and back: up, the pending
// ones are queued there (with their attempts and next time) and the delivered ones are not; down, a
// delivery's last attempt kept on its row becomes an attempt row again, a pending one gets its attempts
// and next time back, and the queue index is there again; up again, the same.
func TestWebhookPendingMigrationRoundTrip(t *testing.T) {
	url := emptyDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sqlDB, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, db.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	exec := func(stmt string, args ...any) {
		t.Helper()
		if _, err := sqlDB.ExecContext(ctx, stmt, args...); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	count := func(query string) int {
		t.Helper()
		var n int
		if err := sqlDB.QueryRowContext(ctx, query).Scan(&n); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return n
	}
	queueIndex := `select count(*) from pg_indexes where indexname = 'webhook_deliveries_queue_idx'`

	if _, err := provider.UpTo(ctx, 80); err != nil {
		t.Fatal(err)
	}
	// Before: one delivery pending after two failed attempts, one succeeded at its second.
	exec(`insert into webhook_endpoints (endpoint_id, client_id, url) values ('00000000-0000-0000-0000-00000000000e', 'c', 'https://x')`)
	exec(`insert into webhook_deliveries (endpoint_id, event_id, event_type, resource_id, body, event_created_at,
			state, attempts, next_attempt_at, completed_at)
		values ('00000000-0000-0000-0000-00000000000e', gen_random_uuid(), 'payment.created', 'p1', '{}', now(),
			'PENDING', 2, '2030-01-01T00:00:00Z', null),
		       ('00000000-0000-0000-0000-00000000000e', gen_random_uuid(), 'payment.created', 'p2', '{}', now(),
			'SUCCEEDED', 2, now(), now())`)
	exec(`insert into webhook_attempts (delivery_id, attempt, at, status_code, latency_ms)
		values (1, 1, now(), 500, 3), (1, 2, now(), 503, 4), (2, 1, now(), 500, 3), (2, 2, now(), 204, 2)`)

	if _, err := provider.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(`select count(*) from webhook_pending where delivery_id = 1 and attempts = 2
			and next_attempt_at = '2030-01-01T00:00:00Z' and resource_id = 'p1'`); n != 1 {
		t.Fatalf("the pending delivery's row after up: %d", n)
	}
	if n := count(`select count(*) from webhook_pending`); n != 1 {
		t.Fatalf("%d pending rows after up, want the pending delivery's only", n)
	}
	if n := count(queueIndex); n != 0 {
		t.Fatal("the queue index is still there after up")
	}
	if n := count(`select count(*) from pg_class where relname = 'webhook_deliveries' and 'fillfactor=50' = any(reloptions)`); n != 1 {
		t.Fatal("webhook_deliveries has no fillfactor 50 after up")
	}

	// A third delivery, queued and then succeeded at once the new way: no attempt row, its last attempt on
	// its row. The pending one is retried once more.
	exec(`insert into webhook_deliveries (endpoint_id, event_id, event_type, resource_id, body, event_created_at,
			state, attempts, completed_at, last_at, last_status_code, last_latency_ms, last_excerpt)
		values ('00000000-0000-0000-0000-00000000000e', gen_random_uuid(), 'payment.created', 'p3', '{}', now(),
			'SUCCEEDED', 1, now(), now(), 200, 5, 'ok')`)
	exec(`update webhook_pending set attempts = 3, next_attempt_at = '2031-01-01T00:00:00Z' where delivery_id = 1`)
	exec(`insert into webhook_attempts (delivery_id, attempt, at, status_code, latency_ms) values (1, 3, now(), 500, 3)`)

	if _, err := provider.DownTo(ctx, 80); err != nil {
		t.Fatal(err)
	}
	if n := count(`select count(*) from webhook_attempts where delivery_id = 3 and attempt = 1 and status_code = 200
			and latency_ms = 5 and response_excerpt = 'ok'`); n != 1 {
		t.Fatal("the last attempt kept on the delivery row is no attempt row after down")
	}
	if n := count(`select count(*) from webhook_attempts`); n != 6 {
		t.Fatalf("%d attempt rows after down, want 6", n)
	}
	if n := count(`select count(*) from webhook_deliveries where delivery_id = 1 and attempts = 3
			and next_attempt_at = '2031-01-01T00:00:00Z'`); n != 1 {
		t.Fatal("the pending delivery lost its attempts or next time on down")
	}
	if n := count(queueIndex); n != 1 {
		t.Fatal("no queue index after down")
	}

	if _, err := provider.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(`select count(*) from webhook_pending where delivery_id = 1 and attempts = 3`); n != 1 {
		t.Fatalf("the pending delivery's row after up again: %d", n)
	}
}
