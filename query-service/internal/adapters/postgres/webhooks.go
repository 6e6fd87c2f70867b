package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/query-service/internal/app"
	"upi/shared/contract"
)

// Webhooks reads a client's webhook endpoints and their deliveries (docs/webhooks.md).
type Webhooks struct{ pool *pgxpool.Pool }

// NewWebhooks returns the reader.
func NewWebhooks(pool *pgxpool.Pool) *Webhooks { return &Webhooks{pool: pool} }

const endpointColumns = `endpoint_id, url, description, event_types, status, disabled_reason,
	case when previous_secret_expires_at > now() then previous_secret_expires_at end, created_at, updated_at`

func scanEndpoint(row pgx.Row) (contract.WebhookEndpoint, time.Time, error) {
	var (
		e                contract.WebhookEndpoint
		id               uuid.UUID
		prev             *time.Time
		created, updated time.Time
	)
	err := row.Scan(&id, &e.URL, &e.Description, &e.EventTypes, &e.Status, &e.DisabledReason, &prev, &created, &updated)
	e.EndpointID, e.CreatedAt, e.UpdatedAt = id.String(), contract.Time(created), contract.Time(updated)
	if prev != nil {
		t := contract.Time(*prev)
		e.PreviousSecretExpiresAt = &t
	}
	if e.EventTypes == nil {
		e.EventTypes = []string{}
	}
	return e, created, err
}

func unavailable(what string, err error) error {
	return fmt.Errorf("%s: %w: %v", what, app.ErrUnavailable, err)
}

// Endpoint is one of client's endpoints (not deleted).
func (s *Webhooks) Endpoint(ctx context.Context, client string, id uuid.UUID) (contract.WebhookEndpoint, bool, error) {
	e, _, err := scanEndpoint(s.pool.QueryRow(ctx, `select `+endpointColumns+` from webhook_endpoints
		where endpoint_id = $1 and client_id = $2 and status <> 'DELETED'`, id, client))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, false, nil
	}
	if err != nil {
		return e, false, unavailable("read webhook endpoint", err)
	}
	return e, true, nil
}

// Endpoints is a page of client's endpoints, oldest first, after the cursor (created_at, id) when given.
func (s *Webhooks) Endpoints(ctx context.Context, client string, after *app.EndpointCursor, limit int) ([]contract.WebhookEndpoint, *app.EndpointCursor, error) {
	var afterAt *time.Time
	afterID := uuid.Nil
	if after != nil {
		afterAt, afterID = &after.CreatedAt, after.ID
	}
	rows, err := s.pool.Query(ctx, `select `+endpointColumns+` from webhook_endpoints
		where client_id = $1 and status <> 'DELETED'
		  and ($2::timestamptz is null or (created_at, endpoint_id) > ($2, $3))
		order by created_at, endpoint_id limit $4`, client, afterAt, afterID, limit+1)
	if err != nil {
		return nil, nil, unavailable("list webhook endpoints", err)
	}
	defer rows.Close()
	items := []contract.WebhookEndpoint{}
	var next *app.EndpointCursor
	var lastCreated time.Time
	for rows.Next() {
		e, created, err := scanEndpoint(rows)
		if err != nil {
			return nil, nil, unavailable("list webhook endpoints", err)
		}
		if len(items) == limit {
			next = &app.EndpointCursor{ID: uuid.MustParse(items[len(items)-1].EndpointID), CreatedAt: lastCreated}
			break
		}
		items, lastCreated = append(items, e), created
	}
	if err := rows.Err(); err != nil {
		return nil, nil, unavailable("list webhook endpoints", err)
	}
	return items, next, nil
}

// Deliveries is a page of the endpoint's deliveries, newest first, before the delivery id before (0: from
// the newest), each with its attempts in order: the failed ones that were retried (webhook_attempts), then
// the one that finished the delivery, kept on its row (null until then, and for deliveries finished before
// migration 00081, whose every attempt has a row). A pending delivery's next attempt is its pending row's.
func (s *Webhooks) Deliveries(ctx context.Context, endpoint uuid.UUID, before int64, limit int) ([]contract.WebhookDelivery, int64, error) {
	rows, err := s.pool.Query(ctx, `
		select d.delivery_id, d.event_id, d.event_type, d.resource_id, d.redelivery, d.state,
		       case when d.state = 'PENDING' then (select p.next_attempt_at from webhook_pending p
		           where p.endpoint_id = d.endpoint_id and p.resource_id = d.resource_id and p.delivery_id = d.delivery_id) end,
		       d.created_at,
		       coalesce((select json_agg(a.o order by a.n) from (
		                   select w.attempt, json_build_object('at', w.at, 'status_code', w.status_code, 'error', w.error,
		                       'latency_ms', w.latency_ms, 'response_excerpt', w.response_excerpt)
		                   from webhook_attempts w where w.delivery_id = d.delivery_id
		                   union all
		                   select d.attempts, json_build_object('at', d.last_at, 'status_code', d.last_status_code,
		                       'error', d.last_error, 'latency_ms', d.last_latency_ms, 'response_excerpt', d.last_excerpt)
		                   where d.last_at is not null) as a(n, o)), '[]')
		from webhook_deliveries d
		where d.endpoint_id = $1 and ($2 = 0 or d.delivery_id < $2)
		order by d.delivery_id desc limit $3`, endpoint, before, limit+1)
	if err != nil {
		return nil, 0, unavailable("list webhook deliveries", err)
	}
	defer rows.Close()
	items := []contract.WebhookDelivery{}
	var next, lastID int64
	for rows.Next() {
		var (
			d        contract.WebhookDelivery
			id       int64
			eventID  uuid.UUID
			due      *time.Time
			created  time.Time
			attempts []struct {
				At              time.Time `json:"at"`
				StatusCode      *int      `json:"status_code"`
				Error           *string   `json:"error"`
				LatencyMS       int       `json:"latency_ms"`
				ResponseExcerpt string    `json:"response_excerpt"`
			}
		)
		if err := rows.Scan(&id, &eventID, &d.EventType, &d.ResourceID, &d.Redelivery, &d.Status, &due, &created, &attempts); err != nil {
			return nil, 0, unavailable("list webhook deliveries", err)
		}
		if len(items) == limit {
			next = lastID
			break
		}
		d.DeliveryID, d.EventID, d.CreatedAt = fmt.Sprint(id), eventID.String(), contract.Time(created)
		if due != nil {
			t := contract.Time(*due)
			d.NextAttemptAt = &t
		}
		d.Attempts = make([]contract.WebhookAttempt, len(attempts))
		for i, a := range attempts {
			d.Attempts[i] = contract.WebhookAttempt{At: contract.Time(a.At), StatusCode: a.StatusCode, Error: a.Error,
				LatencyMS: a.LatencyMS, ResponseExcerpt: a.ResponseExcerpt}
		}
		items, lastID = append(items, d), id
	}
	return items, next, rows.Err()
}
