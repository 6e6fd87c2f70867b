#!/usr/bin/env bash
# bench.sh: the pgbench baseline, then the Go benchmarks of every module, and a summary of each
# throughput figure (any metric per second: events/s, ops/s, ...) as a ratio to the baseline's TPS from
# the same run, and of each figure in milliseconds (latencies, CPU milliseconds per payment) as it is.
# These machines are noisy: only the ratio travels. See docs/benchmarks.md.
#
#   DATABASE_URL     scratch database for the baseline, created if missing
#                    (default postgres://postgres@127.0.0.1:5432/upi_bench?sslmode=disable)
#   TEST_DATABASE_URL, TEST_REDIS_URL
#                    where the benchmarks make their own databases (default: DATABASE_URL's server,
#                    and the local Redis)
#   BENCHTIME        go test -benchtime (default 3s)
#   BENCH            go test -bench pattern (default .)
#   BENCH_MODULES    the modules to run, space-separated (default: all five)
#
# Benchmarks bound by time rather than by a count do one measured run each and are run with
# -benchtime=1x whatever BENCHTIME is: event-consumers' BenchmarkPayments (PAYBENCH_SECONDS of load per
# sub-benchmark). `make bench-payments` runs the baseline and that benchmark alone.
set -euo pipefail
cd "$(dirname "$0")/.."

DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/upi_bench?sslmode=disable}
BENCHTIME=${BENCHTIME:-3s}
BENCH=${BENCH:-.}
baseline=scripts/pgbench-baseline.sh
read -r -a modules <<<"${BENCH_MODULES:-shared command-service event-consumers query-service api-gateway}"
# module:benchmark of the benchmarks that run once (-benchtime=1x).
once=(event-consumers:BenchmarkPayments)

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

# bench MODULE ARGS...: go test in MODULE with ARGS, its output kept for the summary.
bench() {
  local m=$1
  shift
  (cd "$m" && go test -run '^$' "$@") 2>&1 | tee -a "$out" || failed+=("$m")
}

# BENCH's first level (the pattern before any '/') picks top-level benchmarks; the rest picks their
# sub-benchmarks.
bench_top=${BENCH%%/*}
bench_sub=${BENCH#"$bench_top"}
for m in "${modules[@]}"; do
  echo "== $m"
  skip=()
  for o in "${once[@]}"; do
    [[ ${o%%:*} == "$m" ]] && skip+=("${o#*:}")
  done
  if ((${#skip[@]})); then
    pattern=$(IFS='|'; echo "^(${skip[*]})\$")
    bench "$m" -bench "$BENCH" -skip "$pattern" -benchtime="$BENCHTIME" ./...
    for name in "${skip[@]}"; do
      if [[ $name =~ $bench_top ]]; then
        bench "$m" -bench "^$name\$$bench_sub" -benchtime=1x -timeout 30m .
      fi
    done
  else
    bench "$m" -bench "$BENCH" -benchtime="$BENCHTIME" ./...
  fi
done

echo
echo "== summary (ratio = figure / pgbench_tps of this run; figures in milliseconds without one)"
awk '
  /^pgbench_tps=/ { split($0, kv, "="); tps = kv[2]; printf "%-72s %12.0f %-24s %6s\n", "pgbench baseline (16 clients)", tps, "tps", "1.00" }
  /^pkg: / { pkg = $2 }
  /^Benchmark/ {
    for (i = 2; i < NF; i++) {
      unit = $(i + 1)
      if (unit ~ /\/s$/) {
        printf "%-72s %12.0f %-24s %6.2f\n", pkg "." $1, $i, unit, (tps > 0 ? $i / tps : 0)
      } else if (unit ~ /^(cpu-)?ms|[-_]ms(\/|$)/) {
        printf "%-72s %12.2f %-24s\n", pkg "." $1, $i, unit
      }
    }
  }
' "$out"

# The score against the peers measured on the same kind of machine (docs/benchmarks.md, "Peers"):
# pgledger, where a transfer is one SQL function call, at 0.24x the baseline and about 1.3 ms of CPU.
# The floor the project holds itself to is 0.15x and 2.0 ms, with every feature on: webhooks included
# (PAYBENCH_WEBHOOKS=1, which `make bench-payments` sets unless told otherwise).
awk -v webhooks="${PAYBENCH_WEBHOOKS:-0}" '
  /^pgbench_tps=/ { split($0, kv, "="); tps = kv[2] }
  /^Benchmark/ && $1 ~ /^BenchmarkPayments\/spread-16(-[0-9]+)?$/ {
    for (i = 2; i < NF; i++) {
      if ($(i + 1) == "completed/s") done_s = $i
      if ($(i + 1) == "cpu-ms/payment") cpu = $i
    }
  }
  END {
    if (tps > 0 && done_s > 0) {
      printf "\n== against pgledger (0.24x, 1.3 ms a transfer): spread-16 %.3fx (%s), %.2f ms a payment (%s)\n",
        done_s / tps, (done_s / tps >= 0.24 ? "passes" : sprintf("%.0f%% of it", 100 * done_s / tps / 0.24)),
        cpu, (cpu <= 1.3 ? "passes" : sprintf("%.1fx its CPU", cpu / 1.3))
      printf "== against the floor (0.15x, 2.0 ms, webhooks on): %s, %s, webhooks %s\n",
        (done_s / tps >= 0.15 ? "throughput passes" : "throughput short"), (cpu <= 2.0 ? "CPU passes" : "CPU over"),
        (webhooks == "1" ? "on" : "OFF: not the judged configuration")
    }
  }
' "$out"

if ((${#failed[@]})); then
  echo "benchmarks failed in: ${failed[*]}" >&2
  exit 1
fi
