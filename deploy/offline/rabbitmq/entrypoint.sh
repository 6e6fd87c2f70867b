#!/usr/bin/env bash
# The official image's entry point, as far as this project uses it: the default user from
# RABBITMQ_DEFAULT_USER/RABBITMQ_DEFAULT_PASS, reachable from other containers, the Erlang cookie in the
# data volume (and in root's home, for `docker exec ... rabbitmq-diagnostics`), the server run as rabbitmq.
set -euo pipefail
if [[ ${1:-} == rabbitmq-server && $(id -u) == 0 ]]; then
  home=/var/lib/rabbitmq
  mkdir -p "$home" /var/log/rabbitmq
  cookie=$home/.erlang.cookie
  if [[ ! -s $cookie ]]; then
    tr -dc 'A-Z' </dev/urandom | head -c 20 >"$cookie"
  fi
  chown -R rabbitmq:rabbitmq "$home" /var/log/rabbitmq
  chmod 400 "$cookie"
  install -m 400 "$cookie" /root/.erlang.cookie
  {
    echo "loopback_users = none"
    echo "listeners.tcp.default = 5672"
    echo "management.tcp.port = 15672"
    [[ -n ${RABBITMQ_DEFAULT_USER:-} ]] && echo "default_user = $RABBITMQ_DEFAULT_USER"
    [[ -n ${RABBITMQ_DEFAULT_PASS:-} ]] && echo "default_pass = $RABBITMQ_DEFAULT_PASS"
    [[ -n ${RABBITMQ_DEFAULT_VHOST:-} ]] && echo "default_vhost = $RABBITMQ_DEFAULT_VHOST"
  } >/etc/rabbitmq/rabbitmq.conf
  chown rabbitmq:rabbitmq /etc/rabbitmq/rabbitmq.conf
  chmod 600 /etc/rabbitmq/rabbitmq.conf
  exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups env HOME="$home" "$@"
fi
exec "$@"
