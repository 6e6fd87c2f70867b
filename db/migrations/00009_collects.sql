-- Collect requests (docs/events.md, "Collect requests"): rows of the "payments" projection, visible to the
-- owners of the payee and the payer. The pending ones with their expiry are also what event-consumers'
-- expiry watcher reads. Additive: projections rebuilt from a log without collect requests come out as before.

-- +goose Up

create table collect_requests (
    collect_id      uuid         primary key,
    payee_vpa       varchar(255) not null,
    payer_vpa       varchar(255) not null,
    payee_owner     text,
    payer_owner     text,
    amount_paise    bigint       not null check (amount_paise > 0),
    note            text         not null,
    status          text         not null check (status in ('PENDING', 'APPROVED', 'DECLINED', 'EXPIRED')),
    payment_id      uuid,
    npci_code       text,
    expires_at      timestamptz  not null,
    created_at      timestamptz  not null,
    updated_at      timestamptz  not null,
    -- seq is the global position of the request's opening: the payer's inbox is listed by it, newest first.
    seq             bigint       not null,
    tx_id           xid8         not null,
    global_position bigint       not null
);
create index collect_requests_payer_idx on collect_requests (payer_vpa, seq desc);
create index collect_requests_due_idx on collect_requests (expires_at) where status = 'PENDING';

-- Least privilege (00008): event-consumers owns the projection's tables (a rebuild moves and drops them),
-- the query service reads them.
alter table collect_requests owner to upi_consumers;
grant select on collect_requests to upi_query;

-- +goose Down
drop table collect_requests;
