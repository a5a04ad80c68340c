#!/usr/bin/env bash
# Until pixtral-vllm.service is active, which it is once its server answered (await-ready.sh). The units that run
# then (publishing, the launch hold) want vLLM rather than require it: one failed start of vLLM would fail theirs for
# good, though Restart= brings vLLM up on its next try. So they wait here, as long as their TimeoutStartSec allows.
set -euo pipefail
until systemctl is-active --quiet pixtral-vllm.service; do
  sleep 5
done
