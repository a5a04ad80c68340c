#!/usr/bin/env bash
# Holds the unit in "activating" until the API answers an authenticated request, then records the ready phase;
# `systemctl status pixtral-vllm` thus tells "loading" from "serving".
set -euo pipefail
# shellcheck source=userdata/pixtral-lib.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-lib.sh"

until curl -fsS -o /dev/null -H "Authorization: Bearer $VLLM_API_KEY" "http://127.0.0.1:$PIXTRAL_PORT/v1/models"; do
  sleep 5
done
phase ready end
