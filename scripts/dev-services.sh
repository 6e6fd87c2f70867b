#!/usr/bin/env bash
# Makes sure PostgreSQL, Redis and RabbitMQ run on this machine's loopback for `make test`, `make run` and
# the benchmarks, installing them from Debian's packages where they are absent: PostgreSQL on 5432 (user
# postgres, trusted on loopback: a scratch machine only), Redis on 6379 without persistence, RabbitMQ on 5672
# (guest/guest, loopback only, as Debian ships it). Safe to run again: what already answers is left alone.
# These are not the compose stack's: that one runs its own, in containers (docs/deployment.md).
set -euo pipefail
log() { printf '\n== %s\n' "$*"; }

need_apt=()
command -v pg_ctlcluster >/dev/null 2>&1 && ls /etc/postgresql/*/main >/dev/null 2>&1 || need_apt+=(postgresql postgresql-contrib)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v pgbench >/dev/null 2>&1 || need_apt+=(postgresql-contrib)
command -v rabbitmq-server >/dev/null 2>&1 || need_apt+=(rabbitmq-server)
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

log "PostgreSQL"
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  # A freshly installed cluster asks for passwords on TCP; this scratch machine trusts loopback.
  if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
for _ in $(seq 60); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.5; done
pg_isready -h 127.0.0.1 -p 5432

log "Redis"
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
for _ in $(seq 60); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
redis-cli -h 127.0.0.1 -p 6379 ping

log "RabbitMQ"
# The event feed's tests publish to the real broker (guest/guest, loopback only, as Debian ships it).
rabbit_up() { rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1; }
if ! rabbit_up; then
  rabbitmq-server -detached >/dev/null 2>&1 || true
fi
for _ in $(seq 120); do rabbit_up && break; sleep 1; done
rabbit_up && echo "rabbitmq answers on 127.0.0.1:5672" || { echo "rabbitmq did not start"; exit 1; }
