-- Money's two sides (docs/events.md, "Withdrawals and settlement accounts"): the withdrawals and the banks'
-- settlement accounts, built by the "accounts" projection, and withdrawal movements in account_transactions.
-- Additive: a projection rebuilt from a log written before withdrawals and settlement legs existed comes out
-- as before, with these tables empty.

-- +goose Up

-- One row per withdrawal, written when it is decided (a withdrawal is decided synchronously: it is
-- COMPLETED or FAILED from its first event, never pending in the read model). owner_client_id is the
-- account's owner, who alone may read it.
create table withdrawals (
    withdrawal_id   uuid         primary key,
    vpa             varchar(255) not null,
    owner_client_id text         not null,
    amount_paise    bigint       not null check (amount_paise > 0),
    reference       text         not null,
    status          text         not null check (status in ('COMPLETED', 'FAILED')),
    failure_code    text,
    rrn             text,
    created_at      timestamptz  not null,
    updated_at      timestamptz  not null,
    -- Position of the event that decided it (the resource's `position`).
    tx_id           xid8         not null,
    global_position bigint       not null,
    check ((status = 'COMPLETED') = (failure_code is null))
);

-- One row per shard of a bank's settlement account (stream settlement:BANK:NN); a bank's balance is the sum
-- of its shards. It may be negative: what the bank owes its account holders. version is the shard stream's
-- version, which guards every change like an account's.
create table settlement_accounts (
    bank            text         not null,
    shard           int          not null check (shard >= 0),
    balance_paise   bigint       not null,
    deposits        bigint       not null check (deposits >= 0),
    withdrawals     bigint       not null check (withdrawals >= 0),
    version         int          not null,
    updated_at      timestamptz  not null,
    tx_id           xid8         not null,
    global_position bigint       not null,
    primary key (bank, shard)
);

-- Withdrawal movements carry their withdrawal.
alter table account_transactions drop constraint account_transactions_kind_check;
alter table account_transactions add constraint account_transactions_kind_check
    check (kind in ('DEPOSIT', 'DEBIT', 'CREDIT', 'REVERSAL', 'REFUND_DEBIT', 'REFUND_CREDIT', 'REFUND_REVERSAL',
                    'WITHDRAWAL'));
alter table account_transactions add column withdrawal_id uuid;

-- Least privilege (00008): event-consumers owns the projection's tables (a rebuild moves and drops them),
-- the query service reads them.
alter table withdrawals owner to upi_consumers;
alter table settlement_accounts owner to upi_consumers;
grant select on withdrawals, settlement_accounts to upi_query;

-- +goose Down
alter table account_transactions drop column withdrawal_id;
alter table account_transactions drop constraint account_transactions_kind_check;
alter table account_transactions add constraint account_transactions_kind_check
    check (kind in ('DEPOSIT', 'DEBIT', 'CREDIT', 'REVERSAL', 'REFUND_DEBIT', 'REFUND_CREDIT', 'REFUND_REVERSAL'));
drop table settlement_accounts;
drop table withdrawals;
