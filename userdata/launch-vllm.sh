#!/usr/bin/env bash
# Starts vLLM with the arguments the deployment rendered (one per line in the args file). The API key reaches
# vLLM as VLLM_API_KEY from the root-only secrets file, never as an argument that `ps` would show.
set -euo pipefail
# shellcheck source=userdata/pixtral-lib.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-lib.sh"

: "${VLLM_API_KEY:?VLLM_API_KEY is not set: pixtral-secrets.service did not write the secrets file}"
# Not vLLM's "Failed to infer device type".
if ! gpus=$(nvidia-smi -L 2>&1) || [ -z "$gpus" ]; then
  echo "no NVIDIA GPU found (nvidia-smi -L: ${gpus:-none listed})" >&2
  exit 1
fi
# The weights from the artefact store when download-weights.sh found them there: the streamed boot's arguments, which
# differ from the first boot's only in the model's location and load format (server.py vllm_args).
source=
[ "$(cat "$PIXTRAL_WEIGHTS_WAY" 2>/dev/null)" = stream ] && source=stream
mapfile -t args <"$(vllm_args_file "$source")"
phase load start "" "$source"
# exec: its death must end the unit (a pipe would wait for the engine processes).
exec "$PIXTRAL_VLLM_PYTHON" -m "$PIXTRAL_VLLM_MODULE" "${args[@]}" > >(watch_phases) 2>&1
