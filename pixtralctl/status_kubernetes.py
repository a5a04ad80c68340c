"""`pixtralctl status` on the Kubernetes targets: one line per pod, through `kubectl` and the current kubeconfig.

The pods are those of the stack's namespace and pod selector (its outputs `namespace` and `podSelector`). Each line
says where the pod runs (node, and the node's zone, type and capacity when the nodes can be read) and whether it
serves: the kubelet's Ready condition is what puts a pod behind the Service.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime

from .status import FleetSize, Replica
from .target import TargetError

KUBECTL_TIMEOUT_SECONDS = 30
DEFAULT_SELECTOR = "app.kubernetes.io/name=pixtral"
ZONE_LABEL = "topology.kubernetes.io/zone"
TYPE_LABEL = "node.kubernetes.io/instance-type"
# How EKS and GKE mark spot nodes.
SPOT_LABELS = {"eks.amazonaws.com/capacityType": "SPOT", "cloud.google.com/gke-spot": "true",
               "cloud.google.com/gke-preemptible": "true"}


def _kubectl(*args: str, outputs: dict) -> dict:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise TargetError("kubectl is not installed; `status` on Kubernetes lists the pods through it "
                          "(https://kubernetes.io/docs/tasks/tools/)")
    try:
        done = subprocess.run([kubectl, *args, "-o", "json"], capture_output=True, text=True,
                              timeout=KUBECTL_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise TargetError(f"kubectl {' '.join(args)} gave no answer in {KUBECTL_TIMEOUT_SECONDS} s: is the "
                          "cluster reachable from here?") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
        from pixtral_deploy import targets

        target = targets.find(outputs.get("target"))
        hint = target.kubeconfig_command if target is not None else None
        if hint:
            hint = "; for this stack's cluster: " + hint.format(cluster=outputs.get("clusterName", "CLUSTER"))
        raise TargetError(f"kubectl {' '.join(args)} failed: {reason}{hint}")
    return json.loads(done.stdout)


def _age(created: str | None, now: datetime) -> str:
    if not created:
        return "-"
    seconds = int((now - datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _health(pod: dict) -> str:
    status = pod.get("status", {})
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    if conditions.get("Ready", {}).get("status") == "True":
        return "ready"
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return "terminating (draining)"
    scheduled = conditions.get("PodScheduled", {})
    if scheduled.get("status") == "False":
        return f"not scheduled: {scheduled.get('reason', '')} {scheduled.get('message', '')}".strip()
    waiting = [s["state"]["waiting"].get("reason", "waiting") for s in status.get("containerStatuses", [])
               if "waiting" in s.get("state", {})]
    return "not ready" + (f" ({', '.join(waiting)})" if waiting else "")


def _replica(pod: dict, nodes: dict[str, dict[str, str]], now: datetime) -> Replica:
    metadata, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
    containers = status.get("containerStatuses", [])
    ready = sum(1 for c in containers if c.get("ready"))
    restarts = sum(c.get("restartCount", 0) for c in containers)
    node = spec.get("nodeName") or "-"
    labels = nodes.get(node, {})
    spot = any(labels.get(key) == value for key, value in SPOT_LABELS.items())
    return Replica(
        name=metadata["name"],
        zone=labels.get(ZONE_LABEL, "-"),
        type=labels.get(TYPE_LABEL, "-"),
        capacity=("spot" if spot else "on-demand") if labels else "-",
        state=f"{status.get('phase', 'Unknown')} on {node}, {ready}/{len(spec.get('containers', []))} ready, "
              f"{restarts} restarts, age {_age(metadata.get('creationTimestamp'), now)}",
        health=_health(pod),
    )


def _node_labels(outputs: dict) -> dict[str, dict[str, str]]:
    """Node name -> labels; empty when the kubeconfig may not list nodes (a namespace-scoped user)."""
    try:
        listed = _kubectl("get", "nodes", outputs=outputs)
    except TargetError:
        return {}
    return {node["metadata"]["name"]: node["metadata"].get("labels", {}) for node in listed.get("items", [])}


def fleet_size(outputs: dict) -> FleetSize | None:
    """The ScaledObject's minReplicaCount (KEDA's default: 0) and its workload's replicas; None without a ScaledObject
    (a fixed set, an HPA, or a cluster without KEDA's CRDs). A set at zero has both at 0 until a request reaches the
    KEDA HTTP add-on's interceptor."""
    namespace = outputs.get("namespace")
    if not namespace:
        return None
    try:
        scaled = _kubectl("get", "scaledobjects.keda.sh", "--namespace", namespace, "--selector",
                          outputs.get("podSelector") or DEFAULT_SELECTOR, outputs=outputs).get("items") or []
    except TargetError:
        return None
    if not scaled:
        return None
    spec = scaled[0].get("spec", {})
    ref = spec.get("scaleTargetRef", {})
    kind = ref.get("kind", "Deployment")
    workload = _kubectl("get", f"{kind.lower()}s.apps", ref["name"], "--namespace", namespace, outputs=outputs)
    # Kubernetes' own default for a workload that sets no replica count.
    desired = int(workload.get("spec", {}).get("replicas", 1))
    return FleetSize(f"ScaledObject {scaled[0]['metadata']['name']} ({kind} {ref['name']})",
                     int(spec.get("minReplicaCount", 0)), desired)


def replicas(outputs: dict, now: datetime | None = None) -> list[Replica]:
    namespace = outputs.get("namespace")
    if not namespace:
        raise TargetError("the stack has no `namespace` output: deploy it with this version first (`pulumi up`)")
    selector = outputs.get("podSelector") or DEFAULT_SELECTOR
    pods = _kubectl("get", "pods", "--namespace", namespace, "--selector", selector, outputs=outputs)
    nodes = _node_labels(outputs) if pods.get("items") else {}
    now = now or datetime.now(UTC)
    return sorted((_replica(pod, nodes, now) for pod in pods.get("items", [])), key=lambda r: r.name)
