#!/usr/bin/env bash
# Holds the unit in "activating" until the API answers an authenticated request (or vLLM, $MAINPID, is gone).
set -euo pipefail
# shellcheck source=userdata/pixtral-lib.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-lib.sh"

# The key goes to curl on stdin (`-H @-`, printf a builtin): in argv `ps` would show it. HTTPS: the stack CA.
authorized_probe() {
  local tls=()
  [ "${PIXTRAL_SCHEME:-http}" = https ] && tls=(--cacert "$PIXTRAL_TLS_CA_FILE")
  printf 'Authorization: Bearer %s\n' "$VLLM_API_KEY" |
    curl -fsS -o /dev/null "${tls[@]}" -H @- "${PIXTRAL_SCHEME:-http}://127.0.0.1:$PIXTRAL_PORT/v1/models"
}

# Whether $MAINPID lives, by its /proc entry: `kill -0` from this user answers "not permitted" while the main process
# is still systemd's executor (root's, setting up the sandbox before it becomes the service user), which read as
# "exited" and failed the unit at random (seen in the boot rehearsal under load).
until authorized_probe; do
  [ -n "${MAINPID:-}" ] && [ ! -e "/proc/$MAINPID" ] && { echo "vLLM exited before it answered" >&2; exit 1; }
  sleep 5
done
phase ready end
