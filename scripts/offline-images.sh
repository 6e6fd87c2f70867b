#!/usr/bin/env bash
# Builds, where they are absent and only then, a local image for every image that Dockerfile and
# docker-compose.yml name, from Debian's packages and the Go module proxy alone (docs/deployment.md,
# "Air-gapped install"). Each is tagged with the official name, so the compose file stays the one that pulls
# the official images where a registry answers. Nothing here pulls from an image registry.
#
#   scripts/offline-images.sh            # build the missing ones
#   OFFLINE_REBUILD=1 scripts/offline-images.sh   # build them all again
#
# Where the packages come from: DEBIAN_MIRROR if set, otherwise the Debian mirror this host's apt already
# uses (the first source of the host's release, main component); GOPROXY if set, otherwise `go env GOPROXY`.
# Grafana and Jaeger are not packaged by Debian: they are not built here (docs/deployment.md).
# Where the docker CLI has no `docker compose`, Compose v2 is installed too (scripts/compose-v2.sh;
# OFFLINE_COMPOSE_V2=0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

SUITE=${DEBIAN_SUITE:-bookworm}
BASE=upi-offline/debian:$SUITE
# The Go release of the build image: the toolchain the Dockerfile's golang:1.26 stands for.
GO_VERSION=${OFFLINE_GO_VERSION:-1.26.8}
DEFS=deploy/offline
start=$(date +%s)
log() { printf '[offline-images] %s\n' "$*"; }

have() { [[ -z ${OFFLINE_REBUILD:-} ]] && docker image inspect "$1" >/dev/null 2>&1; }

mirror() {
  if [[ -n ${DEBIAN_MIRROR:-} ]]; then echo "$DEBIAN_MIRROR"; return; fi
  apt-get update -qq >/dev/null 2>&1 || true
  apt-cache policy 2>/dev/null | awk -v s=" $SUITE/main " 'index($0, s) && /Packages/ {print $2; exit}'
}

# The base: a minimal Debian root file system made by debootstrap, imported as an image.
build_base() {
  if have "$BASE"; then log "$BASE present"; return; fi
  command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
  local m root
  m=$(mirror)
  [[ -n $m ]] || { echo "no Debian mirror for $SUITE: set DEBIAN_MIRROR" >&2; exit 1; }
  root=$(mktemp -d /var/tmp/offline-rootfs.XXXXXX)
  trap 'rm -rf "$root"' RETURN
  log "debootstrap $SUITE (minbase)"
  debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$root" "$m" >"$root.log" 2>&1 \
    || { tail -n 30 "$root.log"; exit 1; }
  rm -f "$root.log"
  # Images keep no apt lists nor caches; the suite's updates and security sources, where this host has them.
  local sec upd
  upd=$(apt-cache policy 2>/dev/null | awk -v s=" $SUITE-updates/main " 'index($0, s) && /Packages/ {print $2; exit}')
  sec=$(apt-cache policy 2>/dev/null | awk -v s=" $SUITE-security/main " 'index($0, s) && /Packages/ {print $2; exit}')
  {
    echo "deb $m $SUITE main"
    [[ -n $upd ]] && echo "deb $upd $SUITE-updates main"
    [[ -n $sec ]] && echo "deb $sec $SUITE-security main"
  } >"$root/etc/apt/sources.list"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$root/etc/apt/apt.conf.d/90offline"
  # The package lists are fetched once, here, and kept in the base: the images built on it install
  # from them without each fetching its own (scripts in deploy/offline update them if they are stale).
  chroot "$root" apt-get update -qq
  rm -f "$root"/var/cache/apt/archives/*.deb
  log "docker import $BASE"
  tar -C "$root" --numeric-owner -c . | docker import -c 'CMD ["bash"]' - "$BASE" >/dev/null
}

# image NAME DIR [docker build args...]: builds deploy/offline/DIR as NAME unless present.
image() {
  local name=$1 dir=$2; shift 2
  if have "$name"; then log "$name present"; return; fi
  log "build $name"
  docker build -q --build-arg BASE="$BASE" "$@" -t "$name" "$DEFS/$dir" >/dev/null
}

# The Go toolchain, from the module proxy (the module golang.org/toolchain), checked against the checksum
# database like any module, then copied into the build context of the Go image.
build_golang() {
  local name=golang:${GO_VERSION%.*}
  if have "$name"; then log "$name present"; return; fi
  local mod=golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-amd64 dir ctx
  log "go mod download $mod"
  dir=$(cd / && GOWORK=off GOFLAGS= go mod download -json "$mod" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  [[ -d $dir ]] || { echo "the module proxy did not give $mod" >&2; exit 1; }
  ctx=$(mktemp -d /var/tmp/offline-golang.XXXXXX)
  cp "$DEFS/golang/Dockerfile" "$ctx/"
  cp -R "$dir" "$ctx/go" && chmod -R u+w "$ctx/go"
  # The module cache keeps files read-only and not executable; go and its tools must run.
  chmod 755 "$ctx"/go/bin/* "$ctx"/go/pkg/tool/*/*
  # Certificate authorities this host trusts beyond Debian's (Debian keeps them in this folder).
  mkdir -p "$ctx/local-ca"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/local-ca/" 2>/dev/null || true
  log "build $name (go$GO_VERSION)"
  docker build -q --build-arg BASE="$BASE" --build-arg GO_VERSION="$GO_VERSION" \
    --build-arg GOPROXY="${GOPROXY:-$(go env GOPROXY)}" -t "$name" "$ctx" >/dev/null
  rm -rf "$ctx"
}

build_base
# The images on the base are independent: built side by side, each with its own log, shown if it fails.
logs=$(mktemp -d)
pids=()
for job in "build_golang" \
           "image gcr.io/distroless/static-debian12:nonroot distroless" \
           "image postgres:15 postgres" \
           "image redis:7 redis" \
           "image rabbitmq:3.13-management rabbitmq" \
           "image prom/prometheus:v2.55.1 prometheus"; do
  n=${#pids[@]}
  $job >"$logs/$n" 2>&1 &
  pids+=($!)
done
failed=0
for n in "${!pids[@]}"; do
  if wait "${pids[$n]}"; then
    grep '^\[offline-images\]' "$logs/$n" || true
  else
    cat "$logs/$n"
    failed=1
  fi
done
rm -rf "$logs"
((failed == 0)) || { log "FAILED"; exit 1; }
# The compose tool the deployment docs use, where only Debian's docker-compose (v1) is installed.
[[ ${OFFLINE_COMPOSE_V2:-1} == 0 ]] || scripts/compose-v2.sh
log "done in $(( $(date +%s) - start ))s"
