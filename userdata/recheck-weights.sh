#!/usr/bin/env bash
# Before vLLM starts again within a boot (Restart=always after a crash, or a `systemctl restart`): a server that
# streams the weights has no copy of them on disk, so it checks that the store still has them. The store's lifecycle
# rule expires every artefact 30 days after its upload (pixtral_deploy/artefacts.py), and a server that restarted
# then would fail its load again and again until the VM rebooted. When they are gone (or cannot be read), the weights
# are taken again as download-weights.sh decides: from Hugging Face, published to the store again, then streamed
# (or read from the disk). The first start of a boot checks nothing: pixtral-download decided a moment before.
# Runs as root (ExecStartPre=+ in pixtral-vllm.service): the download writes the cache and /run's decision.
set -euo pipefail
# shellcheck source=userdata/pixtral-lib.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-lib.sh"
# shellcheck source=userdata/pixtral-artefacts.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-artefacts.sh"

started=${PIXTRAL_RUN_DIR:-/run}/pixtral-vllm-started
if [ ! -e "$started" ]; then
  touch "$started"
  exit 0
fi
[ "$(cat "$PIXTRAL_WEIGHTS_WAY" 2>/dev/null)" = stream ] || exit 0
why=$(weights_in_store) && exit 0
echo "$why; vLLM restarts without the weights it streamed: taking them again"
# The server's unit keeps the Hub offline for vLLM itself; the download must reach it.
unset HF_HUB_OFFLINE
exec bash "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/download-weights.sh"
