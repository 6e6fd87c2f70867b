-- The webhook sender opens the sealed personal fields of a delivery's body (a payment's note, a refund's
-- reason) at the moment it sends it, so that a client is shown what the API shows: the stored body stays
-- sealed as the log is, and a person erased before the send reads "[erased]". It reads keys only: it never
-- writes one, caches none, and the read models and the feed stay sealed (docs/webhooks.md).

-- +goose Up
grant select on subject_keys to upi_consumers;

-- +goose Down
revoke select on subject_keys from upi_consumers;
