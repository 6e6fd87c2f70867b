-- Consumer checkpoints and aggregate snapshots. Neither is a source of truth: a checkpoint is where a
-- consumer has got to in the log, a snapshot is a cache of a folded stream.

-- +goose Up
create table projection_checkpoints (
    name            text        primary key,
    -- The checkpoint is the (tx_id, global_position) pair of the last event applied.
    tx_id           xid8        not null default '0',
    global_position bigint      not null default 0,
    updated_at      timestamptz not null default now()
);

create table snapshots (
    aggregate_id   varchar(255) primary key,
    aggregate_type varchar(32)  not null,
    version        int          not null,
    schema_version int          not null,
    state          jsonb        not null,
    updated_at     timestamptz  not null default now()
);

-- +goose Down
drop table snapshots;
drop table projection_checkpoints;
