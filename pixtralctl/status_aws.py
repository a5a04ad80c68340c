"""`pixtralctl status` on AWS: the replicas of a fleet's Auto Scaling Group (or the one VM), read with the AWS CLI.

Three read-only calls: the group's instances (type, zone, lifecycle state), the instances' market (spot or
on-demand, which only EC2 knows), and the target group's verdict on each (healthy, initial, unhealthy, draining).
"""

from __future__ import annotations

import json
import shutil
import subprocess

from .status import FleetSize, Replica
from .target import TargetError


def aws_json(command: list[str], region: str | None) -> dict:
    """One AWS CLI call's JSON answer; a missing CLI or a failed call is a TargetError that says which."""
    if shutil.which("aws") is None:
        raise TargetError("the aws CLI is not on PATH; `pixtralctl status` reads the replicas with it (install AWS "
                          "CLI v2 and sign in, e.g. `aws sso login`)")
    full = ["aws", *command, *(["--region", region] if region else []), "--output", "json"]
    done = subprocess.run(full, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise TargetError(f"`aws {' '.join(command[:2])}` failed: {(done.stderr or done.stdout).strip()[:400]}")
    return json.loads(done.stdout or "{}")


def _markets(instance_ids: list[str], region: str | None) -> dict[str, dict]:
    """Instance id -> its EC2 description (InstanceLifecycle is "spot" for spot, absent for on-demand)."""
    if not instance_ids:
        return {}
    answer = aws_json(["ec2", "describe-instances", "--instance-ids", *instance_ids], region)
    return {instance["InstanceId"]: instance for reservation in answer.get("Reservations", [])
            for instance in reservation.get("Instances", [])}


def _target_health(target_group: str, region: str | None) -> dict[str, str]:
    """Instance id -> the load balancer's verdict, with its reason when not healthy (Elb.InitialHealthChecking)."""
    answer = aws_json(["elbv2", "describe-target-health", "--target-group-arn", target_group], region)
    health = {}
    for description in answer.get("TargetHealthDescriptions", []):
        state = description["TargetHealth"]
        reason = state.get("Reason")
        health[description["Target"]["Id"]] = f"{state['State']} ({reason})" if reason else state["State"]
    return health


def _capacity(instance: dict | None) -> str:
    if instance is None:
        return "-"
    return "spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand"


def _group(group_name: str, region: str | None) -> dict:
    answer = aws_json(["autoscaling", "describe-auto-scaling-groups", "--auto-scaling-group-names", group_name],
                      region)
    groups = answer.get("AutoScalingGroups", [])
    if not groups:
        raise TargetError(f"no Auto Scaling Group named {group_name} in region {region or '(the CLI default)'}; "
                          "was the stack destroyed, or is the CLI pointed at another account?")
    return groups[0]


def fleet_replicas(group_name: str, target_group: str, region: str | None) -> list[Replica]:
    instances = sorted(_group(group_name, region).get("Instances", []),
                       key=lambda i: (i["AvailabilityZone"], i["InstanceId"]))
    markets = _markets([i["InstanceId"] for i in instances], region)
    health = _target_health(target_group, region)
    return [Replica(name=i["InstanceId"], zone=i["AvailabilityZone"], type=i["InstanceType"],
                    capacity=_capacity(markets.get(i["InstanceId"])), state=i["LifecycleState"],
                    health=health.get(i["InstanceId"], "not registered"))
            for i in instances]


def vm_replica(instance_id: str, region: str | None) -> list[Replica]:
    instance = _markets([instance_id], region).get(instance_id)
    if instance is None:
        return []
    return [Replica(name=instance_id, zone=instance["Placement"]["AvailabilityZone"], type=instance["InstanceType"],
                    capacity=_capacity(instance), state=instance["State"]["Name"], health="-")]


def fleet_size(outputs: dict) -> FleetSize | None:
    """The group's minimum and desired capacity; None for a single VM. A fleet at zero has both at 0 (the wake alarm
    raises the desired capacity to 1 on the balancer's 503s)."""
    name = outputs.get("autoScalingGroup")
    if not name:
        return None
    group = _group(name, outputs.get("region"))
    return FleetSize(f"Auto Scaling Group {name}", int(group["MinSize"]), int(group["DesiredCapacity"]))


def replicas(outputs: dict) -> list[Replica]:
    region = outputs.get("region")
    if outputs.get("autoScalingGroup"):
        return fleet_replicas(outputs["autoScalingGroup"], outputs["targetGroup"], region)
    if outputs.get("instanceId"):
        return vm_replica(outputs["instanceId"], region)
    raise TargetError("the stack's outputs name neither an Auto Scaling Group (autoScalingGroup) nor an instance "
                      "(instanceId); run `pulumi up` first")
