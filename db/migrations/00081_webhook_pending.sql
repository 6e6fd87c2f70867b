-- Pending webhook deliveries in a narrow table of their own, and attempt rows for failures only
-- (docs/webhooks.md, "Cost").
--
-- The sender's queue was a partial index of webhook_deliveries (queue_idx: endpoint, resource, delivery,
-- where state = 'PENDING'). Because `state` was in its predicate, no update that finished a delivery could
-- be HOT: each wrote a new version of the wide row (its body is most of it) on another page and four new
-- index entries, and a success wrote an attempt row with its key besides.
--
-- webhook_pending holds what the sender needs of a delivery until it is done: its endpoint, resource and
-- id (the claim's order), its next attempt's time and the attempts made. The consumer and the command
-- service insert a delivery and its pending row in one statement; the record of its last attempt deletes
-- the pending row and updates the delivery row once. Its one index is its primary key, in the claim's
-- order (endpoint, resource, delivery): the claim walks it, and the record finds a row by it (the sender
-- knows each delivery's endpoint and resource), so a second index on delivery_id alone would cost every
-- delivery an index entry for nothing. A key, not just an index: every row is one delivery, and a table
-- that is updated and deleted from needs one for anything that copies changes by row (logical
-- replication). No fillfactor: only a retry updates a pending row (its attempts and next time, neither
-- indexed), and its rows are deleted within seconds, which leaves their pages room.
--
-- No index of webhook_deliveries mentions state, attempts, next_attempt_at or completed_at any more, so
-- the update that finishes a delivery is HOT when its page has room for the new version. A delivery row
-- is updated once, and the rows of a page (consecutive deliveries, queued by one batch of the log,
-- claimed together) are usually finished by the same record statement, before any of their old versions
-- can be pruned: the page must hold a second version of every row at once. Hence a fillfactor of 50. The
-- price is disk: a page keeps about half its space once vacuum removes the old versions, where a packed
-- table's non-HOT updates would leave space that later inserts reuse; the pages written per delivery are
-- about the same (a non-HOT update writes its new version on another page too), minus four index entries.
-- The setting applies to pages filled from now on.
--
-- The delivery row records the attempt that finished it, succeeded or given up (last_at, last_status_code,
-- last_error, last_latency_ms, last_excerpt); webhook_attempts holds the earlier ones, each of which
-- failed. Every attempt is in one place: a delivery that succeeds at once writes no attempt row. The
-- delivery list reads both (query-service).
--
-- next_attempt_at of webhook_deliveries is no longer read or written (webhook_pending has it); it stays
-- for the previous release, which keeps running while this migration does (docs/deployment.md,
-- "Upgrading"), and goes in a later one. Deliveries that release's consumer queues after this migration
-- have no pending row; stop event-consumers for the upgrade, or queue them after it with
--   insert into webhook_pending (endpoint_id, resource_id, delivery_id, attempts, next_attempt_at)
--   select endpoint_id, resource_id, delivery_id, attempts, next_attempt_at from webhook_deliveries
--   where state = 'PENDING' on conflict do nothing;

-- +goose Up
create table webhook_pending (
    endpoint_id     uuid        not null,
    resource_id     text        not null,
    delivery_id     bigint      not null,
    attempts        int         not null default 0,  -- made so far
    next_attempt_at timestamptz not null default now(),
    primary key (endpoint_id, resource_id, delivery_id)
);
insert into webhook_pending (endpoint_id, resource_id, delivery_id, attempts, next_attempt_at)
select endpoint_id, resource_id, delivery_id, attempts, next_attempt_at from webhook_deliveries where state = 'PENDING';

drop index webhook_deliveries_queue_idx;
alter table webhook_deliveries
    set (fillfactor = 50),
    add column last_at          timestamptz,  -- null: not finished, or finished before this migration
    add column last_status_code int,          -- null: no response (refused, timed out)
    add column last_error       text,
    add column last_latency_ms  int,
    add column last_excerpt     text;

grant insert on webhook_pending to upi_command;
grant select, insert, update, delete on webhook_pending to upi_consumers;
grant select on webhook_pending to upi_query;

-- +goose Down
insert into webhook_attempts (delivery_id, attempt, at, status_code, error, latency_ms, response_excerpt)
select delivery_id, attempts, last_at, last_status_code, last_error, last_latency_ms, coalesce(last_excerpt, '')
from webhook_deliveries where last_at is not null
on conflict do nothing;
update webhook_deliveries d set attempts = p.attempts, next_attempt_at = p.next_attempt_at
from webhook_pending p where d.delivery_id = p.delivery_id;
alter table webhook_deliveries
    reset (fillfactor),
    drop column last_at,
    drop column last_status_code,
    drop column last_error,
    drop column last_latency_ms,
    drop column last_excerpt;
create index webhook_deliveries_queue_idx on webhook_deliveries (endpoint_id, resource_id, delivery_id) where state = 'PENDING';
drop table webhook_pending;
