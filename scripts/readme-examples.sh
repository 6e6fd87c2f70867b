#!/usr/bin/env bash
# Runs the curl examples of README.md ("Run it", by hand) against a stack, as a reader would paste them,
# and checks that they give what README.md says: alice and bob opened, alice funded with 500 rupees, a
# payment of 125 accepted (PENDING) and COMPLETED, and then alice holds 37500 paise and bob 12500.
# They use fixed VPAs and keys: run it on a fresh stack (after `down -v`).
#   scripts/readme-examples.sh [BASE_URL]     (default http://localhost:8080)
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-http://localhost:8080}
base=${base%/}
fail() { echo "README examples: FAIL: $*" >&2; exit 1; }

# The block after "or by hand", its continued lines joined, each command on one line.
mapfile -t cmds < <(awk '/^or by hand/ {f = 1; next} f && /^```sh/ {b = 1; next} b && /^```/ {exit} b' README.md \
  | sed -e ':a' -e '/\\$/N; s/\\\n//; ta')
((${#cmds[@]} == 5)) || fail "expected five curl commands in README.md, found ${#cmds[@]}"

# run COMMAND: the README's command as is, pointed at $base, printing its body and then its status.
curl() { command curl -w '\n%{http_code}' "$@"; }
run() { eval "${1//localhost:8080/$base}"; }
expect() { # N STATUS PATTERN OUT
  local code body
  code=$(tail -n1 <<<"$4"); body=$(sed '$d' <<<"$4")
  [[ $code == "$2" ]] || fail "example $1: HTTP $code, README expects $2: $body"
  [[ $body =~ $3 ]] || fail "example $1: the body does not match $3: $body"
  echo "example $1: HTTP $code ok"
}

out=$(run "${cmds[0]}"); expect 1 201 '"vpa":"alice@okbank"' "$out"
out=$(run "${cmds[1]}"); expect 2 201 '"vpa":"bob@okbank"' "$out"
out=$(run "${cmds[2]}"); expect 3 201 '"amount_paise":50000' "$out"
out=$(run "${cmds[3]}"); expect 4 202 '"status":"PENDING"' "$out"
id=$(sed -n 's/.*"payment_id":"\([^"]*\)".*/\1/p' <<<"$out" | head -n1)
[[ -n $id ]] || fail "example 4 gave no payment_id"
status=
for _ in 1 2 3 4 5 6; do
  out=$(run "${cmds[4]//PAYMENT_ID/$id}")
  [[ $(tail -n1 <<<"$out") == 200 ]] || fail "example 5: $out"
  status=$(sed -n 's/.*"status":"\([A-Z]*\)".*/\1/p' <<<"$out" | head -n1)
  [[ $status == PENDING ]] || break
done
[[ $status == COMPLETED ]] || fail "example 5: the payment is $status, README says it completes"
echo "example 5: payment $id COMPLETED"
pos=$(sed -n 's/.*"position":"\{0,1\}\([^",}]*\).*/\1/p' <<<"$out" | head -n1)
for who in alice:37500 bob:12500; do
  b=$(command curl -s "$base/v1/accounts/${who%%:*}@okbank/balance?min_position=$pos" -H 'Authorization: Bearer alpha-secret')
  [[ $b == *"\"balance_paise\":${who#*:}"* ]] || fail "${who%%:*}'s balance: $b, expected ${who#*:}"
done
echo "README examples: PASS (alice 37500, bob 12500 paise)"
