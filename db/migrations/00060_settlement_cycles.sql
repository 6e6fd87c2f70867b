-- Settlement cycles and reconciliation (docs/architecture.md, "Settlement cycles and reconciliation"): the
-- "settlement" projection files every completed money movement under the cycle in which its completing
-- event was appended, with one line per side (the payer's bank's DEBIT, the payee's bank's CREDIT). A
-- cycle's position per bank and its reconciliation file are read from the lines.

-- +goose Up

-- Movements begun and not yet complete (a payment between its initiation and its end, a refund, a
-- chargeback): what the completing event needs to write the lines, kept by this projection alone.
create table settlement_pending (
    movement_id  text         primary key,
    type         text         not null,
    upi_txn_id   text         not null,
    payer_vpa    varchar(255) not null,
    payee_vpa    varchar(255) not null,
    amount_paise bigint       not null check (amount_paise > 0),
    rrn          text
);

-- The cycles that hold movements. closes_at is the cycle's end plus SETTLEMENT_CLOSE_GRACE; closed is set
-- once the log is known to hold nothing more for it, and a closed cycle gets no more lines.
create table settlement_cycles (
    cycle_id  text        primary key,
    starts_at timestamptz not null,
    ends_at   timestamptz not null,
    closes_at timestamptz not null,
    closed    boolean     not null default false,
    closed_at timestamptz
);

-- One line per side of a movement. A movement is in exactly one cycle: (movement_id, side) is unique.
create table settlement_lines (
    movement_id     text         not null,
    side            text         not null check (side in ('DEBIT', 'CREDIT')),
    cycle_id        text         not null,
    bank            text         not null,
    type            text         not null check (type in ('P2P', 'P2M', 'REFUND', 'REVERSAL', 'CHARGEBACK',
                                                          'DEPOSIT', 'WITHDRAWAL')),
    upi_txn_id      text         not null,
    rrn             text         not null default '',
    payer_vpa       varchar(255) not null,
    payee_vpa       varchar(255) not null,
    amount_paise    bigint       not null check (amount_paise > 0),
    npci_code       text         not null,
    at              timestamptz  not null,
    tx_id           xid8         not null,
    global_position bigint       not null,
    primary key (movement_id, side)
);
create index settlement_lines_cycle_bank on settlement_lines (cycle_id, bank, at, upi_txn_id, side);

-- The latest append time the projection has seen (one row): a cycle whose close time it has passed is
-- closed, and a movement completed in a closed cycle (a transaction that committed past the grace) is
-- filed under the first open one.
create table settlement_clock (
    id      int         primary key check (id = 1),
    seen_at timestamptz not null
);

alter table settlement_pending owner to upi_consumers;
alter table settlement_cycles owner to upi_consumers;
alter table settlement_lines owner to upi_consumers;
alter table settlement_clock owner to upi_consumers;
grant select on settlement_cycles, settlement_lines to upi_query;

-- +goose Down
drop table settlement_clock;
drop table settlement_lines;
drop table settlement_cycles;
drop table settlement_pending;
