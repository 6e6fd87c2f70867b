-- Least privilege (docs/deployment.md, "Database roles and logins"): one NOLOGIN role per service, which each
-- service SET ROLEs to on every connection, whatever login DATABASE_URL names (that login must be a member
-- of the role). The migration owner keeps the event log: no service role may UPDATE, DELETE or TRUNCATE
-- events, nor alter it (so none can disable its append-only triggers either).
--
-- Roles belong to the cluster, not to one database, so creating them tolerates their existing already
-- (another database of the cluster, or a concurrent migration of one, made them). Grants are per database.
--
-- upi_consumers owns the projection tables: `event-consumers rebuild` swaps shadow copies in by moving
-- tables between schemas and dropping the old ones, which only an owner may do. Tables it creates are
-- readable by upi_query by default, so a rebuilt projection keeps its readers.

-- +goose Up
-- +goose StatementBegin
do $$
declare
    r text;
begin
    foreach r in array array['upi_command', 'upi_consumers', 'upi_query'] loop
        begin
            execute format('create role %I nologin', r);
        exception when duplicate_object or unique_violation then
            null; -- made already, by another database of this cluster or a concurrent migration
        end;
    end loop;
end
$$;
-- +goose StatementEnd

-- Every service checks the schema version on start (db.RequireSchema).
grant select on goose_db_version to upi_command, upi_consumers, upi_query;

-- The command service: appends to the log and reads it, keeps snapshots, draws RRN tails.
grant select, insert on events to upi_command;
grant usage on sequence events_global_position_seq to upi_command;
grant select, insert, update on snapshots to upi_command;
grant usage on sequence rrn_tail to upi_command;

-- The event consumers: read the log; own the projections; keep checkpoints (the relay's included) and the
-- workflow's parked steps.
grant select on events to upi_consumers;
grant select, insert, update on projection_checkpoints to upi_consumers;
grant select, insert, update on workflow_parked to upi_consumers;
alter table accounts owner to upi_consumers;
alter table account_transactions owner to upi_consumers;
alter table payments owner to upi_consumers;
alter table payment_events owner to upi_consumers;
alter table payment_account_owners owner to upi_consumers;
alter table refunds owner to upi_consumers;
-- A rebuild makes schemas of shadow tables and moves them into public.
-- +goose StatementBegin
do $$
begin
    execute format('grant create on database %I to upi_consumers', current_database());
end
$$;
-- +goose StatementEnd
grant create on schema public to upi_consumers;
alter default privileges for role upi_consumers grant select on tables to upi_query;
-- The log-horizon age metric reads other sessions' transactions from pg_stat_activity. Granting a
-- predefined role needs a superuser (or its admin); without one the metric only sees the role's own.
-- +goose StatementBegin
do $$
begin
    grant pg_read_all_stats to upi_consumers;
exception when insufficient_privilege then
    raise notice 'pg_read_all_stats not granted to upi_consumers: %', sqlerrm;
end
$$;
-- +goose StatementEnd

-- The query service: the projections and checkpoints, never the log.
grant select on accounts, account_transactions, payments, payment_events, payment_account_owners, refunds,
    projection_checkpoints to upi_query;

-- +goose Down
revoke select on accounts, account_transactions, payments, payment_events, payment_account_owners, refunds,
    projection_checkpoints from upi_query;
alter default privileges for role upi_consumers revoke select on tables from upi_query;
revoke create on schema public from upi_consumers;
-- +goose StatementBegin
do $$
begin
    execute format('revoke create on database %I from upi_consumers', current_database());
end
$$;
-- +goose StatementEnd
alter table accounts owner to current_user;
alter table account_transactions owner to current_user;
alter table payments owner to current_user;
alter table payment_events owner to current_user;
alter table payment_account_owners owner to current_user;
alter table refunds owner to current_user;
revoke all on workflow_parked, projection_checkpoints, events from upi_consumers;
revoke all on events, snapshots from upi_command;
revoke all on sequence events_global_position_seq, rrn_tail from upi_command;
revoke all on goose_db_version from upi_command, upi_consumers, upi_query;
-- The roles stay: they belong to the cluster, and other databases of it may use them.
