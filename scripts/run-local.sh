#!/usr/bin/env bash
# Runs the four binaries from bin/ in the foreground against DATABASE_URL and REDIS_URL, each line
# prefixed with its service. Ctrl-C (or any one service exiting) stops all four, each draining cleanly.
# Each service SET ROLEs to its own role (upi_command, upi_consumers, upi_query); COMMAND_DATABASE_URL,
# CONSUMERS_DATABASE_URL and QUERY_DATABASE_URL give each its own login (scripts/db-logins.sh makes them),
# else every service uses DATABASE_URL, whose login must then be a member of all three roles.
# They run in development mode (UPI_ENV=development unless set): the development API keys, operator key
# (operator=dev-operator-secret) and service keys, by which the four trust each other with no setup.
# Each runs with GOMAXPROCS=SERVICE_GOMAXPROCS (default 1: the four share the machine's cores with
# PostgreSQL and Redis; 0 gives Go's default, one thread per core; .env.example). Every other setting
# (CONSUMER_PARTITIONS, say) passes through from the environment.
set -uo pipefail
cd "$(dirname "$0")/.."
pids=()
stop() {
  trap - INT TERM
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  wait "${pids[@]}" 2>/dev/null
}
trap 'stop; exit 0' INT TERM
export GOMAXPROCS="${SERVICE_GOMAXPROCS:-1}"
export UPI_ENV="${UPI_ENV:-development}"
# Mandates in development: a debit may be notified seconds before it and runs at any hour, so that a
# mandate's execution is seen at once (scripts/smoke.sh); the NPCI defaults (24h, peak windows) apply
# everywhere else and whenever these are set. Likewise a merchant has 30 seconds, not a day (T+1), to answer
# a dispute before the automatic chargeback (COMPLAINT_TAT).
if [[ "$UPI_ENV" == development ]]; then
  export MANDATE_NOTICE="${MANDATE_NOTICE:-2s}" MANDATE_PEAK_WINDOWS="${MANDATE_PEAK_WINDOWS:-none}"
  export COMPLAINT_TAT="${COMPLAINT_TAT:-30s}"
fi
declare -A db_url=(
  [command-service]="${COMMAND_DATABASE_URL:-${DATABASE_URL:-}}"
  [query-service]="${QUERY_DATABASE_URL:-${DATABASE_URL:-}}"
  [event-consumers]="${CONSUMERS_DATABASE_URL:-${DATABASE_URL:-}}"
)
for s in command-service query-service event-consumers api-gateway; do
  if [[ -n "${db_url[$s]:-}" ]]; then
    DATABASE_URL="${db_url[$s]}" "bin/$s" > >(sed -u "s/^/[$s] /") 2>&1 &
  else
    "bin/$s" > >(sed -u "s/^/[$s] /") 2>&1 &
  fi
  pids+=($!)
done
echo "[run] started; gateway on ${GATEWAY_ADDR:-:8080}. Ctrl-C stops all four." >&2
wait -n "${pids[@]}"
echo "[run] a service exited; stopping the others" >&2
stop
exit 1
