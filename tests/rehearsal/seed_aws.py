"""Seeds moto's server (run inside the machine's namespace, with the edge venv's boto3) with what the stack wrote
to AWS before the VM booted: each SSM parameter at the version the user data names (earlier versions hold other
values, so reading the wrong one shows), and, for a warm-pool fleet, an Auto Scaling group holding one instance at
the launch lifecycle hook. Prints the instance id the machine's metadata service answers with.

Usage: python -m tests.rehearsal.seed_aws ENDPOINT REGION SECRETS_JSON LIFECYCLE_HOOK
       python -m tests.rehearsal.seed_aws ENDPOINT REGION SECRETS_JSON --ssm-only   (puts the parameters back)
       python -m tests.rehearsal.seed_aws ENDPOINT REGION NAME --delete            (a store without the secret)
"""

from __future__ import annotations

import contextlib
import json
import sys

import boto3


def _session(region: str) -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="rehearsal", aws_secret_access_key="rehearsal",
                                 region_name=region)


def put_parameters(endpoint: str, region: str, secrets: list[dict]) -> None:
    ssm = _session(region).client("ssm", endpoint_url=endpoint)
    for secret in secrets:
        # Afresh, so that the version the user data names holds the value again (a fault may have removed it).
        with contextlib.suppress(ssm.exceptions.ParameterNotFound):
            ssm.delete_parameter(Name=secret["name"])
        for version in range(1, int(secret["version"]) + 1):
            value = secret["value"] if version == int(secret["version"]) else f"stale-version-{version}"
            ssm.put_parameter(Name=secret["name"], Value=value, Type="SecureString", Overwrite=version > 1)


def main(endpoint: str, region: str, secrets: list[dict], hook: str) -> str:
    put_parameters(endpoint, region, secrets)
    session = _session(region)
    ec2 = session.client("ec2", endpoint_url=endpoint)
    if not hook:
        (instance,) = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"]
        return instance["InstanceId"]
    autoscaling = session.client("autoscaling", endpoint_url=endpoint)
    autoscaling.create_launch_configuration(LaunchConfigurationName="pixtral", ImageId="ami-12c6146b",
                                            InstanceType="g6e.xlarge")
    autoscaling.create_auto_scaling_group(AutoScalingGroupName="pixtral-fleet", LaunchConfigurationName="pixtral",
                                          MinSize=1, MaxSize=1, DesiredCapacity=1,
                                          AvailabilityZones=[f"{region}a"])
    autoscaling.put_lifecycle_hook(AutoScalingGroupName="pixtral-fleet", LifecycleHookName=hook,
                                   LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING", HeartbeatTimeout=3600,
                                   DefaultResult="ABANDON")
    (instance,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["pixtral-fleet"])[
        "AutoScalingGroups"][0]["Instances"]
    return instance["InstanceId"]


if __name__ == "__main__":
    if sys.argv[4] == "--delete":
        _session(sys.argv[2]).client("ssm", endpoint_url=sys.argv[1]).delete_parameter(Name=sys.argv[3])
    elif sys.argv[4] == "--ssm-only":
        put_parameters(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))
    else:
        print(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]))
