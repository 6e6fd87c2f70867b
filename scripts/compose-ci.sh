#!/usr/bin/env bash
# The compose stage of CI (.ci/run), also run by hand: the images built where they are absent
# (scripts/offline-images.sh: no registry is needed), the stack started from a clean state as operators
# start it (`down -v`, then `up -d --build --wait`), the smoke script and README.md's curl examples
# against the published gateway port, then every fault scenario (scripts/compose-faults.sh) with a shorter
# load, and `down -v` at the end. Each step prints its verdict; the first failure stops it, with the logs.
#   COMPOSE_PROJECT_NAME   default upici; GATEWAY_PORT default 18080 (apart from `make run`'s 8080)
#   LOAD_SECONDS           the load of each fault scenario (default 20)
#   OFFLINE_COMPOSE_V2     1 builds Compose v2 where it is absent (default 0 here: CI runs with the Compose
#                          the machine has, v2 if installed, else v1, to stay within its time)
#   COMPOSE_KEEP=1         leave the stack running at the end
set -euo pipefail
cd "$(dirname "$0")/.."
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-upici} GATEWAY_PORT=${GATEWAY_PORT:-18080}
export LOAD_SECONDS=${LOAD_SECONDS:-20} OFFLINE_COMPOSE_V2=${OFFLINE_COMPOSE_V2:-0}
# shellcheck source=scripts/compose-lib.sh
. scripts/compose-lib.sh
log() { printf '\n== compose: %s (%s)\n' "$*" "$(date -u +%T)"; }
t_stage=$SECONDS
url=http://127.0.0.1:$GATEWAY_PORT

on_fail() {
  echo "compose stage failed; container states and log tails:"
  dc ps || true
  for id in $(containers); do
    echo "--- $(docker inspect -f '{{.Name}}' "$id")"; docker logs --tail 25 "$id" 2>&1 || true
  done
  [[ -n ${COMPOSE_KEEP:-} ]] || dc down -v --remove-orphans >/dev/null 2>&1 || true
}
trap on_fail ERR

log "images (scripts/offline-images.sh: each built only where absent)"
t=$SECONDS
scripts/offline-images.sh
echo "images ready in $((SECONDS - t))s"
. scripts/compose-lib.sh   # again: the Compose tool may have been installed just now

log "down -v, then up --build --wait (${DC[*]})"
t=$SECONDS
dc down -v --remove-orphans >/dev/null 2>&1 || true
up_wait --build
echo "stack built and healthy in $((SECONDS - t))s:"
dc ps

log "smoke test against the published port $GATEWAY_PORT"
scripts/smoke.sh "$url"

log "README.md's curl examples"
scripts/readme-examples.sh "$url"

log "fault scenarios under a bank workload (${LOAD_SECONDS}s of load each)"
# restart-postgres is advisory for now: when PostgreSQL takes longer to come back than the gateway's call
# deadline, a payment POST can get a 504 UPSTREAM_TIMEOUT (retryable, and no money is lost, but not the
# 503 the service promises); its verdict is printed either way.
FAULTS_ADVISORY=${FAULTS_ADVISORY-restart-postgres} scripts/compose-faults.sh

trap - ERR
if [[ -z ${COMPOSE_KEEP:-} ]]; then dc down -v --remove-orphans >/dev/null 2>&1; fi
echo "compose stage passed in $((SECONDS - t_stage))s"
