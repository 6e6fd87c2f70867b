-- Webhooks (docs/webhooks.md): a client's endpoints, the deliveries the log makes for them, and each
-- delivery's attempts.
--
-- Endpoints are a client's delivery settings, not part of the ledger: the command service writes them (it
-- answers every POST), the consumers disable one that keeps failing, the query service reads them. No
-- signing secret is stored anywhere: an endpoint's secret is derived from WEBHOOK_SECRET_KEY, its id and
-- its secret_version (shared/contract/webhook.Secret), so rotating is a new version.
--
-- Deliveries are made from the log by the `webhooks` consumer, in the same transaction as its checkpoint:
-- one row per (endpoint, event), plus a row per redelivery a client asks for. The sender sends them per
-- endpoint, in delivery_id order per resource, and records each attempt.

-- +goose Up
create table webhook_endpoints (
    endpoint_id                uuid        primary key,
    client_id                  text        not null,
    url                        text        not null,
    description                text        not null default '',
    -- the event types it wants ('payment.completed', or 'payment.*'); empty: every type
    event_types                text[]      not null default '{}',
    status                     text        not null default 'ENABLED'
                                           check (status in ('ENABLED', 'DISABLED', 'DELETED')),
    disabled_reason            text,
    secret_version             int         not null default 1,
    -- during a rotation's overlap the previous secret signs too, until previous_secret_expires_at
    previous_secret_version    int,
    previous_secret_expires_at timestamptz,
    -- since when every attempt has failed (null: the last attempt succeeded, or none was made)
    failing_since              timestamptz,
    created_at                 timestamptz not null default now(),
    updated_at                 timestamptz not null default now()
);
create index webhook_endpoints_client_idx on webhook_endpoints (client_id, created_at, endpoint_id);

-- A rotation is idempotent by its id (derived from the client's Idempotency-Key): a repeat answers the
-- version it made instead of rotating again.
create table webhook_secret_rotations (
    rotation_id    uuid        primary key,
    endpoint_id    uuid        not null,
    secret_version int         not null,
    created_at     timestamptz not null default now()
);

create table webhook_deliveries (
    delivery_id      bigint      generated always as identity primary key,
    endpoint_id      uuid        not null,
    event_id         uuid        not null,
    event_type       text        not null,  -- the public type: payment.completed
    resource_id      text        not null,  -- the payment, refund, collect request or withdrawal
    body             text        not null,  -- exactly the bytes signed and sent
    event_created_at timestamptz not null,
    redelivery       boolean     not null default false,
    state            text        not null default 'PENDING' check (state in ('PENDING', 'SUCCEEDED', 'FAILED')),
    attempts         int         not null default 0,
    next_attempt_at  timestamptz not null default now(),
    created_at       timestamptz not null default now(),
    completed_at     timestamptz
);
-- one first delivery per endpoint and event, whatever the consumer repeats
create unique index webhook_deliveries_first_idx on webhook_deliveries (endpoint_id, event_id) where not redelivery;
create index webhook_deliveries_due_idx on webhook_deliveries (endpoint_id, next_attempt_at) where state = 'PENDING';
create index webhook_deliveries_queue_idx on webhook_deliveries (endpoint_id, resource_id, delivery_id) where state = 'PENDING';
create index webhook_deliveries_log_idx on webhook_deliveries (endpoint_id, delivery_id);
create index webhook_deliveries_event_idx on webhook_deliveries (endpoint_id, event_created_at);

create table webhook_attempts (
    delivery_id      bigint      not null,
    attempt          int         not null,
    at               timestamptz not null,
    status_code      int,                  -- null: no response (refused, timed out)
    error            text,
    latency_ms       int         not null,
    response_excerpt text        not null default '',
    primary key (delivery_id, attempt)
);

grant select, insert, update on webhook_endpoints, webhook_secret_rotations to upi_command;
grant select, insert on webhook_deliveries to upi_command;
grant select, update on webhook_endpoints to upi_consumers;
grant select, insert, update on webhook_deliveries, webhook_attempts to upi_consumers;
grant select on webhook_endpoints, webhook_deliveries, webhook_attempts to upi_query;

-- +goose Down
drop table webhook_attempts;
drop table webhook_deliveries;
drop table webhook_secret_rotations;
drop table webhook_endpoints;
