#!/usr/bin/env bash
# Fleet with a warm pool or scaling to zero: the group holds every new instance at its launch lifecycle hook, both
# when it first boots (into the warm pool, or to wake a fleet at zero) and when it is resumed from the pool into
# service. This runs once vLLM answers and releases the hold: a warm-pool instance is then stopped with vLLM
# installed and the weights (and vLLM's compile cache) on its EBS root, and an instance going into service joins the
# balancer only now, able to serve. A boot with no hold pending (a plain reboot) is fine: the group refuses the
# call and nothing waits on it.
set -euo pipefail
# shellcheck source=userdata/pixtral-lib.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-lib.sh"

metadata=${PIXTRAL_METADATA_URL:-http://169.254.169.254/latest}
token=$(retry curl -fsS -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 300" "$metadata/api/token")
instance=$(curl -fsS -H "X-aws-ec2-metadata-token: $token" "$metadata/meta-data/instance-id")
group=$(retry aws autoscaling describe-auto-scaling-instances --region "$PIXTRAL_AWS_REGION" \
  --instance-ids "$instance" --query 'AutoScalingInstances[0].AutoScalingGroupName' --output text)
if aws autoscaling complete-lifecycle-action --region "$PIXTRAL_AWS_REGION" --auto-scaling-group-name "$group" \
  --lifecycle-hook-name "$PIXTRAL_LIFECYCLE_HOOK" --instance-id "$instance" --lifecycle-action-result CONTINUE; then
  phase lifecycle end
else
  echo "no lifecycle action pending for $instance in $group" >&2
fi
