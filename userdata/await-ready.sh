#!/usr/bin/env bash
# Holds the unit in "activating" until the API answers an authenticated request, then records the ready phase;
# `systemctl status pixtral-vllm` thus tells "loading" from "serving".
set -euo pipefail
# shellcheck source=userdata/pixtral-lib.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-lib.sh"

# The header goes to curl on standard input (`-H @-`, curl >= 7.55; Ubuntu 22.04 has 7.81): on the command line
# the key would show in `ps` to every user of the VM. printf is a bash builtin, so no process carries it either.
# Over HTTPS the server is verified with the stack CA (its certificate names 127.0.0.1 too).
authorized_probe() {
  local tls=()
  [ "${PIXTRAL_SCHEME:-http}" = https ] && tls=(--cacert "$PIXTRAL_TLS_CA_FILE")
  printf 'Authorization: Bearer %s\n' "$VLLM_API_KEY" |
    curl -fsS -o /dev/null "${tls[@]}" -H @- "${PIXTRAL_SCHEME:-http}://127.0.0.1:$PIXTRAL_PORT/v1/models"
}

until authorized_probe; do
  sleep 5
done
phase ready end
