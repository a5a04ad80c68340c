# Sourced by every Pixtral boot script: phase timestamps (journal + JSON lines) and retries with backoff.
# shellcheck shell=bash

PIXTRAL_STATE_DIR=${PIXTRAL_STATE_DIR:-/var/lib/pixtral}
PIXTRAL_BIN=${PIXTRAL_BIN:-/opt/pixtral/bin}
# The boot timeline; tests/test_boot_plan.py keeps it equal to pixtral_deploy/cloudinit.py TIMELINE_FILE.
PIXTRAL_TIMELINE=${PIXTRAL_TIMELINE:-$PIXTRAL_STATE_DIR/timeline.jsonl}
# How this boot's vLLM reads the weights, decided by download-weights.sh: `stream` (from the artefact store, with
# vllm-streamed.args) or `hub` (the Hugging Face cache on disk, vllm.args). On tmpfs: every boot decides anew.
PIXTRAL_WEIGHTS_WAY=${PIXTRAL_WEIGHTS_WAY:-${PIXTRAL_RUN_DIR:-/run}/pixtral-weights}

# vllm_args_file WAY: the file of arguments vLLM starts with for a way of reading the weights (server.py vllm_args
# rendered both): vllm-streamed.args for `stream`, vllm.args for `hub`.
vllm_args_file() {
  if [ "$1" = stream ]; then
    echo "${PIXTRAL_STREAMED_ARGS_FILE:-/etc/pixtral/vllm-streamed.args}"
  else
    echo "${PIXTRAL_ARGS_FILE:-/etc/pixtral/vllm.args}"
  fi
}

# phase NAME start|end [EPOCH [SOURCE]]: one line in the journal and one JSON object in the timeline
# ($PIXTRAL_TIMELINE: {"phase": "download", "event": "start", "time": 1764000000.12, "source": "hub"}), so users
# and `pixtralctl` can see where a cold start spends its time and where each piece came from. Phases: boot,
# install, download, publish-weights (a first boot's upload of the weights before vLLM starts), compile-cache,
# secrets, load, graphs, ready, then publish.
# A record that cannot be written must not stop the boot: the journal line is there either way.
phase() {
  local now=${3:-$(date +%s.%N)} source=${4:+,\"source\":\"$4\"}
  echo "pixtral phase=$1 event=$2 time=$now${4:+ source=$4}"
  printf '{"phase":"%s","event":"%s","time":%s%s}\n' "$1" "$2" "$now" "$source" \
    2>/dev/null >>"$PIXTRAL_TIMELINE" || echo "cannot write $PIXTRAL_TIMELINE" >&2
}

# boot_time: when the kernel started, from /proc/uptime (the VM's own clock, no metadata call).
boot_time() {
  local up
  read -r up _ </proc/uptime
  awk -v now="$(date +%s.%N)" -v up="$up" 'BEGIN { printf "%.2f", now - up }'
}

# watch_phases: pass vLLM's log through unchanged, recording the phases it announces (weights loaded; engine
# warm-up, i.e. torch.compile and CUDA graph capture, finished).
watch_phases() {
  local line loaded=
  while IFS= read -r line; do
    printf '%s\n' "$line"
    case "$line" in
      # The weights are in: vLLM's default loader says how long they took; Run:ai's streamer (a later boot's) says
      # nothing of the kind, and its progress bar reaching 100% is the end. Once, whichever worker says it first.
      *"Loading weights took"* | *"Runai Model Streamer: 100%"*)
        [ -n "$loaded" ] || { loaded=1 && phase load end && phase graphs start; } ;;
      *"init engine"*"took"*) phase graphs end ;;
    esac
  done
}

# retry CMD...: network steps at boot fail transiently (DNS not up yet, registry hiccups).
retry() {
  local attempt
  for attempt in 1 2 3 4 5; do
    "$@" && return 0
    echo "attempt $attempt of 5 failed: $1" >&2
    sleep $((attempt * ${PIXTRAL_RETRY_SECONDS:-10}))
  done
  return 1
}

# ensure_uv: install the pinned uv once; the install and download units both need it and may race.
ensure_uv() {
  (
    flock 9
    [ -x "$PIXTRAL_BIN/uv" ] && exit 0
    retry curl -fsSL "https://astral.sh/uv/${PIXTRAL_UV_VERSION}/install.sh" -o /run/pixtral-uv-install.sh
    UV_INSTALL_DIR=$PIXTRAL_BIN UV_NO_MODIFY_PATH=1 sh /run/pixtral-uv-install.sh
  ) 9>/run/pixtral-uv.lock
}
