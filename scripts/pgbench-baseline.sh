#!/usr/bin/env bash
# pgbench-baseline.sh DATABASE_URL [CLIENTS] [SECONDS]
# The figure every benchmark of this project is set beside (docs/benchmarks.md): PostgreSQL alone, running
# single-row INSERT transactions into a table shaped like the event log, from CLIENTS concurrent clients
# (default 16) for SECONDS (default 10). These machines are noisy, so run it in the same run as the
# benchmark it anchors and report the benchmark as a ratio to it. Prints "pgbench_tps=N" last; the scratch
# table is dropped afterwards. Needs psql and pgbench (Debian: postgresql-client, postgresql-contrib).
set -euo pipefail
url=${1:?usage: pgbench-baseline.sh DATABASE_URL [CLIENTS] [SECONDS]}
clients=${2:-16} seconds=${3:-10}
table=baseline_events_$$
script=$(mktemp)
trap 'psql -q "$url" -c "drop table if exists $table" >/dev/null 2>&1; rm -f "$script"' EXIT
psql -q -v ON_ERROR_STOP=1 "$url" >/dev/null <<SQL
create table $table (
  global_position bigint generated always as identity,
  tx_id xid8 not null default pg_current_xact_id(),
  event_id uuid primary key,
  aggregate_id varchar(255) not null,
  aggregate_type varchar(32) not null,
  event_type varchar(64) not null,
  version int not null,
  payload jsonb not null,
  metadata jsonb not null default '{}',
  created_at timestamptz not null default now(),
  unique (aggregate_id, version)
);
create index on $table (tx_id, global_position);
SQL
cat >"$script" <<SQL
insert into $table (event_id, aggregate_id, aggregate_type, event_type, version, payload)
values (gen_random_uuid(), 'pay-' || gen_random_uuid(), 'payment', 'PaymentInitiated', 1,
        '{"payer_vpa":"alice@okbank","payee_vpa":"bob@okbank","amount_paise":12500}');
SQL
out=$(pgbench -n -f "$script" -c "$clients" -j 2 -T "$seconds" "$url" 2>&1)
tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | tail -n 1)
[[ -n $tps ]] || { echo "$out" >&2; exit 1; }
echo "pgbench_tps=$tps"
