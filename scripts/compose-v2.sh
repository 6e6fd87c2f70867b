#!/usr/bin/env bash
# Installs Compose v2 (`docker compose`) as a Docker CLI plugin where the docker CLI lacks it, built from
# the Go module proxy: machines with only Debian's docker-compose (v1) then run the commands of
# docs/deployment.md as written, `up --wait` included. Nothing is done where `docker compose` answers.
#   COMPOSE_V2_VERSION   the module version (default v2.28.1, which builds with the engine's BuildKit and
#                        needs no buildx plugin)
#   DOCKER_CONFIG        where the CLI looks for plugins (default ~/.docker)
set -euo pipefail
export PATH="/usr/local/go/bin:$PATH"
if docker compose version >/dev/null 2>&1; then
  echo "[compose-v2] docker compose present: $(docker compose version --short 2>/dev/null || true)"
  exit 0
fi
version=${COMPOSE_V2_VERSION:-v2.28.1}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
echo "[compose-v2] building github.com/docker/compose/v2 $version (a few minutes the first time)"
t=$SECONDS
(cd / && GOWORK=off GOFLAGS= GOBIN="$bin" go install "github.com/docker/compose/v2/cmd@$version")
plugins=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
mkdir -p "$plugins"
install -m 755 "$bin/cmd" "$plugins/docker-compose"
docker compose version
echo "[compose-v2] installed in $plugins in $((SECONDS - t))s"
