#!/usr/bin/env bash
# Makes the service-to-service keys of a deployment (docs/deployment.md, "Service authentication and
# secrets") as files for Docker secrets, in DIR (default ./secrets, created 0700; never commit it):
#   service_key_api_gateway       SERVICE_KEY_FILE of api-gateway: its root secret
#   service_key_event_consumers   SERVICE_KEY_FILE of event-consumers
#   service_peers_command_service SERVICE_PEERS_FILE of command-service: api-gateway=...,event-consumers=...
#   service_peers_query_service   SERVICE_PEERS_FILE of query-service: api-gateway=...
#   service_peers_event_consumers SERVICE_PEERS_FILE of event-consumers: api-gateway=... (optional)
#   webhook_secret_key            WEBHOOK_SECRET_KEY_FILE of command-service and event-consumers (the same
#                                 file): webhook signing secrets are derived from it (docs/webhooks.md)
# A peer key is hex(HMAC-SHA256(root, "upi-service-token/v1 " + audience)): each service holds only the
# keys made for it, so none can make another's tokens to a third (servicetoken.DeriveKey).
# Existing root secrets are kept (run it again after adding a service); delete a file to rotate it, then
# restart the issuer and its audiences together. Needs openssl.
set -euo pipefail
dir="${1:-secrets}"
command -v openssl >/dev/null || { echo "service-keys: openssl is required" >&2; exit 2; }
mkdir -p "$dir" && chmod 700 "$dir"
umask 077
root() {
  local f="$dir/service_key_${1//-/_}"
  [[ -s "$f" ]] || openssl rand -hex 32 | tr -d '\n' >"$f"
  cat "$f"
}
derive() { printf '%s' "upi-service-token/v1 $2" | openssl dgst -sha256 -hmac "$1" | awk '{print $NF}'; }
gw="$(root api-gateway)"
ec="$(root event-consumers)"
printf 'api-gateway=%s,event-consumers=%s' "$(derive "$gw" command-service)" "$(derive "$ec" command-service)" \
  >"$dir/service_peers_command_service"
printf 'api-gateway=%s' "$(derive "$gw" query-service)" >"$dir/service_peers_query_service"
printf 'api-gateway=%s' "$(derive "$gw" event-consumers)" >"$dir/service_peers_event_consumers"
# Kept once made: changing it changes every webhook endpoint's signing secret at once.
[[ -s "$dir/webhook_secret_key" ]] || openssl rand -hex 32 | tr -d '\n' >"$dir/webhook_secret_key"
echo "service keys in $dir: $(cd "$dir" && ls service_* webhook_* | tr '\n' ' ')"
