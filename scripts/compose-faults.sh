#!/usr/bin/env bash
# Faults as an operator meets them, each under a bank workload through the published gateway port
# (deploy/bankload: payments with retried idempotency keys; it checks that money is conserved, that every
# payment ends COMPLETED or FAILED, that no acknowledged payment is lost and that no 5xx but 503 was seen).
# Runs against the compose stack of this directory, which it starts (`up --build --wait`) if it is not up.
#
#   scripts/compose-faults.sh                   # every scenario
#   scripts/compose-faults.sh kill-command netcut-consumers   # some
#
# Scenarios: networks kill-consumers kill-command kill-gateway restart-postgres netcut-consumers rolling-restart
#            persistence replicas observability fresh
# Each prints one line `VERDICT <scenario>: PASS|FAIL ...` with its figures; the script exits 1 if any failed.
#   LOAD_SECONDS   payments are sent this long in each scenario (default 60)
#   LOAD_RATE      payments started per second (default 20)
#   GATEWAY_PORT   the published gateway port (default 8080)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
# shellcheck source=scripts/compose-lib.sh
. scripts/compose-lib.sh

LOAD_SECONDS=${LOAD_SECONDS:-60}
LOAD_RATE=${LOAD_RATE:-20}
PORT=${GATEWAY_PORT:-8080}
URL=http://127.0.0.1:$PORT
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()

all=(networks kill-consumers kill-command kill-gateway restart-postgres netcut-consumers rolling-restart persistence replicas observability fresh)
scenarios=("$@")
((${#scenarios[@]})) || scenarios=("${all[@]}")

log() { printf '[%s] %s\n' "$(date -u +%T)" "$*"; }
verdict() { # NAME PASS|FAIL DETAILS
  echo "VERDICT $1: $2 $3"
  [[ $2 == PASS ]] || failed+=("$1")
}

(cd deploy/bankload && GOWORK=off go build -o "$work/bankload" .)

# load NAME [bankload flags]: the workload in the background; its pid in $load_pid, its output in $work/NAME.
load() {
  local name=$1; shift
  "$work/bankload" run -url "$URL" -name "$name" -duration "${LOAD_SECONDS}s" -rate "$LOAD_RATE" "$@" \
    >"$work/$name.out" 2>&1 &
  load_pid=$!
}
# finish NAME EXTRA: waits for the workload and prints its verdict (with EXTRA figures appended).
finish() {
  local name=$1 extra=${2:-} rc=0
  wait "$load_pid" || rc=$?
  grep -v '^VERDICT' "$work/$name.out" | sed 's/^/  /'
  local line
  line=$(grep '^VERDICT' "$work/$name.out" || echo "VERDICT $name: FAIL the workload printed no verdict (exit $rc)")
  echo "$line $extra"
  [[ $rc == 0 && $line == *": PASS "* ]] || failed+=("$name")
}

since() { awk -v a="$(date +%s.%N)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }
over10() { awk -v x="$1" 'BEGIN { exit !(x > 10) }'; }

# healthy_after SERVICE T0: seconds from T0 (epoch, fractional) until every container of SERVICE is healthy.
healthy_after() {
  local svc=$1 t0=$2 id ok
  for _ in $(seq 600); do
    ok=1
    for id in $(containers "$svc"); do
      [[ $(docker inspect -f '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id") == running/healthy ]] || ok=
    done
    [[ -n $ok ]] && { since "$t0"; return; }
    sleep 0.5
  done
  echo "never"
}

# sigkill SERVICE [N]: SIGKILL to the main process of a container, from the host, as the kernel's OOM
# killer or a crash would: the restart policy (unless-stopped) brings it back.
sigkill() { kill -KILL "$(main_pid "$@")"; }

ensure_up() {
  if ! wait_healthy 5 >/dev/null 2>&1 || [[ -z $(containers api-gateway) ]]; then
    log "starting the stack (up --build --wait)"
    up_wait --build
  fi
}

kill_scenario() { # NAME SERVICE
  local name=$1 svc=$2 t0 restarts
  ensure_up
  log "$name: load for ${LOAD_SECONDS}s; SIGKILL to $svc's main process after 10 s"
  load "$name"
  sleep 10
  restarts=$(docker inspect -f '{{.RestartCount}}' "$(containers "$svc" | head -n1)")
  t0=$(date +%s.%N)
  sigkill "$svc"
  sleep 1
  local back
  back=$(healthy_after "$svc" "$t0")
  local now
  now=$(docker inspect -f '{{.RestartCount}}' "$(containers "$svc" | head -n1)")
  finish "$name" "restarted_by_policy=$((now > restarts ? 1 : 0)) healthy_again_after=${back}s"
  ((now > restarts)) || { echo "  $svc was not restarted by its restart policy"; failed+=("$name"); }
}

# reach NETWORK HOST PORT: whether a throwaway container on one of the project's networks opens a TCP
# connection to HOST:PORT within 2 s (the PostgreSQL image: it is in every stack and has bash).
reach() {
  docker run --rm --network "$(project)_$1" --entrypoint bash postgres:15 \
    -c "timeout 2 bash -c '</dev/tcp/$2/$3'" >/dev/null 2>&1
}

# The networks of docker-compose.yml, tried from outside the stack as an intruder would be: a feed
# subscriber reaches RabbitMQ and nothing else, even by address; backend has no route out of its network.
scenario_networks() {
  ensure_up
  local bad=() target
  reach feed rabbitmq 5672 || bad+=("feed->rabbitmq:5672 refused")
  for target in postgres:5432 redis:6379 command-service:8081 query-service:8082 event-consumers:8083 \
    event-consumers:8093 api-gateway:8080 api-gateway:8090 feed-relay:8083 feed-relay:8093; do
    local svc=${target%:*} port=${target#*:} ip
    ip=$(service_ip "$svc")
    if reach feed "$svc" "$port" || { [[ -n $ip ]] && reach feed "$ip" "$port"; }; then
      bad+=("feed->$target open")
    fi
  done
  # Inside backend the services find each other; from it nothing outside answers (the edge network's
  # gateway address, the host's Docker bridge).
  reach backend postgres 5432 || bad+=("backend->postgres refused")
  local edge_ip host_ip
  edge_ip=$(service_ip api-gateway 1 edge)
  host_ip=$(docker network inspect -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' bridge)
  reach backend "$edge_ip" 8080 && bad+=("backend->gateway's edge address open")
  reach backend "$host_ip" "$PORT" && bad+=("backend->host's published port open")
  if ((${#bad[@]})); then
    verdict networks FAIL "${bad[*]}"
  else
    verdict networks PASS "feed reaches RabbitMQ only; backend reaches no address outside it"
  fi
}

scenario_kill-consumers() { kill_scenario kill-consumers event-consumers; }
scenario_kill-command() { kill_scenario kill-command command-service; }
scenario_kill-gateway() { kill_scenario kill-gateway api-gateway; }

scenario_restart-postgres() {
  ensure_up
  log "restart-postgres: load for ${LOAD_SECONDS}s; docker compose restart postgres after 10 s"
  load restart-postgres
  sleep 10
  local t0
  t0=$(date +%s.%N)
  dc restart postgres >/dev/null 2>&1
  local pg
  pg=$(healthy_after postgres "$t0")
  local all
  all=$(wait_healthy 120 >/dev/null && since "$t0" || echo never)
  finish restart-postgres "postgres_healthy_after=${pg}s stack_healthy_after=${all}s"
}

scenario_netcut-consumers() {
  ensure_up
  local net id
  net="$(project)_backend"
  id=$(containers event-consumers | head -n1)
  log "netcut-consumers: load for ${LOAD_SECONDS}s; event-consumers off the network for 20 s after 10 s"
  load netcut-consumers
  sleep 10
  docker network disconnect "$net" "$id"
  sleep 20
  docker network connect --alias event-consumers "$net" "$id"
  local t0 back
  t0=$(date +%s.%N)
  back=$(healthy_after event-consumers "$t0")
  finish netcut-consumers "cut=20s healthy_after_reconnect=${back}s"
}

scenario_rolling-restart() {
  ensure_up
  log "rolling-restart: load for ${LOAD_SECONDS}s; each service recreated in turn (up -d --no-deps --force-recreate)"
  load rolling-restart -duration "$((LOAD_SECONDS > 60 ? LOAD_SECONDS : 60))s"
  sleep 5
  local s t0 times=()
  for s in command-service query-service event-consumers api-gateway; do
    t0=$(date +%s.%N)
    dc up -d --no-deps --force-recreate "$s" >/dev/null 2>&1
    times+=("$s=$(healthy_after "$s" "$t0")s")
  done
  finish rolling-restart "recreated_and_healthy: ${times[*]}"
}

# psql_in_stack SQL: runs SQL in the stack's database, as its owner, inside the postgres container.
psql_in_stack() {
  docker exec "$(containers postgres | head -n1)" sh -c 'psql -tA -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "$1"' _ "$1"
}

scenario_persistence() {
  ensure_up
  log "persistence: a short load, then down and up: every balance, payment and checkpoint kept"
  "$work/bankload" run -url "$URL" -name persistence-load -duration 15s -rate "$LOAD_RATE" -state "$work/state.json" \
    >"$work/p.out" 2>&1 || { cat "$work/p.out"; verdict persistence FAIL "the load before down failed"; return; }
  sleep 3
  local before after
  before=$(psql_in_stack 'select projection, global_position from projection_checkpoints order by 1' 2>&1 | tr '\n' ' ')
  dc down >/dev/null 2>&1
  up_wait >/dev/null
  after=$(psql_in_stack 'select projection, global_position from projection_checkpoints order by 1' 2>&1 | tr '\n' ' ')
  "$work/bankload" verify -url "$URL" -name persistence -state "$work/state.json" >"$work/persistence.out" 2>&1 || true
  grep -v '^VERDICT' "$work/persistence.out" | sed 's/^/  /'
  local line
  line=$(grep '^VERDICT' "$work/persistence.out" || echo "VERDICT persistence: FAIL no verdict")
  if [[ $before != "$after" || -z $before ]]; then
    echo "  checkpoints before down: $before"
    echo "  checkpoints after up:    $after"
    line=${line/: PASS/: FAIL}
  fi
  echo "$line checkpoints_kept=$([[ $before == "$after" && -n $before ]] && echo yes || echo no)"
  [[ $line == *": PASS "* ]] || failed+=(persistence)
}

scenario_fresh() {
  ensure_up
  log "fresh: down -v then up is a fresh system"
  dc down -v >/dev/null 2>&1
  up_wait >/dev/null
  local events
  events=$(psql_in_stack 'select count(*) from events')
  if [[ $events == 0 ]]; then
    verdict fresh PASS "events_after_down_v_up=0"
  else
    verdict fresh FAIL "events_after_down_v_up=$events"
  fi
}

# metric IP PORT NAME-AND-LABELS: the sum of a metric's samples whose line starts with the given text.
metric() {
  curl -fsS --max-time 3 "http://$1:$2/metrics" 2>/dev/null | awk -v m="$3" 'index($0, m) == 1 {s += $NF} END {printf "%d", s}'
}

scenario_replicas() {
  ensure_up
  log "replicas: --scale command-service=2 --scale query-service=2 --scale event-consumers=2"
  up_wait --scale command-service=2 --scale query-service=2 --scale event-consumers=2 --no-recreate >/dev/null
  local -a cs qs ec c0 q0
  mapfile -t cs < <(for i in 1 2; do service_ip command-service "$i"; done)
  mapfile -t qs < <(for i in 1 2; do service_ip query-service "$i"; done)
  mapfile -t ec < <(for i in 1 2; do service_ip event-consumers "$i"; done)
  load replicas -duration "$((LOAD_SECONDS > 60 ? LOAD_SECONDS : 60))s"
  # The gateway's calls, counted by each replica over 15 s of load, before any replica is killed.
  sleep 5
  local ip i spread=yes shares=()
  for ip in "${cs[@]}"; do c0+=("$(metric "$ip" 8091 http_requests_total)"); done
  for ip in "${qs[@]}"; do q0+=("$(metric "$ip" 8092 http_requests_total)"); done
  sleep 15
  for i in 0 1; do
    local dc_=$(($(metric "${cs[$i]}" 8091 http_requests_total) - ${c0[$i]}))
    local dq_=$(($(metric "${qs[$i]}" 8092 http_requests_total) - ${q0[$i]}))
    shares+=("command#$((i + 1))=$dc_ query#$((i + 1))=$dq_")
    ((dc_ >= 20 && dq_ >= 5)) || spread=no
  done
  echo "  requests served in 15 s by each replica: ${shares[*]}"
  # The consumer replica that holds the worker locks, and the one standing by.
  local holder=1 standby=2 total
  (($(metric "${ec[1]}" 8093 'consumer_active') > $(metric "${ec[0]}" 8093 'consumer_active'))) && { holder=2; standby=1; }
  total=$(metric "${ec[$((holder - 1))]}" 8093 'consumer_active')
  log "replicas: event-consumers #$holder holds $total consumers; SIGKILL to it"
  local t0 took=never
  t0=$(date +%s.%N)
  sigkill event-consumers "$holder"
  for _ in $(seq 200); do
    if (($(metric "${ec[$((standby - 1))]}" 8093 'consumer_active') >= total && total > 0)); then
      took=$(since "$t0"); break
    fi
    sleep 0.1
  done
  log "replicas: the standby ran every consumer ${took}s after the kill; SIGKILL to one command-service, then one query-service"
  sigkill command-service 1
  sleep 5
  sigkill query-service 2
  healthy_after event-consumers "$(date +%s)" >/dev/null
  # A network cut instead of a kill: the standby takes over once PostgreSQL drops the cut session.
  holder=1; standby=2
  (($(metric "${ec[1]}" 8093 'consumer_active') > $(metric "${ec[0]}" 8093 'consumer_active'))) && { holder=2; standby=1; }
  total=$(metric "${ec[$((holder - 1))]}" 8093 'consumer_active')
  local net id took_cut=never
  net="$(project)_backend"
  id=$(containers event-consumers | sed -n "${holder}p")
  log "replicas: event-consumers #$holder (holding $total) cut off the network"
  t0=$(date +%s.%N)
  docker network disconnect "$net" "$id"
  for _ in $(seq 300); do
    if (($(metric "${ec[$((standby - 1))]}" 8093 'consumer_active') >= total && total > 0)); then
      took_cut=$(since "$t0"); break
    fi
    sleep 0.1
  done
  sleep 2
  docker network connect --alias event-consumers "$net" "$id"
  finish replicas "consumer_failover_after_kill=${took}s consumer_failover_after_netcut=${took_cut}s calls_spread=$spread"
  if [[ $spread != yes || $took == never || $took_cut == never ]] || over10 "$took" || over10 "$took_cut"; then
    echo "  replicas: the calls were not spread, or a consumer's work was not taken over within 10 s"
    failed+=(replicas)
  fi
  up_wait --scale command-service=1 --scale query-service=1 --scale event-consumers=1 >/dev/null
}

scenario_observability() {
  ensure_up
  log "observability: the profile's Prometheus (Grafana and Jaeger are pulled images, left out here)"
  dc --profile observability up -d --no-deps prometheus >/dev/null
  local ip targets down=unknown
  for _ in $(seq 60); do
    ip=$(service_ip prometheus)
    targets=$(curl -fsS --max-time 3 "http://$ip:9090/api/v1/targets" 2>/dev/null || true)
    if [[ -n $targets ]]; then
      local up_n
      up_n=$(grep -o '"health":"up"' <<<"$targets" | wc -l)
      down=$(grep -o '"health":"[a-z]*"' <<<"$targets" | grep -vc '"up"' || true)
      local jobs
      jobs=$(grep -o '"job":"[a-z-]*"' <<<"$targets" | sort -u | tr '\n' ' ')
      if [[ $down == 0 && $up_n -ge 5 ]]; then
        verdict observability PASS "targets_up=$up_n jobs: $jobs"
        dc --profile observability rm -sf prometheus >/dev/null 2>&1
        return
      fi
    fi
    sleep 2
  done
  verdict observability FAIL "targets not all up: $(grep -o '"job":"[a-z-]*"\|"health":"[a-z]*"' <<<"$targets" | tr '\n' ' ')"
  dc --profile observability rm -sf prometheus >/dev/null 2>&1
}

for s in "${scenarios[@]}"; do
  declare -F "scenario_$s" >/dev/null || { echo "unknown scenario $s (known: ${all[*]})"; exit 2; }
  "scenario_$s" || failed+=("$s")
  failed=($(printf '%s\n' "${failed[@]}" | awk 'NF && !seen[$0]++'))
done
# FAULTS_ADVISORY: scenarios whose failure is printed (their VERDICT line says FAIL) but does not fail the
# run: a known defect that is being fixed, named in the log rather than hidden.
advisory=()
for f in "${failed[@]}"; do
  if [[ " ${FAULTS_ADVISORY:-} " == *" $f "* ]]; then
    advisory+=("$f")
    failed=("${failed[@]/$f/}")
  fi
done
failed=($(printf '%s\n' "${failed[@]}" | awk 'NF'))
((${#advisory[@]} == 0)) || echo "compose faults: FAILED but advisory (FAULTS_ADVISORY, a known defect): ${advisory[*]}"
if ((${#failed[@]})); then
  echo "compose faults: FAILED: ${failed[*]}"
  exit 1
fi
echo "compose faults: $((${#scenarios[@]} - ${#advisory[@]})) of ${#scenarios[@]} scenarios passed"
