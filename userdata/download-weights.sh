#!/usr/bin/env bash
# Decides how vLLM reads the weights, while vLLM installs (the two are independent, so the slower of them, not their
# sum, sets the cold start). When the stack's artefact store has the model's files, vLLM streams them from there into
# GPU memory (launch-vllm.sh takes vllm-streamed.args) and nothing is downloaded. Else the model goes from Hugging
# Face into the cache on disk (skipped once it is complete there), and with a store this boot publishes it there
# before vLLM starts, still beside the install, then streams it too: so the stack's first boot already compiles, and
# publishes, the one compile cache every later boot uses (vLLM keys it by where the weights are read from). Then
# vLLM's compile cache for this GPU and this way of reading the weights, from the store.
set -euo pipefail
# shellcheck source=userdata/pixtral-lib.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-lib.sh"
# shellcheck source=userdata/pixtral-artefacts.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-artefacts.sh"

# publish_then_stream: the weights just downloaded go to the store; `weights` becomes `stream` when the store then
# has them whole, else stays `hub`, with one line saying why vLLM reads them from the disk.
publish_then_stream() {
  local published=0 said why
  phase publish-weights start
  said=$(publish_weights "$(hub_snapshot)") || published=$?
  phase publish-weights end
  if [ "$published" -ne 0 ]; then
    echo "${said##*$'\n'}; vLLM reads the weights from $HF_HOME"
  elif why=$(weights_in_store); then
    echo "$said; vLLM streams them from $PIXTRAL_ARTEFACTS/$(weights_prefix)"
    weights=stream
  else
    echo "$said, but $why; vLLM reads the weights from $HF_HOME"
  fi
}

marker="$HF_HOME/$(model_marker)"
started=$(date +%s.%N)
# The store first, the disk second: a reboot of the stack's first VM, which has the model on disk too, streams it as
# every other boot of the stack does, so it warms up from the `stream` compile cache it built (docs/vms.md).
if why=$(weights_in_store); then
  phase download start "$started" artefacts
  echo "$PIXTRAL_MODEL: vLLM streams it from $PIXTRAL_ARTEFACTS/$(weights_prefix), nothing to download"
  weights=stream
elif [ -e "$marker" ]; then
  echo "$why; $PIXTRAL_MODEL is already in $HF_HOME"
  weights=hub started=
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
# A reboot that found the model on disk started no download phase.
[ -z "$started" ] || phase download end
if [ "$weights" = hub ] && [ -n "$started" ] && [ -n "${PIXTRAL_ARTEFACTS:-}" ]; then
  publish_then_stream
fi
echo "$weights" >"$PIXTRAL_WEIGHTS_WAY"
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
