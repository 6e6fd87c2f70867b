-- QR codes, intent payments and AutoPay mandates (docs/events.md, "QR codes" and "Mandates"). Tables of the
-- "merchant" projection, plus two columns of the payments projection's table. Additive: a log without
-- these events rebuilds as before.

-- +goose Up

-- A payment made by an intent or QR carries the merchant's reference (tr); a mandate's debit its mandate.
alter table payments add column merchant_reference text, add column mandate_id uuid;
create index payments_merchant_reference_idx on payments (merchant_reference) where merchant_reference is not null;

create table qr_codes (
    qr_id              uuid         primary key,
    payee_vpa          varchar(255) not null,
    payee_owner        text         not null,
    payee_name         text         not null,
    mcc                text,
    merchant_reference text         not null,
    amount_paise       bigint,
    min_amount_paise   bigint,
    note               text,
    status             text         not null check (status in ('ACTIVE', 'PAID')),
    payment_id         uuid,
    expires_at         timestamptz  not null,
    created_at         timestamptz  not null,
    updated_at         timestamptz  not null,
    version            int          not null,
    tx_id              xid8         not null,
    global_position    bigint       not null,
    unique (payee_vpa, merchant_reference)
);

create table mandates (
    mandate_id      uuid         primary key,
    umn             text         not null unique,
    payer_vpa       varchar(255) not null,
    payee_vpa       varchar(255) not null,
    payer_owner     text,
    payee_owner     text,
    amount_paise    bigint       not null,
    amount_rule     text         not null,
    frequency       text         not null,
    valid_from      timestamptz  not null,
    valid_until     timestamptz  not null,
    revocable       boolean      not null,
    purpose         text         not null,
    status          text         not null,
    npci_code       text,
    revoked_by      text,
    expires_at      timestamptz  not null,
    created_at      timestamptz  not null,
    updated_at      timestamptz  not null,
    version         int          not null,
    seq             bigint       not null,
    tx_id           xid8         not null,
    global_position bigint       not null
);
create index mandates_payer_idx on mandates (payer_vpa, seq desc);
create index mandates_payee_idx on mandates (payee_vpa, seq desc);
create index mandates_pending_due_idx on mandates (expires_at) where status = 'PENDING_APPROVAL';
create index mandates_validity_due_idx on mandates (valid_until) where status in ('ACTIVE', 'PAUSED');

-- One row per notified debit. due_at is when the timer must look at it next (its execution, its retry, or
-- its approval's deadline); null once it has ended.
create table mandate_debits (
    notification_id uuid         primary key,
    mandate_id      uuid         not null,
    amount_paise    bigint       not null,
    debit_at        timestamptz  not null,
    execute_at      timestamptz  not null,
    needs_approval  boolean      not null,
    approve_by      timestamptz,
    approved        boolean      not null default false,
    status          text         not null,
    attempt         int          not null default 0,
    payment_id      uuid,
    payment_status  text,
    failure_code    text,
    due_at          timestamptz,
    seq             bigint       not null,
    created_at      timestamptz  not null,
    updated_at      timestamptz  not null,
    tx_id           xid8         not null,
    global_position bigint       not null
);
create index mandate_debits_mandate_idx on mandate_debits (mandate_id, seq);
create index mandate_debits_due_idx on mandate_debits (due_at) where due_at is not null;
create index mandate_debits_payment_idx on mandate_debits (payment_id) where payment_id is not null;

-- A mandate's audit trail, oldest first.
create table mandate_events (
    mandate_id      uuid         not null,
    version         int          not null,
    event_type      text         not null,
    at              timestamptz  not null,
    data            jsonb        not null,
    tx_id           xid8         not null,
    global_position bigint       not null,
    primary key (mandate_id, version)
);

-- Least privilege (00008): event-consumers owns the projection's tables, the query service reads them.
alter table qr_codes owner to upi_consumers;
alter table mandates owner to upi_consumers;
alter table mandate_debits owner to upi_consumers;
alter table mandate_events owner to upi_consumers;
grant select on qr_codes, mandates, mandate_debits, mandate_events to upi_query;

-- +goose Down
drop table mandate_events;
drop table mandate_debits;
drop table mandates;
drop table qr_codes;
drop index payments_merchant_reference_idx;
alter table payments drop column merchant_reference, drop column mandate_id;
