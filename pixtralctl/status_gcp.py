"""`pixtralctl status` on GCP: the replicas of a fleet's managed instance groups (or the one VM), through `gcloud`.

Three reads: each group's managed instances (`instance-groups managed list-instances`: name, zone, status, the
autohealing verdict), the instances themselves (`instances list`: machine type and Spot or standard) and the load
balancer's view (`backend-services get-health`: whether it sends the replica traffic).
"""

from __future__ import annotations

import json
import shutil
import subprocess

from .status import FleetSize, Replica
from .target import TargetError

GCLOUD_TIMEOUT_SECONDS = 120


def _gcloud(*args: str) -> object:
    if shutil.which("gcloud") is None:
        raise TargetError("the gcloud CLI is not on PATH; `pixtralctl status` on GCP reads the replicas with it "
                          "(https://cloud.google.com/sdk/docs/install)")
    command = ["gcloud", *args, "--format=json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=GCLOUD_TIMEOUT_SECONDS)
    if done.returncode != 0:
        raise TargetError(f"`gcloud {' '.join(args[:4])} ...` failed: {(done.stderr or done.stdout).strip()[:400]}")
    return json.loads(done.stdout or "[]")


def _last(link: str | None) -> str:
    """The name at the end of a Compute Engine URL (zones/us-central1-a -> us-central1-a)."""
    return link.rstrip("/").rsplit("/", 1)[-1] if link else "-"


def _capacity(instance: dict) -> str:
    scheduling = instance.get("scheduling") or {}
    spot = scheduling.get("provisioningModel") == "SPOT" or scheduling.get("preemptible")
    return "Spot" if spot else "standard"


def _instances(project: str, names: list[str]) -> dict[str, dict]:
    """Machine type and scheduling of the named instances, by name."""
    if not names:
        return {}
    listed = _gcloud("compute", "instances", "list", f"--project={project}",
                     f"--filter=name=({' '.join(names)})")
    return {instance["name"]: instance for instance in listed}


def _load_balancer_health(outputs: dict) -> dict[str, str]:
    """The load balancer's health state per instance name (HEALTHY, UNHEALTHY, ...)."""
    scope = f"--region={outputs['region']}" if outputs.get("internal") else "--global"
    groups = _gcloud("compute", "backend-services", "get-health", outputs["backendService"],
                     f"--project={outputs['project']}", scope)
    health = {}
    for group in groups:
        for entry in (group.get("status") or {}).get("healthStatus", []):
            health[_last(entry.get("instance"))] = entry.get("healthState", "-")
    return health


def _fleet(outputs: dict) -> list[Replica]:
    project, region = outputs["project"], outputs["region"]
    managed = []
    for group in outputs["instanceGroups"]:
        managed += _gcloud("compute", "instance-groups", "managed", "list-instances", group,
                           f"--region={region}", f"--project={project}")
    names = [_last(entry["instance"]) for entry in managed]
    details = _instances(project, names)
    health = _load_balancer_health(outputs) if outputs.get("backendService") else {}
    replicas = []
    for entry, name in zip(managed, names, strict=True):
        instance = details.get(name, {})
        state = entry.get("instanceStatus", "-")
        if entry.get("currentAction") not in (None, "NONE"):
            state += f" ({entry['currentAction'].lower()})"
        autohealing = [h.get("detailedHealthState") for h in entry.get("instanceHealth") or []]
        verdict = health.get(name) or (autohealing[0] if autohealing and autohealing[0] else "-")
        replicas.append(Replica(name=name, zone=_last(entry["instance"].split("/instances/")[0]),
                                type=_last(instance.get("machineType")),
                                capacity=_capacity(instance) if instance else "-", state=state, health=verdict))
    return sorted(replicas, key=lambda replica: (replica.zone, replica.name))


def _single_vm(outputs: dict) -> list[Replica]:
    args = ["compute", "instances", "describe", outputs["instanceName"], f"--zone={outputs['zone']}"]
    if outputs.get("project"):
        args.append(f"--project={outputs['project']}")
    instance = _gcloud(*args)
    return [Replica(name=instance["name"], zone=_last(instance.get("zone")), type=_last(instance.get("machineType")),
                    capacity=_capacity(instance), state=instance.get("status", "-"))]


def fleet_size(outputs: dict) -> FleetSize | None:
    """The fleet's groups summed: the floor (an autoscaled group's minNumReplicas, a fixed group's size) and the target
    sizes; None for a single VM. `managed describe` shows a group's autoscaler beside it (gcloud adds it, as
    `autoscaler`); the API leaves out a field that is 0."""
    groups = outputs.get("instanceGroups")
    if not groups:
        return None
    minimum = desired = 0
    for group in groups:
        described = _gcloud("compute", "instance-groups", "managed", "describe", group,
                            f"--region={outputs['region']}", f"--project={outputs['project']}")
        size = int(described.get("targetSize", 0))
        policy = (described.get("autoscaler") or {}).get("autoscalingPolicy")
        minimum += int(policy.get("minNumReplicas", 0)) if policy is not None else size
        desired += size
    return FleetSize(f"managed instance group{'s' if len(groups) > 1 else ''} {', '.join(groups)}", minimum,
                     desired)


def replicas(outputs: dict) -> list[Replica]:
    if outputs.get("instanceGroups"):
        return _fleet(outputs)
    if outputs.get("instanceName"):
        return _single_vm(outputs)
    raise TargetError("the stack's outputs name no GCP VM or instance group (instanceName / instanceGroups)")
