"""The parts of resources.md that read across resources: where the numbers a reviewer asks about come from, and
what the stack costs an hour at list prices.

Both read the program's record (the resources it declared with their inputs) and the catalogue; neither decides
anything the program does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pixtral_deploy.catalog import HOURS_PER_MONTH, LIST_PRICES, PRICES_READ_ON, PRICES_REGION, ListPrice


def _of_type(run: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [r for r in run["resources"] if r["type"] == type_]


def _max_model_len(run: dict[str, Any]) -> int:
    return int(run["config"].get("pixtral:maxModelLen", 32768))


def number_sources(run: dict[str, Any]) -> list[str]:
    """One line per derived number in the stack: its value and, in one phrase, where it comes from (every platform
    reads them from one fleet plan, pixtral_deploy/fleet_plan.py)."""
    from components.vllm_workload import EXIT_SECONDS, PRESTOP_SLEEP_SECONDS
    from pixtral_deploy.fleet_plan import FIRST_BYTE_MARGIN_SECONDS, GRACE_FACTOR, MIN_GRACE_SECONDS
    from pixtral_deploy.server import MAX_DRAIN_SECONDS, MIN_DRAIN_SECONDS, SLOWEST_DECODE_TOKENS_PER_SECOND

    drain = (f"the fleet plan's drain: maxModelLen {_max_model_len(run)} tokens at {SLOWEST_DECODE_TOKENS_PER_SECOND} "
             "tokens/s, the slowest decode expected under a full batch, rounded up to a minute, within "
             f"{MIN_DRAIN_SECONDS}-{MAX_DRAIN_SECONDS} s")
    response = (f"the fleet plan's drain plus {FIRST_BYTE_MARGIN_SECONDS} s, so a long non-streamed answer is not "
                "cut off")
    grace = (f"the cold-start estimate in program.log times {GRACE_FACTOR:g}, at least {MIN_GRACE_SECONDS} s, "
             "rounded up to a minute, so a slow download is not killed and restarted elsewhere")
    lines = []
    for group in _of_type(run, "aws:lb/targetGroup:TargetGroup"):
        lines.append(f"deregistrationDelay {group['inputs'].get('deregistrationDelay')} s (target group "
                     f"{group['name']}): {drain}")
    for balancer in _of_type(run, "aws:lb/loadBalancer:LoadBalancer"):
        lines.append(f"idleTimeout {balancer['inputs'].get('idleTimeout')} s (load balancer {balancer['name']}): "
                     f"{response}")
    for group in _of_type(run, "aws:autoscaling/group:Group"):
        lines.append(f"healthCheckGracePeriod {group['inputs'].get('healthCheckGracePeriod')} s (group "
                     f"{group['name']}): {grace}")
    for backend in _of_type(run, "gcp:compute/backendService:BackendService") + _of_type(
            run, "gcp:compute/regionBackendService:RegionBackendService"):
        inputs = backend["inputs"]
        lines.append(f"timeoutSec {inputs.get('timeoutSec')} s (backend {backend['name']}): {response}")
        lines.append(f"connectionDrainingTimeoutSec {inputs.get('connectionDrainingTimeoutSec')} s (backend "
                     f"{backend['name']}): {drain}")
    for pods in _of_type(run, "kubernetes:apps/v1:StatefulSet") + _of_type(run, "kubernetes:apps/v1:Deployment"):
        pod_grace = pods["inputs"]["spec"]["template"]["spec"].get("terminationGracePeriodSeconds")
        lines.append(f"terminationGracePeriodSeconds {pod_grace} s: preStop sleep {PRESTOP_SLEEP_SECONDS} s (the pod "
                     f"leaves the Service first) + vLLM's --shutdown-timeout, {drain} + {EXIT_SECONDS} s to exit")
    vm_started = any(line.startswith("info:") and "from boot to first answer" in line for line in run["log"])
    if vm_started:
        lines.append(f"vLLM's --shutdown-timeout on the VMs: {drain}")
        lines.append("the cold start in program.log is an estimate from the catalogue's network and disk speeds "
                     "(pixtral_deploy/coldstart.py), not a measurement")
    return lines


@dataclass(frozen=True)
class CostItem:
    what: str
    # How many run at the least and at the most (a fleet between its minimum and maximum size).
    least: float
    most: float
    price_key: str
    # Units of the price per item: GB for a disk priced per GB-month, 1 otherwise.
    size: float = 1

    def price(self) -> ListPrice | None:
        return LIST_PRICES.get(self.price_key)

    def hourly(self, count: float) -> float | None:
        price = self.price()
        if price is None:
            return None
        per_hour = price.usd / HOURS_PER_MONTH if price.unit == "GB-month" else price.usd
        return per_hour * self.size * count


def _count(low: float, high: float) -> str:
    return f"{low:g}" if low == high else f"{low:g} to {high:g}"


def _money(low: float, high: float, digits: int = 3) -> str:
    return f"${low:.{digits}f}" if math.isclose(low, high) else f"${low:.{digits}f} to ${high:.{digits}f}"


def _disk(what: str, gb: Any, count: tuple[float, float]) -> list[CostItem]:
    return [CostItem(f"{what} ({gb} GB gp3)", *count, "aws:gp3", size=float(gb))] if gb else []


def _aws_items(run: dict[str, Any]) -> list[CostItem]:
    items = []
    for vm in _of_type(run, "aws:ec2/instance:Instance"):
        inputs = vm["inputs"]
        spot = (inputs.get("instanceMarketOptions") or {}).get("marketType") == "spot"
        kind = inputs.get("instanceType")
        items.append(CostItem(f"{kind} ({'spot: market price, see below' if spot else 'on-demand'})", 1, 1,
                              "spot" if spot else f"aws:{kind}"))
        items += _disk("root disk", (inputs.get("rootBlockDevice") or {}).get("volumeSize"), (1, 1))
    items += [CostItem("public IPv4 address (Elastic IP)", 1, 1, "aws:public-ipv4")
              for _ in _of_type(run, "aws:ec2/eip:Eip")]
    templates = _of_type(run, "aws:ec2/launchTemplate:LaunchTemplate")
    for group in _of_type(run, "aws:autoscaling/group:Group"):
        inputs = group["inputs"]
        low, high = float(inputs.get("minSize", 0)), float(inputs.get("maxSize", 0))
        overrides = ((inputs.get("mixedInstancesPolicy") or {}).get("launchTemplate") or {}).get("overrides") or []
        kind = (overrides[0].get("instanceType") if overrides else None) or (
            templates[0]["inputs"].get("instanceType") if templates else "?")
        items.append(CostItem(f"{kind} replicas, priced on-demand (spot replicas cost the market price)", low, high,
                              f"aws:{kind}"))
        mappings = templates[0]["inputs"].get("blockDeviceMappings") or [] if templates else []
        gb = next((m.get("ebs", {}).get("volumeSize") for m in mappings if m.get("ebs")), None)
        items += _disk("replica disk", gb, (low, high))
        # A warm pool's stopped instances bill their root volumes only, at zero replicas too.
        pooled = float((inputs.get("warmPool") or {}).get("minSize", 0))
        items += _disk("warm pool disks (stopped instances)", gb, (pooled, pooled)) if pooled else []
    items += [CostItem("Application Load Balancer (plus traffic: LCU-hours)", 1, 1, "aws:alb")
              for _ in _of_type(run, "aws:lb/loadBalancer:LoadBalancer")]
    items += [CostItem("EKS control plane", 1, 1, "aws:eks") for _ in _of_type(run, "aws:eks/cluster:Cluster")]
    for group in _of_type(run, "aws:eks/nodeGroup:NodeGroup"):
        inputs = group["inputs"]
        scaling = inputs.get("scalingConfig") or {}
        low, high = float(scaling.get("minSize", 0)), float(scaling.get("maxSize", 0))
        kind = (inputs.get("instanceTypes") or ["?"])[0]
        spot = inputs.get("capacityType") == "SPOT"
        items.append(CostItem(f"{kind} nodes ({group['name']}, {'spot: market price' if spot else 'on-demand'})",
                              low, high, "spot" if spot else f"aws:{kind}"))
        items += _disk(f"node disks ({group['name']})", inputs.get("diskSize"), (low, high))
    return items


def _gcp_items(run: dict[str, Any]) -> list[CostItem]:
    items = [CostItem(f"{vm['inputs'].get('machineType')} VM", 1, 1, f"gcp:{vm['inputs'].get('machineType')}")
             for vm in _of_type(run, "gcp:compute/instance:Instance")]
    for group in _of_type(run, "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"):
        autoscalers = _of_type(run, "gcp:compute/regionAutoscaler:RegionAutoscaler")
        policy = autoscalers[0]["inputs"].get("autoscalingPolicy", {}) if autoscalers else {}
        size = float(group["inputs"].get("targetSize") or 0)
        low, high = float(policy.get("minReplicas", size)), float(policy.get("maxReplicas", size))
        templates = _of_type(run, "gcp:compute/instanceTemplate:InstanceTemplate")
        kind = templates[0]["inputs"].get("machineType") if templates else "?"
        items.append(CostItem(f"{kind} replicas ({group['name']})", low, high, f"gcp:{kind}"))
    items += [CostItem("GKE cluster management fee", 1, 1, "gcp:gke")
              for _ in _of_type(run, "gcp:container/cluster:Cluster")]
    for pool in _of_type(run, "gcp:container/nodePool:NodePool"):
        kind = (pool["inputs"].get("nodeConfig") or {}).get("machineType")
        count = float(pool["inputs"].get("nodeCount") or 0)
        scaling = pool["inputs"].get("autoscaling") or {}
        low, high = float(scaling.get("minNodeCount", count)), float(scaling.get("maxNodeCount", count))
        items.append(CostItem(f"{kind} nodes ({pool['name']})", low, high, f"gcp:{kind}"))
    return items


def cost_section(run: dict[str, Any]) -> list[str]:
    """resources.md's cost section: an hourly estimate at the catalogue's list prices, dated, with what is not in it."""
    heading = [f"## Cost: an hourly estimate at list prices ({PRICES_REGION}, read {PRICES_READ_ON})", "",
               "From the catalogue's list prices (pixtral_deploy/catalog.py), on-demand, before taxes, discounts and "
               "traffic (and gp3 IOPS or throughput above the included baseline); other regions differ. Spot capacity "
               "is billed at the market price, which the catalogue does not hold.", ""]
    if run["config"].get("pixtral:target") == "kubernetes":
        return heading + ["The workload runs on the nodes of an existing cluster, which the program does not "
                          "create and so does not price."]
    items = _aws_items(run) + _gcp_items(run)
    rows = ["| item | count | list price | per hour |", "|---|---|---|---|"]
    low = high = 0.0
    missing = []
    for item in items:
        price = item.price()
        if price is None:
            why = "spot: market price" if item.price_key == "spot" else "no list price in the catalogue"
            rows.append(f"| {item.what} | {_count(item.least, item.most)} | {why} | not estimated |")
            missing.append(item.what)
            continue
        least, most = item.hourly(item.least), item.hourly(item.most)
        low, high = low + least, high + most
        rows.append(f"| {item.what} | {_count(item.least, item.most)} | ${price.usd:g}/{price.unit} | "
                    f"{_money(least, most)} |")
    monthly = _money(low * HOURS_PER_MONTH, high * HOURS_PER_MONTH, digits=0)
    total = (f"Total of what is priced: {_money(low, high)} an hour (about {monthly} a month of {HOURS_PER_MONTH} "
             "hours)" if low or high else "No item of this stack has a price in the catalogue")
    if missing:
        total += f"; not estimated: {', '.join(missing)}"
    sources = sorted({item.price().source for item in items if item.price() is not None})
    return heading + rows + ["", total + ".", "", "Sources: " + "; ".join(sources) + "." if sources else
                             "Sources: none of these items has a price in the catalogue."]
