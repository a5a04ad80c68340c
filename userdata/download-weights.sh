#!/usr/bin/env bash
# Puts the model into the Hugging Face cache vLLM reads, while vLLM installs: the two are independent, so the slower
# of them, not their sum, sets the cold start. From the stack's artefact store when an earlier boot published it
# there, else from Hugging Face. Skipped once the model is complete on disk.
set -euo pipefail
# shellcheck source=userdata/pixtral-lib.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-lib.sh"
# shellcheck source=userdata/pixtral-artefacts.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-artefacts.sh"

marker="$HF_HOME/.pixtral-downloaded-${PIXTRAL_MODEL//\//--}"
if [ -e "$marker" ]; then
  echo "$PIXTRAL_MODEL is already in $HF_HOME"
  exit 0
fi
if ! from_store download hub "$(model_prefix)" hub.tar "$HF_HOME" "$marker"; then
  ensure_uv
  # HF_XET_HIGH_PERFORMANCE: Hugging Face's Xet transfer with all the connections the instance network can carry.
  export UV_CACHE_DIR=${UV_CACHE_DIR:-/var/cache/pixtral/uv} HF_XET_HIGH_PERFORMANCE=1
  retry "$PIXTRAL_BIN/uvx" --from "huggingface_hub[hf_xet]==$PIXTRAL_HF_HUB_VERSION" \
    hf download "$PIXTRAL_MODEL" --quiet
  touch "$marker"
fi
chown -R "${PIXTRAL_USER:-vllm}:" "$HF_HOME"
phase download end
