-- Cheaper projection writes (docs/benchmarks.md): nothing a reader sees changes.
--
-- payment_events: the trail is read by payment, in log order, and an event is one position of the log, so
-- (payment_id, tx_id, global_position) is its key: an event recorded twice for a payment still violates
-- it. The separate event_id key was a second index written on every row and read by nothing.
--
-- payments: every payment row is updated twice after its insert (its RRN, then its outcome). Room left on
-- each page lets the outcome's update stay on the page without touching the indexes (a HOT update).

-- +goose Up
alter table payment_events drop constraint payment_events_pkey;
drop index payment_events_payment_idx;
alter table payment_events add constraint payment_events_pkey primary key (payment_id, tx_id, global_position);
alter table payments set (fillfactor = 80);

-- +goose Down
alter table payments reset (fillfactor);
alter table payment_events drop constraint payment_events_pkey;
alter table payment_events add constraint payment_events_pkey primary key (event_id);
create index payment_events_payment_idx on payment_events (payment_id, tx_id, global_position);
