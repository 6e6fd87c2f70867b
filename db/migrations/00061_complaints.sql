-- Complaints (docs/architecture.md, "Complaints"): the "complaints" projection's read model, read by the
-- query service (a client's own complaints, the operators' queue) and by event-consumers' complaints
-- process (the complaints the log can answer once their payment ends).

-- +goose Up
create table complaints (
    complaint_id    uuid         primary key,
    payment_id      uuid         not null,
    upi_txn_id      text         not null,
    payer_vpa       varchar(255) not null,
    payee_vpa       varchar(255) not null,
    -- The owners of the payer (who raised it) and of the payee (the merchant), who may read it.
    payer_owner     text,
    payee_owner     text,
    amount_paise    bigint       not null,
    reason_code     text         not null,
    description     text         not null default '',
    status          text         not null check (status in ('RAISED', 'RESOLVED', 'REJECTED')),
    resolution_code text,
    resolved_by     text,
    -- A dispute with the merchant is due by then (COMPLAINT_TAT); null for one the log answers.
    due_at          timestamptz,
    created_at      timestamptz  not null,
    updated_at      timestamptz  not null,
    tx_id           xid8         not null,
    global_position bigint       not null
);
create index complaints_open on complaints (created_at) where status = 'RAISED';
create index complaints_payment on complaints (payment_id);

-- Account owners, kept by this projection so that it depends on no other projection's tables.
create table complaint_account_owners (
    vpa             varchar(255) primary key,
    owner_client_id text         not null
);

alter table complaints owner to upi_consumers;
alter table complaint_account_owners owner to upi_consumers;
grant select on complaints to upi_query;

-- +goose Down
drop table complaint_account_owners;
drop table complaints;
