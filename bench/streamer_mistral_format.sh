#!/usr/bin/env bash
# Measurement (not a test): does the pinned vLLM load this model's Mistral-format checkpoint (consolidated.safetensors
# with params.json and tekken.json) straight from S3 with Run:ai's streamer (`--load-format runai_streamer`), the
# faster later-boot path docs/vms.md weighs? It runs the e2e tier's CPU build of vLLM on the tiny Pixtral
# (tests/e2e/tiny_pixtral.py, as the boot rehearsal caches it) against the rehearsal's S3 stand-in on loopback, with
# runai-model-streamer at the version vLLM's `runai` extra takes, in a scratch folder (the e2e venv is left as it is).
# Prints whether the server answered a chat request, and how long it took to start.
#
#   bash bench/streamer_mistral_format.sh     # needs .venv-e2e (.ci/install-e2e) and the rehearsal's tiny model
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PIXTRAL_E2E_PYTHON:-.venv-e2e/bin/python}
model=${PIXTRAL_TINY_MODEL:-$HOME/.cache/pixtral-deploy/rehearsal/tiny-pixtral}
scratch=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait; rm -rf "$scratch"' EXIT
# vllm 0.32.0's extra: runai-model-streamer[s3,gcs,azure]>=0.15.7; its s3 extra pins the s3 package to its own version.
"$python" -m pip install -q --target "$scratch/pkgs" --no-deps runai-model-streamer==0.17.0 \
  runai-model-streamer-s3==0.17.0 humanize==4.17.0 boto3==1.44.18 botocore==1.44.18 jmespath==1.1.0 \
  s3transfer==0.19.3 python-dateutil==4.0.0
.venv/bin/python -m tests.rehearsal.s3 --port 18500 --data "$scratch/s3" --bucket models --log "$scratch/s3.jsonl" &
sleep 2
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:18500 AWS_EC2_METADATA_DISABLED=true
PYTHONPATH="$scratch/pkgs" "$python" - "$model" <<'PY'
import pathlib, sys
import boto3
s3 = boto3.client("s3", config=boto3.session.Config(s3={"addressing_style": "path"}))
for f in pathlib.Path(sys.argv[1]).iterdir():
    s3.upload_file(str(f), "models", f"tiny-pixtral/{f.name}")
PY
started=$(date +%s.%N)
PYTHONPATH="$scratch/pkgs" RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING=0 VLLM_TARGET_DEVICE=cpu VLLM_CPU_KVCACHE_SPACE=1 \
  "$python" -m vllm.entrypoints.openai.api_server --model s3://models/tiny-pixtral --served-model-name tiny \
  --host 127.0.0.1 --port 18124 --tokenizer-mode mistral --config-format mistral --load-format runai_streamer \
  --limit-mm-per-prompt '{"image":2}' --max-model-len 2048 --enforce-eager >"$scratch/vllm.log" 2>&1 &
server=$!
for _ in $(seq 600); do
  curl -sf http://127.0.0.1:18124/health >/dev/null && break
  kill -0 "$server" 2>/dev/null || { tail -30 "$scratch/vllm.log"; echo "vLLM exited"; exit 1; }
  sleep 1
done
echo "started in $(echo "$(date +%s.%N) - $started" | bc) s"
curl -sf http://127.0.0.1:18124/v1/chat/completions -H 'Content-Type: application/json' \
  -d '{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}' >/dev/null &&
  echo "answered a chat request; weights read through the streamer: $(grep -c 'GET.*consolidated.safetensors' "$scratch/s3.jsonl") ranged GETs"
grep -m1 "Loading safetensors using Runai Model Streamer: 100%" "$scratch/vllm.log" || true
