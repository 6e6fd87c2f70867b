-- UPI behaviour (docs/events.md, "v1 additions"): account kinds for payee lookup, the RRN sequence, and the
-- references and codes of payments. Every column is additive and nullable or defaulted, so projections
-- rebuilt from a log written before these existed come out the same as before, with PERSON accounts and no
-- RRNs.

-- +goose Up

-- The 6-digit tail of RRNs (YDDDHH + tail), drawn by the command service inside the debit's transaction.
-- It cycles after 999999: RRNs stay unique as long as fewer than a million debits share an hour.
create sequence rrn_tail minvalue 0 maxvalue 999999 start 0 cycle;

-- Projection "accounts": the kind of each account, shown by the payee lookup.
alter table accounts add column type text not null default 'PERSON' check (type in ('PERSON', 'ENTITY')),
    add column mcc text;
alter table account_transactions add column rrn text;

-- Projection "payments".
alter table payments add column upi_txn_id text, add column rrn text;
create index payments_rrn_idx on payments (rrn) where rrn is not null;

-- +goose Down
drop index payments_rrn_idx;
alter table payments drop column rrn, drop column upi_txn_id;
alter table account_transactions drop column rrn;
alter table accounts drop column mcc, drop column type;
drop sequence rrn_tail;
