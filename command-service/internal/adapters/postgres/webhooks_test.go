package postgres_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"upi/command-service/internal/adapters/postgres"
	"upi/shared/contract"
	"upi/testenv"
)

// A redelivery is a new delivery of the event and its pending row (the sender's queue), due now; only the
// endpoint's first deliveries are redelivered.
func TestRedeliverQueuesTheDeliveryAndItsPendingRow(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.PostgresPool(t)
	ctx := context.Background()
	endpoint, event := uuid.New(), uuid.New()
	if _, err := pool.Exec(ctx, `insert into webhook_endpoints (endpoint_id, client_id, url)
		values ($1, 'client', 'https://x.example/hook')`, endpoint); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `insert into webhook_deliveries (endpoint_id, event_id, event_type, resource_id, body,
		event_created_at, state, attempts) values ($1, $2, 'payment.completed', 'pay-1', '{"id":"x"}', now(), 'SUCCEEDED', 1)`,
		endpoint, event); err != nil {
		t.Fatal(err)
	}
	store := postgres.NewWebhooks(pool)
	for round := 1; round <= 2; round++ {
		n, err := store.Redeliver(ctx, "client", endpoint, contract.Redelivery{EventID: event.String()})
		if err != nil || n != 1 {
			t.Fatalf("redelivery %d: %d queued (%v), want 1", round, n, err)
		}
		var deliveries, pending int
		if err := pool.QueryRow(ctx, `select
			(select count(*) from webhook_deliveries where redelivery and event_id = $2 and body = '{"id":"x"}' and state = 'PENDING'),
			(select count(*) from webhook_pending p join webhook_deliveries d using (delivery_id)
			 where p.endpoint_id = $1 and p.resource_id = 'pay-1' and d.redelivery and p.attempts = 0
			   and p.next_attempt_at <= now())`, endpoint, event).Scan(&deliveries, &pending); err != nil {
			t.Fatal(err)
		}
		if deliveries != round || pending != round {
			t.Fatalf("after redelivery %d: %d redeliveries, %d pending rows, want %d of each", round, deliveries, pending, round)
		}
	}
}
