-- Refunds (docs/events.md, "Refunds"): refund rows of the "payments" projection, the refunded amount of a
-- payment, and the refund movements of the "accounts" projection. Additive: projections rebuilt from a log
-- without refunds come out as before.

-- +goose Up

-- Projection "payments": a refund, visible to the owners of the payment's payer and payee.
create table refunds (
    refund_id       uuid         primary key,
    payment_id      uuid         not null,
    payer_vpa       varchar(255) not null,
    payee_vpa       varchar(255) not null,
    payer_owner     text,
    payee_owner     text,
    upi_txn_id      text         not null,
    amount_paise    bigint       not null check (amount_paise > 0),
    reason          text         not null,
    status          text         not null check (status in ('PENDING', 'COMPLETED', 'FAILED')),
    failure_code    text,
    rrn             text,
    created_at      timestamptz  not null,
    updated_at      timestamptz  not null,
    tx_id           xid8         not null,
    global_position bigint       not null
);
create index refunds_payment_idx on refunds (payment_id);
alter table payments add column refunded_paise bigint not null default 0;

-- Projection "accounts": refund movements carry their refund.
alter table account_transactions drop constraint account_transactions_kind_check;
alter table account_transactions add constraint account_transactions_kind_check
    check (kind in ('DEPOSIT', 'DEBIT', 'CREDIT', 'REVERSAL', 'REFUND_DEBIT', 'REFUND_CREDIT', 'REFUND_REVERSAL'));
alter table account_transactions add column refund_id uuid;


-- +goose Down
alter table account_transactions drop column refund_id;
alter table account_transactions drop constraint account_transactions_kind_check;
alter table account_transactions add constraint account_transactions_kind_check
    check (kind in ('DEPOSIT', 'DEBIT', 'CREDIT', 'REVERSAL'));
alter table payments drop column refunded_paise;
drop table refunds;
