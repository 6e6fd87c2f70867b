-- RRNs that never collide (docs/events.md, "RRNs"). An RRN is YDDDHH (the hour, IST) and a 6-digit tail. The
-- tails of each hour are handed out from rrn_blocks: a command service reserves a block of an hour's tails at
-- a time (one short transaction outside any debit's), hands them to the debits it decides, and takes back
-- what a replay or rejection did not use. A row is never deleted, so an hour's tails are never handed out
-- twice, even when the year digit comes round again ten years later. The sequence before it (rrn_tail)
-- cycled, and was drawn by replays and rejections too: it goes.
--
-- The log itself refuses a second debit with an RRN already given: a unique index over the RRNs of the
-- events that carry one. It covers the events appended from this migration on: a log written before it may
-- hold repeats of the cycling sequence, which `event-consumers verify` reports.

-- +goose Up
create table rrn_blocks (
    prefix    text primary key check (prefix ~ '^[0-9]{6}$'),
    next_tail int  not null check (next_tail >= 0)
);
grant select, insert, update on rrn_blocks to upi_command;

-- +goose StatementBegin
do $$
declare
    from_position bigint := coalesce((select max(global_position) from events), 0);
begin
    execute format($f$
        create unique index events_rrn_key on events ((payload->>'rrn'))
        where event_type in ('AccountDebited', 'RefundDebited', 'FundsWithdrawn')
          and coalesce(payload->>'rrn', '') <> '' and global_position > %s$f$, from_position);
end
$$;
-- +goose StatementEnd

revoke all on sequence rrn_tail from upi_command;
drop sequence rrn_tail;

-- +goose Down
create sequence rrn_tail minvalue 0 maxvalue 999999 start 0 cycle;
grant usage on sequence rrn_tail to upi_command;
drop index events_rrn_key;
drop table rrn_blocks;
