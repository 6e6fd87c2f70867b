-- Steps of the payment workflow that kept failing for a lasting reason, set aside so they stop holding
-- back the payments behind them. Visible to operators; retried (or their compensation) periodically.

-- +goose Up
create table workflow_parked (
    payment_id     uuid        not null,
    step           text        not null,
    cause_event_id uuid        not null,
    reason         text        not null,
    attempts       int         not null default 1,
    -- parked: waiting for a retry; resolved: its retry or compensation went through
    status         text        not null default 'parked' check (status in ('parked', 'resolved')),
    retry_step     text        not null,
    retry_body     jsonb       not null default 'null',
    resolution     text,
    parked_at      timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    primary key (payment_id, step)
);

create index workflow_parked_open_idx on workflow_parked (parked_at) where status = 'parked';

-- +goose Down
drop table workflow_parked;
