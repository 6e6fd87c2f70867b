#!/usr/bin/env bash
# Runs the four binaries from bin/ in the foreground against DATABASE_URL and REDIS_URL, each line
# prefixed with its service. Ctrl-C (or any one service exiting) stops all four, each draining cleanly.
set -uo pipefail
cd "$(dirname "$0")/.."
pids=()
stop() {
  trap - INT TERM
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  wait "${pids[@]}" 2>/dev/null
}
trap 'stop; exit 0' INT TERM
for s in command-service query-service event-consumers api-gateway; do
  "bin/$s" > >(sed -u "s/^/[$s] /") 2>&1 &
  pids+=($!)
done
echo "[run] started; gateway on ${GATEWAY_ADDR:-:8080}. Ctrl-C stops all four." >&2
wait -n "${pids[@]}"
echo "[run] a service exited; stopping the others" >&2
stop
exit 1
