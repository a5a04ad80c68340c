#!/usr/bin/env bash
# Downloads the model into the Hugging Face cache vLLM reads, while vLLM installs: the two are independent, so
# the slower of them, not their sum, sets the cold start. Skipped once the model is complete on disk.
set -euo pipefail
# shellcheck source=userdata/pixtral-lib.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-lib.sh"

marker="$HF_HOME/.pixtral-downloaded-${PIXTRAL_MODEL//\//--}"
if [ -e "$marker" ]; then
  echo "$PIXTRAL_MODEL is already in $HF_HOME"
  exit 0
fi
phase download start
ensure_uv
# HF_XET_HIGH_PERFORMANCE: Hugging Face's Xet transfer with all the connections the instance network can carry.
export UV_CACHE_DIR=${UV_CACHE_DIR:-/var/cache/pixtral/uv} HF_XET_HIGH_PERFORMANCE=1
retry "$PIXTRAL_BIN/uvx" --from "huggingface_hub[hf_xet]==$PIXTRAL_HF_HUB_VERSION" \
  hf download "$PIXTRAL_MODEL" --quiet
chown -R "${PIXTRAL_USER:-vllm}:" "$HF_HOME"
touch "$marker"
phase download end
