#!/usr/bin/env bash
# bench.sh: the pgbench baseline, then the Go benchmarks of every module, and a summary of each
# throughput figure (any metric per second: events/s, ops/s, ...) as a ratio to the baseline's TPS from
# the same run. These machines are noisy: only the ratio travels. See docs/benchmarks.md.
#
#   DATABASE_URL     scratch database for the baseline, created if missing
#                    (default postgres://postgres@127.0.0.1:5432/upi_bench?sslmode=disable)
#   TEST_DATABASE_URL, TEST_REDIS_URL
#                    where the benchmarks make their own databases (default: DATABASE_URL's server,
#                    and the local Redis)
#   BENCHTIME        go test -benchtime (default 3s)
#   BENCH            go test -bench pattern (default .)
set -euo pipefail
cd "$(dirname "$0")/.."

DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/upi_bench?sslmode=disable}
BENCHTIME=${BENCHTIME:-3s}
BENCH=${BENCH:-.}
baseline=../shared/bench/pgbench-baseline.sh
modules=(shared command-service event-consumers query-service api-gateway)

db_name=$(sed -E 's#^[^/]*//[^/]*/([^?]*).*#\1#' <<<"$DATABASE_URL")
admin_url=$(sed -E 's#^([^/]*//[^/]*/)[^?]*#\1postgres#' <<<"$DATABASE_URL")
export TEST_DATABASE_URL=${TEST_DATABASE_URL:-$admin_url}
export TEST_REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}

if [[ $(psql -tAq "$admin_url" -c "select 1 from pg_database where datname = '$db_name'") != 1 ]]; then
  psql -q "$admin_url" -c "create database \"$db_name\""
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
failed=()

echo "== baseline: $baseline, 16 clients, 10 s"
bash "$baseline" "$DATABASE_URL" 16 10 | tee -a "$out"

for m in "${modules[@]}"; do
  echo "== $m"
  (cd "$m" && go test -run '^$' -bench "$BENCH" -benchtime="$BENCHTIME" ./...) 2>&1 | tee -a "$out" ||
    failed+=("$m")
done

echo
echo "== summary (ratio = figure / pgbench_tps of this run)"
awk '
  /^pgbench_tps=/ { split($0, kv, "="); tps = kv[2]; printf "%-72s %12.0f %-9s %6s\n", "pgbench baseline (16 clients)", tps, "tps", "1.00" }
  /^pkg: / { pkg = $2 }
  /^Benchmark/ {
    for (i = 2; i < NF; i++) {
      if ($(i + 1) ~ /\/s$/) {
        printf "%-72s %12.0f %-9s %6.2f\n", pkg "." $1, $i, $(i + 1), (tps > 0 ? $i / tps : 0)
      }
    }
  }
' "$out"

if ((${#failed[@]})); then
  echo "benchmarks failed in: ${failed[*]}" >&2
  exit 1
fi
