-- What operators need to keep work from getting stuck (docs/failure-handling.md, "Operating the
-- consumers"):
--
-- * parked workflow steps are retried when due (next_attempt_at, pushed back after each failed retry),
--   not oldest first, so steps that keep failing cannot starve newer ones; an operator may give one up
--   (status 'failed');
-- * an event a consumer cannot decode or apply is quarantined with its error, and so are the later events
--   of its stream, which wait behind it, while every other stream goes on; an operator releases the
--   stream once the cause is fixed, and the consumer applies what was held, in order.

-- +goose Up
alter table workflow_parked add column next_attempt_at timestamptz not null default now();
alter table workflow_parked drop constraint workflow_parked_status_check;
-- failed: given up by an operator (bin/event-consumers parked fail), never retried again
alter table workflow_parked add constraint workflow_parked_status_check
    check (status in ('parked', 'resolved', 'failed'));
drop index workflow_parked_open_idx;
create index workflow_parked_due_idx on workflow_parked (next_attempt_at) where status = 'parked';

create table consumer_quarantine (
    consumer             text         not null,
    event_id             uuid         not null,
    aggregate_id         varchar(255) not null,
    tx_id                xid8         not null,
    global_position      bigint       not null,
    event_type           varchar(64)  not null,
    -- held: not applied yet; released: applied by a release; dropped: left out by a checkpoint reset
    status               text         not null default 'held' check (status in ('held', 'released', 'dropped')),
    -- why the event could not be applied; null for an event that only waits behind an earlier one
    error                text,
    quarantined_at       timestamptz  not null default now(),
    -- set by an operator's release; cleared by the consumer when it has tried (released, or error updated)
    release_requested_at timestamptz,
    released_at          timestamptz,
    primary key (consumer, event_id)
);

create index consumer_quarantine_held_idx on consumer_quarantine (consumer, aggregate_id, tx_id, global_position)
    where status = 'held';

grant select, insert, update on consumer_quarantine to upi_consumers;

-- +goose Down
drop table consumer_quarantine;
drop index workflow_parked_due_idx;
create index workflow_parked_open_idx on workflow_parked (parked_at) where status = 'parked';
update workflow_parked set status = 'resolved' where status = 'failed';
alter table workflow_parked drop constraint workflow_parked_status_check;
alter table workflow_parked add constraint workflow_parked_status_check check (status in ('parked', 'resolved'));
alter table workflow_parked drop column next_attempt_at;
