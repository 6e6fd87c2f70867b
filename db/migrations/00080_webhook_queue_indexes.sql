-- Two indexes of webhook_deliveries no statement uses any more, dropped: each cost every delivery an index
-- entry when it was queued. The sender's claim finds the earliest pending delivery of each resource
-- through webhook_deliveries_queue_idx (endpoint, resource, delivery) since it was rewritten as one
-- DISTINCT ON; it no longer walks an endpoint's pending deliveries in id order (pending_idx, 00062) nor by
-- due time (due_idx, 00040): the due time is checked on the earliest delivery of each resource only.

-- +goose Up
drop index webhook_deliveries_due_idx;
drop index webhook_deliveries_pending_idx;

-- +goose Down
create index webhook_deliveries_due_idx on webhook_deliveries (endpoint_id, next_attempt_at) where state = 'PENDING';
create index webhook_deliveries_pending_idx on webhook_deliveries (endpoint_id, delivery_id) where state = 'PENDING';
