package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"upi/query-service/internal/adapters/postgres"
	"upi/shared/contract"
	"upi/testenv"
)

// The delivery list shows each delivery's attempts in order, wherever they are kept: the retried failures
// as attempt rows, the attempt that finished the delivery on its row (or, for a delivery finished before
// migration 00081, as an attempt row too); and a pending delivery's next attempt, from its pending row.
func TestDeliveriesShowEveryAttemptInOrder(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	endpoint := uuid.New()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`insert into webhook_endpoints (endpoint_id, client_id, url) values ($1, 'client', 'https://x.example/hook')`, endpoint)
	at := time.Date(2026, 12, 5, 21, 0, 0, 0, time.UTC)
	next := at.Add(time.Hour)
	// 1 pending after a failure; 2 succeeded at once; 3 succeeded after a failure; 4 finished before the
	// migration (every attempt a row); 5 given up after a refusal and a timeout.
	for i, state := range []string{"PENDING", "SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "FAILED"} {
		exec(`insert into webhook_deliveries (endpoint_id, event_id, event_type, resource_id, body, event_created_at, state)
			values ($1, gen_random_uuid(), 'payment.completed', $2, '{}', $3, $4)`, endpoint, fmt.Sprintf("pay-%d", i+1), at, state)
	}
	exec(`insert into webhook_pending (endpoint_id, resource_id, delivery_id, attempts, next_attempt_at) values ($1, 'pay-1', 1, 1, $2)`,
		endpoint, next)
	exec(`insert into webhook_attempts (delivery_id, attempt, at, status_code, error, latency_ms, response_excerpt) values
		(1, 1, $1, 500, null, 7, 'oops'),
		(3, 1, $1, 503, null, 8, 'busy'),
		(4, 1, $1, 500, null, 9, 'no'), (4, 2, $1, 204, null, 10, ''),
		(5, 1, $1, null, 'connection refused', 11, '')`, at)
	exec(`update webhook_deliveries set attempts = 1, completed_at = $1, last_at = $1, last_status_code = 204,
		last_latency_ms = 12, last_excerpt = '' where delivery_id = 2`, at)
	exec(`update webhook_deliveries set attempts = 2, completed_at = $1, last_at = $1, last_status_code = 200,
		last_latency_ms = 13, last_excerpt = 'ok' where delivery_id = 3`, at)
	exec(`update webhook_deliveries set attempts = 2, completed_at = $1 where delivery_id = 4`, at)
	exec(`update webhook_deliveries set attempts = 2, completed_at = $1, last_at = $1, last_error = 'timed out',
		last_latency_ms = 14, last_excerpt = '' where delivery_id = 5`, at)

	items, _, err := postgres.NewWebhooks(pool).Deliveries(ctx, endpoint, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	show := func(d contract.WebhookDelivery) string {
		s := d.DeliveryID + " " + d.Status
		if d.NextAttemptAt != nil {
			s += " next " + *d.NextAttemptAt
		}
		for _, a := range d.Attempts {
			what := "-"
			if a.StatusCode != nil {
				what = fmt.Sprint(*a.StatusCode)
			}
			if a.Error != nil {
				what += " " + *a.Error
			}
			s += fmt.Sprintf(" [%s %s %dms %q]", a.At, what, a.LatencyMS, a.ResponseExcerpt)
		}
		return s
	}
	ts, nextTS := contract.Time(at), contract.Time(next)
	want := []string{
		"5 FAILED [" + ts + " - connection refused 11ms \"\"] [" + ts + " - timed out 14ms \"\"]",
		"4 SUCCEEDED [" + ts + " 500 9ms \"no\"] [" + ts + " 204 10ms \"\"]",
		"3 SUCCEEDED [" + ts + " 503 8ms \"busy\"] [" + ts + " 200 13ms \"ok\"]",
		"2 SUCCEEDED [" + ts + " 204 12ms \"\"]",
		"1 PENDING next " + nextTS + " [" + ts + " 500 7ms \"oops\"]",
	}
	if len(items) != len(want) {
		t.Fatalf("%d deliveries listed, want %d", len(items), len(want))
	}
	for i, d := range items {
		if got := show(d); got != want[i] {
			t.Errorf("delivery listed:\n%s\nwant\n%s", got, want[i])
		}
	}
}
