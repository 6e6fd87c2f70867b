#!/bin/sh
# The official image's entry point, as far as this project uses it: leading options go to redis-server,
# which runs as redis with the data in /data, listening on every interface without protected mode (the
# official build's default: the container's network is what guards it).
set -e
case "$1" in -*|*.conf) set -- redis-server "$@" ;; esac
if [ "$1" = redis-server ]; then
  case "$2" in
    *.conf) ;;
    *) case " $* " in *" --protected-mode "*) ;; *) set -- "$@" --protected-mode no ;; esac ;;
  esac
  case " $* " in *" --dir "*) ;; *) set -- "$@" --dir /data ;; esac
  if [ "$(id -u)" = 0 ]; then
    find /data \! -user redis -exec chown redis:redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
