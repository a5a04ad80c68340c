#!/usr/bin/env bash
# A pod's publishing sidecar (pixtral:warmStarts on eks, gke and kubernetes): once vLLM answers /health in this pod,
# the model it loaded is complete on the cache claim; it goes to the stack's artefact store once for the whole stack (the
# conditional claim, as a VM's publish), then the sidecar idles until the pod stops. A failed publish is said and
# not retried: a later pod publishes once the claim has expired.
set -euo pipefail
# shellcheck source=userdata/pixtral-lib.sh
. "${PIXTRAL_LIB:-/opt/pixtral/lib}/pixtral-lib.sh"
# shellcheck source=userdata/pixtral-artefacts.sh
. "${PIXTRAL_LIB:-/opt/pixtral/lib}/pixtral-artefacts.sh"
# shellcheck source=userdata/pod-tools.sh
. "${PIXTRAL_LIB:-/opt/pixtral/lib}/pod-tools.sh"

# idle: a sidecar that exits is restarted by the kubelet; this one has nothing more to do until the pod stops.
idle() {
  trap 'exit 0' TERM INT
  while :; do
    sleep 3600 &
    wait $! || true
  done
}

# healthy: vLLM's /health on this pod answers 200. Not verified: the server's certificate names the Service, not
# 127.0.0.1, and this is the pod's own loopback.
healthy() {
  python3 -c '
import ssl, sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=5, context=ssl._create_unverified_context())
except Exception:
    sys.exit(1)' "$PIXTRAL_HEALTH_URL"
}

until healthy; do
  sleep "${PIXTRAL_HEALTH_POLL_SECONDS:-10}"
done
model=$(hub_model)
if [ ! -d "$HF_HOME/$model" ]; then
  echo "$PIXTRAL_MODEL is not in $HF_HOME (vLLM loaded it from elsewhere): nothing to publish"
  idle
fi
touch "$HF_HOME/$(model_marker)"
phase publish start
publish_artefact "$(model_prefix)" hub.tar "$HF_HOME" "$model" "$(model_marker)" ||
  echo "artefact $(model_prefix): publishing failed; a later pod tries again (after the claim expires, if one was made)"
phase publish end
idle
