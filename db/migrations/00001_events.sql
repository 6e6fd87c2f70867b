-- The event store: the single source of truth. Append-only, enforced here rather than by convention.

-- +goose Up
create table events (
    -- Tie-breaker inside one transaction; on its own it is NOT a safe consumer cursor (see design).
    global_position bigint generated always as identity,
    -- The appending transaction. Consumers read in (tx_id, global_position) order below the
    -- snapshot xmin horizon, so an event whose transaction commits late is never skipped.
    tx_id           xid8         not null default pg_current_xact_id(),
    event_id        uuid         primary key,
    aggregate_id    varchar(255) not null,
    aggregate_type  varchar(32)  not null,
    event_type      varchar(64)  not null,
    version         int          not null check (version > 0),
    payload         jsonb        not null,
    metadata        jsonb        not null default '{}',
    created_at      timestamptz  not null default now(),
    constraint events_stream_version_key unique (aggregate_id, version)
);

create index events_tx_position_idx on events (tx_id, global_position);

-- +goose StatementBegin
create function events_refuse_change() returns trigger
language plpgsql as $$
begin
    raise exception 'events is append-only: % refused', tg_op
        using errcode = 'insufficient_privilege',
              hint = 'Correct a mistake by appending a compensating event.';
end
$$;
-- +goose StatementEnd

create trigger events_refuse_update_delete
    before update or delete on events
    for each row execute function events_refuse_change();

create trigger events_refuse_truncate
    before truncate on events
    for each statement execute function events_refuse_change();

revoke update, delete, truncate on events from public;

-- +goose Down
drop table events;
drop function events_refuse_change();
