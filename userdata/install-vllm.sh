#!/usr/bin/env bash
# Installs the pinned vLLM into its own venv: from the stack's artefact store when an earlier boot published it
# there (no PyPI), else with uv (several times faster than pip for vLLM's wheels). A marker inside the venv makes
# every later boot of this disk skip this step. With vLLM's streamer extra ($PIXTRAL_VLLM_EXTRA, server.py
# VLLM_STREAMER_EXTRA), with which a later boot streams the weights from the store.
set -euo pipefail
# shellcheck source=userdata/pixtral-lib.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-lib.sh"
# shellcheck source=userdata/pixtral-artefacts.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-artefacts.sh"

venv=$(dirname "$(dirname "$PIXTRAL_VLLM_PYTHON")")
# The venv and the Python uv installs it on live side by side, so one archive of both keeps every path it holds.
opt=$(dirname "$venv")
if [ -e "$venv/.pixtral-installed" ]; then
  echo "vLLM $PIXTRAL_VLLM_VERSION is already installed in $venv"
  exit 0
fi
if ! from_store install pypi "$(venv_prefix)" venv.tar "$opt" "$venv/.pixtral-installed"; then
  ensure_uv
  export UV_CACHE_DIR=${UV_CACHE_DIR:-/var/cache/pixtral/uv} UV_PYTHON_INSTALL_DIR=${UV_PYTHON_INSTALL_DIR:-$opt/python}
  # Bytecode now, as root: vLLM runs as its own user, who cannot write __pycache__ here, so without it every start
  # compiles every module it imports again (a CPU start of vLLM: 78 s without, 60 s with). The venv.tar an artefact
  # store keeps carries it to later boots.
  export UV_COMPILE_BYTECODE=1
  rm -rf "$venv"
  "$PIXTRAL_BIN/uv" venv --python "$PIXTRAL_PYTHON_VERSION" "$venv"
  retry "$PIXTRAL_BIN/uv" pip install --python "$venv/bin/python" "vllm[$PIXTRAL_VLLM_EXTRA]==$PIXTRAL_VLLM_VERSION"
  touch "$venv/.pixtral-installed"
fi
phase install end
