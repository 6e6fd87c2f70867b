# Sourced by the compose scripts: which Compose tool runs the stack, and `up --wait` with either.
#
# `docker compose` (Compose v2) when the docker CLI has it; otherwise `docker-compose` (v1), which has no
# --wait: up_wait then polls each container's health itself. The Dockerfile needs no BuildKit, so either
# builds it with whatever builder it has.
# COMPOSE_PROJECT_NAME and GATEWAY_PORT are taken from the environment (defaults: the directory's name, 8080).


if docker compose version >/dev/null 2>&1; then
  DC=(docker compose)
  DC_WAIT=1
else
  DC=(docker-compose)
  DC_WAIT=
fi
# The compose file reads .env when there is one; a fresh clone runs on the defaults (.env.example's).
dc() { "${DC[@]}" "$@"; }

project() { echo "${COMPOSE_PROJECT_NAME:-$(basename "$PWD" | tr -cd 'a-z0-9_-')}"; }

# containers [SERVICE]: the ids of the project's containers (of one service), running or not.
containers() {
  local f=(--filter "label=com.docker.compose.project=$(project)")
  [[ -n ${1:-} ]] && f+=(--filter "label=com.docker.compose.service=$1")
  docker ps -aq "${f[@]}"
}

# wait_healthy [SECONDS]: until every container of the project is healthy (running, where it has no
# healthcheck), and every one-shot service (migrate, db-logins) has exited 0. Fails on a one-shot's
# failure, or when the time is up, with the states that were not yet right.
wait_healthy() {
  local limit=${1:-300} t0=$SECONDS id line pending svc status health code policy
  while :; do
    pending=()
    for id in $(containers); do
      line=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.State.ExitCode}} {{.HostConfig.RestartPolicy.Name}}' "$id" 2>/dev/null) || continue
      read -r svc status health code policy <<<"$line"
      if [[ $policy == no || -z $policy ]]; then
        [[ $status == exited && $code != 0 ]] && { echo "$svc exited with $code:"; docker logs --tail 30 "$id"; return 1; }
        [[ $status == exited ]] && continue
      fi
      [[ $status == running && ($health == healthy || $health == none) ]] || pending+=("$svc:$status/$health")
    done
    ((${#pending[@]} == 0)) && return 0
    if ((SECONDS - t0 > limit)); then
      echo "not healthy after ${limit}s: ${pending[*]}"
      return 1
    fi
    sleep 1
  done
}

# up_wait ARGS...: `up -d ARGS --wait`, or its equivalent.
up_wait() {
  if [[ -n $DC_WAIT ]]; then
    dc up -d --wait "$@"
  else
    dc up -d "$@" && wait_healthy 300
  fi
}

# service_ip SERVICE [N] [NETWORK]: the address of the Nth (default first) container of SERVICE on one of
# the project's networks (default backend, where every service but the broker is).
service_ip() {
  local id net
  id=$(containers "$1" | sed -n "${2:-1}p")
  net="$(project)_${3:-backend}"
  docker inspect -f "{{with index .NetworkSettings.Networks \"$net\"}}{{.IPAddress}}{{end}}" "$id"
}

# main_pid SERVICE [N]: the host pid of the main process of the Nth container of SERVICE.
main_pid() { docker inspect -f '{{.State.Pid}}' "$(containers "$1" | sed -n "${2:-1}p")"; }
