#!/usr/bin/env bash
# Once the server answers: what this boot installed and downloaded itself goes to the stack's artefact store, for
# every later boot of the stack (scale-out, replacement, wake from zero, rollout). Off the cold start's path, at the
# lowest CPU and disk priority (pixtral-publish.service).
set -euo pipefail
# shellcheck source=userdata/pixtral-lib.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-lib.sh"
# shellcheck source=userdata/pixtral-artefacts.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-artefacts.sh"

if [ -z "${PIXTRAL_ARTEFACTS:-}" ]; then
  echo "no artefact store (pixtral:warmStarts is off)"
  exit 0
fi
venv=$(dirname "$(dirname "$PIXTRAL_VLLM_PYTHON")")
opt=$(dirname "$venv")
phase publish start
entries=("${venv##*/}")
[ -d "$opt/python" ] && entries+=(python)
publish_artefact "$(venv_prefix)" venv.tar "$opt" "${entries[@]}"
weights=$(cat "$PIXTRAL_WEIGHTS_WAY" 2>/dev/null || echo hub)
if [ "$weights" = stream ]; then
  echo "artefact $(weights_prefix): this boot streamed the weights from the store"
else
  # The fallback for a boot that read them from the disk: skipped (2) when its own download step published them, or
  # another boot did.
  published=0
  publish_weights "$(hub_snapshot)" || published=$?
  [ "$published" -ne 1 ] || exit 1
fi
# Only what vLLM compiled on this GPU (none with --enforce-eager), for the way this boot read the weights.
if [ -d "$VLLM_CACHE_ROOT/torch_compile_cache" ] && prefix=$(compile_prefix "$weights"); then
  publish_artefact "$prefix" cache.tar "$VLLM_CACHE_ROOT" torch_compile_cache
fi
phase publish end
