#!/usr/bin/env bash
# Decides how vLLM reads the weights, while vLLM installs (the two are independent, so the slower of them, not their
# sum, sets the cold start). When an earlier boot published the model's files to the stack's artefact store, vLLM
# streams them from there into GPU memory (launch-vllm.sh takes vllm-streamed.args) and nothing is downloaded; else
# the model goes from Hugging Face into the cache vLLM reads, skipped once it is complete on disk. Then vLLM's
# compile cache for this GPU and this way of reading the weights, from the store.
set -euo pipefail
# shellcheck source=userdata/pixtral-lib.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-lib.sh"
# shellcheck source=userdata/pixtral-artefacts.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-artefacts.sh"

marker="$HF_HOME/$(model_marker)"
started=$(date +%s.%N)
if [ -e "$marker" ]; then
  echo "$PIXTRAL_MODEL is already in $HF_HOME"
  weights=hub started=
elif why=$(weights_in_store); then
  phase download start "$started" artefacts
  echo "$PIXTRAL_MODEL: vLLM streams it from $PIXTRAL_ARTEFACTS/$(weights_prefix), nothing to download"
  weights=stream
else
  echo "$why; downloading $PIXTRAL_MODEL from Hugging Face"
  phase download start "$started" hub
  ensure_uv
  # HF_XET_HIGH_PERFORMANCE: Hugging Face's Xet transfer with all the connections the instance network can carry.
  export UV_CACHE_DIR=${UV_CACHE_DIR:-/var/cache/pixtral/uv} HF_XET_HIGH_PERFORMANCE=1
  retry "$PIXTRAL_BIN/uvx" --from "huggingface_hub[hf_xet]==$PIXTRAL_HF_HUB_VERSION" \
    hf download "$PIXTRAL_MODEL" --quiet
  touch "$marker"
  weights=hub
fi
mkdir -p "$HF_HOME"
chown -R "${PIXTRAL_USER:-vllm}:" "$HF_HOME"
echo "$weights" >"$PIXTRAL_WEIGHTS_WAY"
# A reboot that found the model on disk started no download phase.
[ -z "$started" ] || phase download end
# torch.compile's cache for this vLLM on this GPU: a warm-up that loads kernels instead of compiling them.
if [ -n "${PIXTRAL_ARTEFACTS:-}" ] && [ ! -d "$VLLM_CACHE_ROOT/torch_compile_cache" ] &&
  prefix=$(compile_prefix "$weights"); then
  started=$(date +%s.%N)
  if fetch_artefact "$prefix" cache.tar "$VLLM_CACHE_ROOT"; then
    chown -R "${PIXTRAL_USER:-vllm}:" "$VLLM_CACHE_ROOT"
    phase compile-cache start "$started" artefacts
    phase compile-cache end
  fi
fi
