// Package postgres holds the command service's tables other than the event store's: the webhook endpoints
// (docs/webhooks.md).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"upi/command-service/internal/app"
	"upi/shared/contract"
)

// Webhooks is app.WebhookStore on PostgreSQL.
type Webhooks struct{ pool *pgxpool.Pool }

// NewWebhooks returns the store.
func NewWebhooks(pool *pgxpool.Pool) *Webhooks { return &Webhooks{pool: pool} }

const endpointColumns = `endpoint_id, client_id, url, description, event_types, status, disabled_reason,
	secret_version, previous_secret_expires_at, created_at, updated_at`

func scanEndpoint(row pgx.Row) (app.WebhookEndpointRow, error) {
	var r app.WebhookEndpointRow
	err := row.Scan(&r.EndpointID, &r.ClientID, &r.URL, &r.Description, &r.EventTypes, &r.Status, &r.DisabledReason,
		&r.SecretVersion, &r.PreviousSecretExpiresAt, &r.CreatedAt, &r.UpdatedAt)
	return r, err
}

// failure translates a driver error: no rows is the endpoint not found, anything else the database
// unavailable (every statement here is safe to retry).
func failure(what string, err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, app.ErrWebhookEndpointNotFound)
	}
	return fmt.Errorf("%s: %w: %v", what, app.ErrUnavailable, err)
}

// Create implements app.WebhookStore.
func (s *Webhooks) Create(ctx context.Context, r app.WebhookEndpointRow) (app.WebhookEndpointRow, error) {
	row, err := scanEndpoint(s.pool.QueryRow(ctx, `
		with ins as (
			insert into webhook_endpoints (endpoint_id, client_id, url, description, event_types, status, secret_version)
			values ($1, $2, $3, $4, $5, $6, 1)
			on conflict (endpoint_id) do nothing
			returning `+endpointColumns+`)
		select `+endpointColumns+` from ins
		union all
		select `+endpointColumns+` from webhook_endpoints where endpoint_id = $1 and not exists (select 1 from ins)`,
		r.EndpointID, r.ClientID, r.URL, r.Description, r.EventTypes, r.Status))
	if err != nil {
		return row, failure("create webhook endpoint", err)
	}
	return row, nil
}

// SetStatus implements app.WebhookStore.
func (s *Webhooks) SetStatus(ctx context.Context, client string, id uuid.UUID, status string) (app.WebhookEndpointRow, error) {
	row, err := scanEndpoint(s.pool.QueryRow(ctx, `
		update webhook_endpoints set
			status = $3,
			disabled_reason = case when $3 = 'ENABLED' then null when $3 = 'DISABLED' and status = 'ENABLED'
				then 'disabled by its owner' else disabled_reason end,
			failing_since = case when $3 = 'ENABLED' then null else failing_since end,
			updated_at = case when status = $3 then updated_at else now() end
		where endpoint_id = $1 and client_id = $2 and status <> 'DELETED'
		returning `+endpointColumns, id, client, status))
	if err != nil {
		return row, failure("set webhook endpoint status", err)
	}
	return row, nil
}

// Rotate implements app.WebhookStore.
func (s *Webhooks) Rotate(ctx context.Context, client string, id, rotation uuid.UUID, overlap time.Duration) (app.WebhookEndpointRow, int, error) {
	var (
		row     app.WebhookEndpointRow
		version int
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		row, err = scanEndpoint(tx.QueryRow(ctx, `select `+endpointColumns+` from webhook_endpoints
			where endpoint_id = $1 and client_id = $2 and status <> 'DELETED' for update`, id, client))
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `select secret_version from webhook_secret_rotations where rotation_id = $1`, rotation).Scan(&version)
		if err == nil {
			return nil // a repeat of this rotation: its version
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		version = row.SecretVersion + 1
		var expires *time.Time
		if overlap > 0 {
			t := time.Now().Add(overlap)
			expires = &t
		}
		row, err = scanEndpoint(tx.QueryRow(ctx, `update webhook_endpoints set
				previous_secret_version = secret_version, previous_secret_expires_at = $2,
				secret_version = $3, updated_at = now()
			where endpoint_id = $1 returning `+endpointColumns, id, expires, version))
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `insert into webhook_secret_rotations (rotation_id, endpoint_id, secret_version) values ($1, $2, $3)`,
			rotation, id, version)
		return err
	})
	if err != nil {
		return row, 0, failure("rotate webhook secret", err)
	}
	return row, version, nil
}

// maxRedeliveries bounds one redelivery request.
const maxRedeliveries = 10000

// Redeliver implements app.WebhookStore: a new delivery (redelivery = true) of each event first delivered
// to the endpoint that r names, the body as first sent, and its pending row (the sender's queue), due now,
// in one statement.
func (s *Webhooks) Redeliver(ctx context.Context, client string, id uuid.UUID, r contract.Redelivery) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `select true from webhook_endpoints where endpoint_id = $1 and client_id = $2
			and status <> 'DELETED'`, id, client).Scan(&exists); err != nil {
			return err
		}
		var eventID *string
		var from, to *time.Time
		if r.EventID != "" {
			eventID = &r.EventID
		} else {
			from, to = &r.From, &r.To
		}
		tag, err := tx.Exec(ctx, `
			with d as (
				insert into webhook_deliveries (endpoint_id, event_id, event_type, resource_id, body, event_created_at, redelivery)
				select endpoint_id, event_id, event_type, resource_id, body, event_created_at, true
				from webhook_deliveries
				where endpoint_id = $1 and not redelivery
				  and ($2::uuid is null or event_id = $2::uuid)
				  and ($3::timestamptz is null or (event_created_at >= $3 and event_created_at < $4))
				order by delivery_id
				limit $5
				returning endpoint_id, resource_id, delivery_id)
			insert into webhook_pending (endpoint_id, resource_id, delivery_id)
			select endpoint_id, resource_id, delivery_id from d`, id, eventID, from, to, maxRedeliveries)
		n = int(tag.RowsAffected())
		return err
	})
	if err != nil {
		return 0, failure("redeliver", err)
	}
	return n, nil
}
