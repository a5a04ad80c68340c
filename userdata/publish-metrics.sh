#!/usr/bin/env bash
# Fleet replicas scaled on vLLM's queue: the CloudWatch agent scrapes vLLM's Prometheus endpoint on this machine
# and publishes vllm:num_requests_waiting, which the group's target-tracking policy averages across replicas.
# The key guard protects /metrics, so the scraper sends the API key as a bearer token read from the root-only file
# fetch-secrets.sh writes (PIXTRAL_METRICS_TOKEN_FILE); the key is never in the user data, the agent's configuration
# or this unit's environment.
set -euo pipefail
# shellcheck source=userdata/pixtral-lib.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-lib.sh"

if [ ! -s "${PIXTRAL_METRICS_TOKEN_FILE:?}" ]; then
  echo "no scrape token in $PIXTRAL_METRICS_TOKEN_FILE: pixtral-secrets.service did not write it" >&2
  exit 1
fi

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
