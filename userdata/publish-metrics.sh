#!/usr/bin/env bash
# Fleet replicas scaled on vLLM's queue: the CloudWatch agent scrapes vLLM's Prometheus endpoint on this machine
# and publishes vllm:num_requests_waiting, which the group's target-tracking policy averages across replicas.
# The key guard protects /metrics, so the scraper sends the API key as a bearer token read from a root-only file
# written here from the secrets file; the key is never in the user data or the agent's configuration.
set -euo pipefail
# shellcheck source=userdata/pixtral-lib.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-lib.sh"

: "${VLLM_API_KEY:?VLLM_API_KEY is not set: pixtral-secrets.service did not write the secrets file}"
token_file=${PIXTRAL_METRICS_TOKEN_FILE:-/etc/pixtral/metrics-token}
umask 077
printf '%s' "$VLLM_API_KEY" >"$token_file.tmp"
mv "$token_file.tmp" "$token_file"

ctl=${PIXTRAL_AGENT_CTL:-/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl}
if [ ! -x "$ctl" ]; then
  # AWS's documented download of the agent for Ubuntu, from the region's own bucket.
  region=$PIXTRAL_AWS_REGION
  package=/run/amazon-cloudwatch-agent.deb
  retry curl -fsSL -o "$package" \
    "https://amazoncloudwatch-agent-$region.s3.$region.amazonaws.com/ubuntu/amd64/latest/amazon-cloudwatch-agent.deb"
  dpkg -i -E "$package"
fi
"$ctl" -a fetch-config -m ec2 -s -c "file:${PIXTRAL_AGENT_CONFIG:-/etc/pixtral/cloudwatch-agent.json}"
phase metrics end
