-- The webhook sender claims an endpoint's pending deliveries oldest first (delivery_id), a hundred at a
-- time. Without an index in that order each claim read and sorted every pending delivery of the endpoint,
-- so a backlog cost quadratic time to drain; with it a claim reads about the rows it returns.

-- +goose Up
create index webhook_deliveries_pending_idx on webhook_deliveries (endpoint_id, delivery_id) where state = 'PENDING';

-- +goose Down
drop index webhook_deliveries_pending_idx;
