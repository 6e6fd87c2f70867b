-- Erasure by crypto-shredding (docs/architecture.md, "Personal data and erasure"): the personal data in
-- event payloads (holder names, notes, refund reasons) is sealed with a key per person, kept here and not
-- in the log. Erasing a person destroys the key (key set to null, erased_at stamped): the log keeps every
-- event, amounts and references intact, and the sealed fields can no longer be read by anyone.
--
-- A row is never deleted: an erased subject keeps its tombstone, so that no new key can ever be made for
-- it and every reader can tell "erased" from "never had a key".

-- +goose Up
create table subject_keys (
    -- the person the key belongs to: an account's VPA
    subject    varchar(255) primary key,
    -- 32 random bytes (AES-256); null once erased
    key        bytea        check (key is null or length(key) = 32),
    created_at timestamptz  not null default now(),
    erased_at  timestamptz,
    check ((key is null) = (erased_at is not null))
);

-- The command service makes keys (opening an account, sealing a note) and destroys them (erasure); the
-- query service reads them to open what it shows. The consumers never need one: the read models and the
-- event feed carry sealed fields as the log does.
grant select, insert, update on subject_keys to upi_command;
grant select on subject_keys to upi_query;

-- The accounts projection records an erasure: the account is closed for good.
alter table accounts add column closed_at timestamptz;

-- +goose Down
alter table accounts drop column closed_at;
drop table subject_keys;
