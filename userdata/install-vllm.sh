#!/usr/bin/env bash
# Installs the pinned vLLM into its own venv with uv (several times faster than pip for vLLM's wheels).
# A marker inside the venv makes every later boot skip this step.
set -euo pipefail
# shellcheck source=userdata/pixtral-lib.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-lib.sh"

venv=$(dirname "$(dirname "$PIXTRAL_VLLM_PYTHON")")
if [ -e "$venv/.pixtral-installed" ]; then
  echo "vLLM $PIXTRAL_VLLM_VERSION is already installed in $venv"
  exit 0
fi
phase install start
ensure_uv
export UV_CACHE_DIR=${UV_CACHE_DIR:-/var/cache/pixtral/uv} UV_PYTHON_INSTALL_DIR=${UV_PYTHON_INSTALL_DIR:-/opt/pixtral/python}
rm -rf "$venv"
"$PIXTRAL_BIN/uv" venv --python "$PIXTRAL_PYTHON_VERSION" "$venv"
retry "$PIXTRAL_BIN/uv" pip install --python "$venv/bin/python" "vllm==$PIXTRAL_VLLM_VERSION"
touch "$venv/.pixtral-installed"
phase install end
