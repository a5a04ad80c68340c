#!/usr/bin/env bash
# A pod's init container (pixtral:warmStarts on eks, gke and kubernetes): the model from the stack's artefact store
# into the cache claim, when the claim does not hold it complete and an earlier pod published it there. Otherwise vLLM
# downloads it from Hugging Face, as without a store: an empty, unreachable or corrupt store is a cold start, said
# in this container's log, never a failed pod.
set -euo pipefail
# shellcheck source=userdata/pixtral-lib.sh
. "${PIXTRAL_LIB:-/opt/pixtral/lib}/pixtral-lib.sh"
# shellcheck source=userdata/pixtral-artefacts.sh
. "${PIXTRAL_LIB:-/opt/pixtral/lib}/pixtral-artefacts.sh"
# shellcheck source=userdata/pod-tools.sh
. "${PIXTRAL_LIB:-/opt/pixtral/lib}/pod-tools.sh"

marker="$HF_HOME/$(model_marker)"
if [ -e "$marker" ]; then
  echo "$PIXTRAL_MODEL is complete on the cache claim: nothing to fetch"
elif from_store download hub "$(model_prefix)" hub.tar "$HF_HOME" "$marker"; then
  phase download end
  echo "$PIXTRAL_MODEL: fetched from $PIXTRAL_ARTEFACTS into the cache claim; vLLM loads it from there"
else
  echo "$PIXTRAL_MODEL: not taken from the artefact store; vLLM downloads it from Hugging Face"
fi
