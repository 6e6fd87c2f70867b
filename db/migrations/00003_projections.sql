-- Read models built by event-consumers from the log and read by query-service. Each projection owns its
-- tables: it is the only writer, and `event-consumers rebuild NAME` replaces them wholesale (shadow
-- copies made with `like ... including all`, so every index and constraint belongs in these definitions).
-- Every row keeps the stream version it reflects: an event whose version is not the next one is an
-- ordering violation and stops the projection rather than being applied out of order.

-- +goose Up

-- Projection "accounts".
create table accounts (
    vpa             varchar(255) primary key,
    owner_client_id text         not null,
    holder_name     text         not null,
    balance_paise   bigint       not null check (balance_paise >= 0),
    version         int          not null,
    created_at      timestamptz  not null,
    updated_at      timestamptz  not null,
    -- Position of the last event applied to the row (the resource's `position`).
    tx_id           xid8         not null,
    global_position bigint       not null
);

-- One row per money movement. The account stream's version orders an account's history (it is the log
-- order for one stream), and is the keyset of newest-first pagination.
create table account_transactions (
    vpa                 varchar(255) not null,
    version             int          not null,
    kind                text         not null check (kind in ('DEPOSIT', 'DEBIT', 'CREDIT', 'REVERSAL')),
    amount_paise        bigint       not null check (amount_paise > 0),
    balance_after_paise bigint       not null,
    payment_id          uuid,
    counterparty_vpa    varchar(255),
    reference           text,
    at                  timestamptz  not null,
    tx_id               xid8         not null,
    global_position     bigint       not null,
    primary key (vpa, version)
);

-- Projection "payments".
create table payments (
    payment_id      uuid         primary key,
    payer_vpa       varchar(255) not null,
    payee_vpa       varchar(255) not null,
    amount_paise    bigint       not null,
    note            text         not null,
    client_id       text         not null,
    -- Owners of the two accounts at initiation: the payment is visible to them only.
    payer_owner     text,
    payee_owner     text,
    status          text         not null check (status in ('PENDING', 'COMPLETED', 'FAILED')),
    failure_code    text,
    created_at      timestamptz  not null,
    updated_at      timestamptz  not null,
    version         int          not null,
    tx_id           xid8         not null,
    global_position bigint       not null
);

-- Every event of a payment's stream, and every account event carrying its payment id: the audit trail.
-- event_id is unique, so an event recorded twice is an error, not a duplicate line.
create table payment_events (
    event_id        uuid         primary key,
    payment_id      uuid         not null,
    event_type      varchar(64)  not null,
    at              timestamptz  not null,
    data            jsonb        not null,
    tx_id           xid8         not null,
    global_position bigint       not null
);
create index payment_events_payment_idx on payment_events (payment_id, tx_id, global_position);

-- Account owners as the payments projection saw them, so that it needs no other projection's tables.
create table payment_account_owners (
    vpa             varchar(255) primary key,
    owner_client_id text         not null
);

insert into projection_checkpoints (name) values ('accounts'), ('payments') on conflict do nothing;

-- +goose Down
drop table payment_account_owners;
drop table payment_events;
drop table payments;
drop table account_transactions;
drop table accounts;
delete from projection_checkpoints where name in ('accounts', 'payments');
