"""The parts of resources.md that read across resources: where the numbers a reviewer asks about come from, and
what the stack costs an hour at list prices.

Both read the program's record (the resources it declared with their inputs) and the catalogue; neither decides
anything the program does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pixtral_deploy.catalog import HOURS_PER_MONTH, MACHINE_TYPES, PRICES_READ_ON, ListPrice, list_price, region_of


def _of_type(run: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    # By name: the engine registers resources in whatever order their inputs resolve, and two renders must compare.
    return sorted((r for r in run["resources"] if r["type"] == type_), key=lambda r: r["name"])


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
        lines.append("the cold starts in program.log (the first boot's, the later boots' from the artefact store) "
                     "are each an estimate from the catalogue's network and disk speeds (pixtral_deploy/coldstart.py), "
                     "not a measurement")
    return lines


def cold_start_section(run: dict[str, Any]) -> list[str]:
    """resources.md's cold-start section: the boots `pulumi up` estimated (pixtral_deploy/coldstart.py), the first
    boot's and the later boots', each saying which boots take that path; nothing where the program logged none."""
    boots = [line.removeprefix("info: ") for line in run["log"]
             if line.startswith("info:") and "from boot to first answer" in line]
    if not boots:
        return []
    return ["## Cold start: which path a boot takes", "", *[f"- {boot}" for boot in boots], ""]


@dataclass(frozen=True)
class CostItem:
    what: str
    # How many run at the least and at the most (a fleet between its minimum and maximum size).
    least: float
    most: float
    # The catalogue's item ("gcp:g2-standard-24") and the region it runs in.
    price_key: str
    region: str
    # Units of the price per item: GB for a disk priced per GB-month, IOPS or MiB/s above what a volume includes.
    size: float = 1
    spot: bool = False
    # Why the item has no price, where the reason is not a gap in the catalogue.
    unpriced_because: str = ""

    def price(self) -> ListPrice | None:
        return None if self.unpriced_because else list_price(self.price_key, self.region)

    def rate(self) -> float | None:
        """USD an hour for one unit: the published Spot price for spot capacity where the cloud lists one, the on-demand
        price otherwise (for AWS spot, its ceiling)."""
        price = self.price()
        if price is None:
            return None
        usd = price.spot_usd if self.spot and price.spot_usd is not None else price.usd
        return usd / HOURS_PER_MONTH if price.unit.endswith("-month") else usd

    def hourly(self, count: float) -> float | None:
        rate = self.rate()
        return None if rate is None else rate * self.size * count

    def floats(self) -> bool:
        """Spot capacity without a list price (AWS): priced at its ceiling, the on-demand price."""
        price = self.price()
        return self.spot and price is not None and price.spot_usd is None


def _count(low: float, high: float) -> str:
    return f"{low:g}" if low == high else f"{low:g} to {high:g}"


def _money(low: float, high: float, digits: int = 3) -> str:
    return f"${low:.{digits}f}" if math.isclose(low, high) else f"${low:.{digits}f} to ${high:.{digits}f}"


def _same(resource: dict[str, Any], reference: Any) -> bool:
    """Whether `reference` (an id or self link another resource holds) names `resource`."""
    outputs = resource.get("outputs") or {}
    return reference in {resource.get("id"), outputs.get("selfLink"), outputs.get("selfLinkUnique")}


# What a gp3 volume includes at its base price (https://aws.amazon.com/ebs/pricing/).
GP3_INCLUDED_IOPS = 3000
GP3_INCLUDED_MIBPS = 125


def _aws_disk(what: str, ebs: dict[str, Any], count: tuple[float, float], region: str) -> list[CostItem]:
    """A volume's size and, on gp3, the IOPS and throughput it provisions above what the size includes."""
    gb, volume = ebs.get("volumeSize"), ebs.get("volumeType", "gp3")
    if not gb:
        return []
    items = [CostItem(f"{what} ({float(gb):g} GB {volume})", *count, f"aws:{volume}", region, size=float(gb))]
    iops, mibps = float(ebs.get("iops") or 0), float(ebs.get("throughput") or 0)
    if volume == "gp3" and iops > GP3_INCLUDED_IOPS:
        items.append(CostItem(f"{what}: {iops:g} IOPS, {iops - GP3_INCLUDED_IOPS:g} above the included "
                              f"{GP3_INCLUDED_IOPS}", *count, "aws:gp3-iops", region, size=iops - GP3_INCLUDED_IOPS))
    if volume == "gp3" and mibps > GP3_INCLUDED_MIBPS:
        items.append(CostItem(f"{what}: {mibps:g} MiB/s, {mibps - GP3_INCLUDED_MIBPS:g} above the included "
                              f"{GP3_INCLUDED_MIBPS}", *count, "aws:gp3-throughput", region,
                              size=mibps - GP3_INCLUDED_MIBPS))
    return items


def _aws_launch_template(run: dict[str, Any], template_id: Any) -> dict[str, Any] | None:
    templates = _of_type(run, "aws:ec2/launchTemplate:LaunchTemplate")
    return next((t for t in templates if _same(t, template_id)), templates[0] if len(templates) == 1 else None)


def _aws_template_public_ip(run: dict[str, Any], template_id: Any) -> bool:
    template = _aws_launch_template(run, template_id)
    interfaces = (template["inputs"].get("networkInterfaces") or []) if template else []
    return any(str(i.get("associatePublicIpAddress")).lower() == "true" for i in interfaces)


def _aws_template_disks(run: dict[str, Any], template_id: Any, what: str, count: tuple[float, float],
                        region: str) -> list[CostItem]:
    """The EBS volumes a launch template maps, for every instance launched from it."""
    template = _aws_launch_template(run, template_id)
    mappings = (template["inputs"].get("blockDeviceMappings") or []) if template else []
    disks = [item for mapping in mappings if mapping.get("ebs") for item in _aws_disk(what, mapping["ebs"], count,
                                                                                        region)]
    return disks or [CostItem(f"{what} (the image's own root volume)", *count, "aws:ami-root-volume", region,
                              unpriced_because="size set by the image, not known before launch")]


def _asg_split(inputs: dict[str, Any], low: float, high: float) -> list[tuple[bool, float, float]]:
    """An Auto Scaling group's (spot, least, most) parts: its on-demand base first, the rest on spot when its
    instances distribution puts no more on-demand above the base."""
    distribution = (inputs.get("mixedInstancesPolicy") or {}).get("instancesDistribution")
    if not distribution or float(distribution.get("onDemandPercentageAboveBaseCapacity", 100)) >= 100:
        return [(False, low, high)]
    base = float(distribution.get("onDemandBaseCapacity") or 0)
    if float(distribution.get("onDemandPercentageAboveBaseCapacity") or 0) > 0:
        # A share of on-demand above the base is not split here: priced on-demand, a ceiling.
        return [(False, low, high)]
    parts = [(False, min(base, low), min(base, high))] if base else []
    return parts + ([(True, max(0.0, low - base), high - base)] if high > base else [])


def _aws_items(run: dict[str, Any]) -> list[CostItem]:
    region = str(run["config"].get("aws:region", "us-east-1"))
    items = []
    for vm in _of_type(run, "aws:ec2/instance:Instance"):
        inputs = vm["inputs"]
        spot = (inputs.get("instanceMarketOptions") or {}).get("marketType") == "spot"
        kind = inputs.get("instanceType")
        items.append(CostItem(f"{kind} ({'spot' if spot else 'on-demand'})", 1, 1, f"aws:{kind}", region, spot=spot))
        items += _aws_disk("root disk", inputs.get("rootBlockDevice") or {}, (1, 1), region)
    items += [CostItem("public IPv4 address (Elastic IP)", 1, 1, "aws:public-ipv4", region)
              for _ in _of_type(run, "aws:ec2/eip:Eip")]
    templates = _of_type(run, "aws:ec2/launchTemplate:LaunchTemplate")
    for group in _of_type(run, "aws:autoscaling/group:Group"):
        inputs = group["inputs"]
        low, high = float(inputs.get("minSize", 0)), float(inputs.get("maxSize", 0))
        overrides = ((inputs.get("mixedInstancesPolicy") or {}).get("launchTemplate") or {}).get("overrides") or []
        kind = (overrides[0].get("instanceType") if overrides else None) or (
            templates[0]["inputs"].get("instanceType") if templates else "?")
        for spot, least, most in _asg_split(inputs, low, high):
            what = "spot replicas" if spot else "on-demand replicas"
            items.append(CostItem(f"{kind} {what} (the first of the group's types)", least, most, f"aws:{kind}",
                                  region, spot=spot))
        policy_template = ((inputs.get("mixedInstancesPolicy") or {}).get("launchTemplate") or {}).get(
            "launchTemplateSpecification") or inputs.get("launchTemplate") or {}
        template_id = policy_template.get("launchTemplateId") or policy_template.get("id")
        items += _aws_template_disks(run, template_id, "replica disks", (low, high), region)
        # A warm pool's stopped instances bill their root volumes only, at zero replicas too.
        pooled = float((inputs.get("warmPool") or {}).get("minSize", 0))
        if pooled:
            items += _aws_template_disks(run, template_id, "warm pool disks (stopped instances)", (pooled, pooled),
                                         region)
        if _aws_template_public_ip(run, template_id):
            items.append(CostItem("public IPv4 address of each replica", low, high, "aws:public-ipv4", region))
    for balancer in _of_type(run, "aws:lb/loadBalancer:LoadBalancer"):
        items.append(CostItem("Application Load Balancer", 1, 1, "aws:alb", region))
        if not balancer["inputs"].get("internal"):
            # An internet-facing balancer holds a public IPv4 address in each of its subnets' zones.
            zones = float(len(balancer["inputs"].get("subnets") or []))
            items.append(CostItem("public IPv4 addresses of the load balancer (one a zone)", zones, zones,
                                  "aws:public-ipv4", region))
    items += [CostItem("EKS control plane", 1, 1, "aws:eks", region) for _ in _of_type(run, "aws:eks/cluster:Cluster")]
    for group in _of_type(run, "aws:eks/nodeGroup:NodeGroup"):
        inputs = group["inputs"]
        scaling = inputs.get("scalingConfig") or {}
        low, high = float(scaling.get("minSize", 0)), float(scaling.get("maxSize", 0))
        kind = (inputs.get("instanceTypes") or ["?"])[0]
        spot = inputs.get("capacityType") == "SPOT"
        items.append(CostItem(f"{kind} nodes ({group['name']}, {'spot' if spot else 'on-demand'})", low, high,
                              f"aws:{kind}", region, spot=spot))
        if inputs.get("diskSize"):
            items += _aws_disk(f"node disks ({group['name']})", {"volumeSize": inputs.get("diskSize")}, (low, high),
                               region)
        else:
            items += _aws_template_disks(run, (inputs.get("launchTemplate") or {}).get("id"),
                                         f"node disks ({group['name']})", (low, high), region)
    return items


def _gcp_spot(scheduling: dict[str, Any]) -> bool:
    return scheduling.get("provisioningModel") == "SPOT" or bool(scheduling.get("preemptible"))


def _gcp_machine(what: str, kind: Any, count: tuple[float, float], region: str, spot: bool,
                 accelerators: list[dict[str, Any]]) -> list[CostItem]:
    """A machine type's row, and a row for GPUs attached to a type whose price does not include them (N1)."""
    label = "Spot" if spot else "on-demand"
    items = [CostItem(f"{kind} {what} ({label})", *count, f"gcp:{kind}", region, spot=spot)]
    known = MACHINE_TYPES.get(str(kind))
    if known is not None and not known.accelerators_built_in:
        for gpu in accelerators:
            gpus = float(gpu.get("count") or 0)
            items.append(CostItem(f"{gpu.get('type')} GPUs attached to each ({gpus:g} per machine, {label})",
                                  count[0] * gpus, count[1] * gpus, f"gcp:{gpu.get('type')}", region, spot=spot))
    return items


def _gcp_disk(what: str, gb: Any, disk_type: Any, count: tuple[float, float], region: str) -> list[CostItem]:
    return [CostItem(f"{what} ({gb:g} GB {disk_type})", *count, f"gcp:{disk_type}", region, size=float(gb))] if gb \
        else []


def _gcp_region(run: dict[str, Any], location: Any) -> str:
    """The region of a zone or region name, else of the stack's gcp:zone."""
    where = str(location or run["config"].get("gcp:zone", ""))
    return region_of(where) if where.count("-") == 2 else where


def _gcp_items(run: dict[str, Any]) -> list[CostItem]:
    items = []
    for vm in _of_type(run, "gcp:compute/instance:Instance"):
        inputs = vm["inputs"]
        region = _gcp_region(run, inputs.get("zone"))
        items += _gcp_machine("VM", inputs.get("machineType"), (1, 1), region,
                              _gcp_spot(inputs.get("scheduling") or {}), inputs.get("guestAccelerators") or [])
        params = (inputs.get("bootDisk") or {}).get("initializeParams") or {}
        items += _gcp_disk("boot disk", params.get("size"), params.get("type", "pd-standard"), (1, 1), region)
        # The Local SSDs as one item: they are priced per GB, and a row per disk would repeat itself.
        items += _gcp_disk("Local SSD", sum(float(d.get("size") or 0) for d in inputs.get("scratchDisks") or []),
                           "local-ssd", (1, 1), region)
    # An internal address (the internal load balancer's) costs nothing; an external one is the VM's.
    items += [CostItem("static external IPv4 address (in use on the VM)", 1, 1, "gcp:static-ipv4",
                       _gcp_region(run, address["inputs"].get("region")))
              for address in _of_type(run, "gcp:compute/address:Address")
              if address["inputs"].get("addressType", "EXTERNAL") == "EXTERNAL"]
    templates = _of_type(run, "gcp:compute/instanceTemplate:InstanceTemplate")
    autoscalers = _of_type(run, "gcp:compute/regionAutoscaler:RegionAutoscaler")
    for group in _of_type(run, "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"):
        inputs = group["inputs"]
        region = _gcp_region(run, inputs.get("region"))
        policy = next((a["inputs"].get("autoscalingPolicy") or {} for a in autoscalers
                       if _same(group, a["inputs"].get("target"))), {})
        size = float(inputs.get("targetSize") or 0)
        count = (float(policy.get("minReplicas", size)), float(policy.get("maxReplicas", size)))
        version = (inputs.get("versions") or [{}])[0].get("instanceTemplate")
        template = next((t["inputs"] for t in templates if _same(t, version)), {})
        items += _gcp_machine(f"replicas of {group['name']}", template.get("machineType", "?"), count, region,
                              _gcp_spot(template.get("scheduling") or {}), template.get("guestAccelerators") or [])
        disks = template.get("disks") or []
        for disk in (d for d in disks if d.get("type") != "SCRATCH"):
            items += _gcp_disk(f"replica disks of {group['name']}", disk.get("diskSizeGb"), disk.get("diskType"),
                               count, region)
        items += _gcp_disk(f"replica Local SSDs of {group['name']}", sum(
            float(d.get("diskSizeGb") or 0) for d in disks if d.get("type") == "SCRATCH"), "local-ssd", count, region)
    items += [CostItem("load balancer: global forwarding rule", 1, 1, "gcp:global-forwarding-rule", "global")
              for _ in _of_type(run, "gcp:compute/globalForwardingRule:GlobalForwardingRule")]
    items += [CostItem("load balancer: regional forwarding rule", 1, 1, "gcp:regional-forwarding-rule",
                       _gcp_region(run, rule["inputs"].get("region")))
              for rule in _of_type(run, "gcp:compute/forwardingRule:ForwardingRule")]
    items += [CostItem("GKE cluster management fee", 1, 1, "gcp:gke", "global")
              for _ in _of_type(run, "gcp:container/cluster:Cluster")]
    for pool in _of_type(run, "gcp:container/nodePool:NodePool"):
        inputs = pool["inputs"]
        config = inputs.get("nodeConfig") or {}
        region = _gcp_region(run, inputs.get("location"))
        nodes = float(inputs.get("nodeCount") or 0)
        scaling = inputs.get("autoscaling") or {}
        count = (float(scaling.get("minNodeCount", nodes)), float(scaling.get("maxNodeCount", nodes)))
        items += _gcp_machine(f"nodes of {pool['name']}", config.get("machineType"), count, region,
                              bool(config.get("spot") or config.get("preemptible")),
                              config.get("guestAccelerators") or [])
        # GKE's defaults when the pool sets none: 100 GB (NodeConfig.diskSizeGb) of pd-balanced (GKE 1.24 and later).
        items += _gcp_disk(f"node disks of {pool['name']}", config.get("diskSizeGb") or 100,
                           config.get("diskType") or "pd-balanced", count, region)
    return items


def _kubernetes_section(run: dict[str, Any]) -> list[str]:
    """What an existing cluster spends on the workload: the program rents nothing, so there is no list price."""
    lines = ["The program creates no cloud resources on this target: the workload runs on the nodes of your cluster, "
             "and what it costs is what your cluster's nodes, volumes and load balancer cost. It takes:", ""]
    scaled = (_of_type(run, "kubernetes:keda.sh/v1alpha1:ScaledObject")
              + _of_type(run, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"))
    for pods in _of_type(run, "kubernetes:apps/v1:StatefulSet") + _of_type(run, "kubernetes:apps/v1:Deployment"):
        spec = pods["inputs"]["spec"]
        replicas = _count(float(spec.get("replicas", 1)), float(spec.get("replicas", 1)))
        for scaler in scaled:
            scale = scaler["inputs"].get("spec") or {}
            low = scale.get("minReplicaCount", scale.get("minReplicas"))
            high = scale.get("maxReplicaCount", scale.get("maxReplicas"))
            if low is not None and high is not None:
                replicas = f"{_count(float(low), float(high))} (autoscaled)"
        pod = spec["template"]["spec"]
        gpus = sum(float(((c.get("resources") or {}).get("limits") or {}).get("nvidia.com/gpu", 0))
                   for c in pod.get("containers") or [])
        gpu_type = run["config"].get("pixtral:gpuType", "the GPU your nodes carry")
        lines.append(f"- {replicas} pod(s), each holding {gpus:g} GPU(s) ({gpu_type}) of a GPU node for as long as it "
                     "runs;")
        for claim in spec.get("volumeClaimTemplates") or []:
            size = ((claim.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")
            lines.append(f"- a {size} volume per pod ({claim['metadata']['name']}), of the cluster's StorageClass;")
    for claim in _of_type(run, "kubernetes:core/v1:PersistentVolumeClaim"):
        size = ((claim["inputs"].get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")
        lines.append(f"- one {size} shared volume ({claim['name']}), of the cluster's StorageClass;")
    for service in _of_type(run, "kubernetes:core/v1:Service"):
        if (service["inputs"].get("spec") or {}).get("type") == "LoadBalancer":
            lines.append(f"- a load balancer for the Service {service['name']}, from your cluster's provider;")
    return lines + ["", "Price those at your provider's rates; the catalogue holds none for a cluster it did not make."]


def _price_cell(item: CostItem) -> str:
    price = item.price()
    if item.unpriced_because:
        return item.unpriced_because
    if price is None:
        return f"no list price in the catalogue for {item.region}"
    if item.floats():
        return f"spot: the market price, at most the on-demand ${price.usd:g}/{price.unit}"
    if item.spot:
        return f"${price.spot_usd:g}/{price.unit} Spot (on-demand ${price.usd:g})"
    if price.spot_usd is not None:
        return f"${price.usd:g}/{price.unit} (Spot ${price.spot_usd:g})"
    return f"${price.usd:g}/{price.unit}"


def _sources(items: list[CostItem]) -> list[str]:
    regions: dict[str, set[str]] = {}
    for item in items:
        price = item.price()
        if price is not None:
            regions.setdefault(f"{price.source}, read {price.read_on}", set()).add(price.region)
    return [f"- {source}: {', '.join(sorted(where))}" for source, where in sorted(regions.items())]


def _on_existing_cluster(run: dict[str, Any]) -> bool:
    from pixtral_deploy import targets

    target = targets.find(run["config"].get("pixtral:target"))
    return target is not None and targets.EXISTING_CLUSTER(target)


@dataclass(frozen=True)
class IdleCost:
    """What a stack costs an hour with no traffic: every priced item at its least count (a fleet at its minimum, a
    node group at its minimum size), at the catalogue's list prices; traffic-priced parts (LCUs, processed GB) aside."""

    usd_per_hour: float
    # Items the catalogue cannot price (an image's own root volume), by name.
    unpriced: tuple[str, ...]

    def readme_cell(self) -> str:
        """"$1.99/h (~$1,452/month)": the README's stacks table holds it (tests/test_idle_cost.py keeps them equal)."""
        cell = f"${self.usd_per_hour:.2f}/h (~${self.usd_per_hour * HOURS_PER_MONTH:,.0f}/month)"
        return cell + (f", plus {'; '.join(self.unpriced)}, unpriced" if self.unpriced else "")


# The README's idle cost of a stack on an existing cluster, where the program rents nothing.
NO_LIST_PRICE_CELL = "no list price: your cluster's GPU nodes while the pods run"


def readme_idle_cell(run: dict[str, Any]) -> str:
    """The README stacks table's idle-cost cell of a program run."""
    cost = idle_cost(run)
    return cost.readme_cell() if cost else NO_LIST_PRICE_CELL


def idle_cost(run: dict[str, Any]) -> IdleCost | None:
    """The stack with no traffic, as its cost section prices the low end; None on an existing cluster, where the
    program rents nothing and the catalogue holds no price."""
    if _on_existing_cluster(run):
        return None
    items = _aws_items(run) + _gcp_items(run)
    hourly = [(item, item.hourly(item.least)) for item in items if item.least]
    return IdleCost(sum(usd for _, usd in hourly if usd is not None),
                    tuple(item.what for item, usd in hourly if usd is None))


def cost_section(run: dict[str, Any]) -> list[str]:
    """resources.md's cost section: an hourly estimate at the catalogue's dated list prices, with what is not in it."""
    if _on_existing_cluster(run):
        return ["## Cost: no list price (an existing cluster)", ""] + _kubernetes_section(run)
    items = _aws_items(run) + _gcp_items(run)
    regions = sorted({item.region for item in items if item.region != "global"}) or ["global"]
    spot = ""
    if any(item.spot and not item.floats() for item in items):
        spot += " Spot capacity is priced at the cloud's published Spot price for its region."
    if any(item.floats() for item in items):
        spot += (" AWS has no list price for spot: EC2 sets it from supply and demand, so it is counted at its "
                 "ceiling, the on-demand price, which it never exceeds without a maximum price (this program sets "
                 "none).")
    heading = [f"## Cost: an hourly estimate at list prices ({', '.join(regions)}, read {PRICES_READ_ON})", "",
               "List prices from the catalogue (pixtral_deploy/catalog.py), in US dollars, before taxes, discounts, "
               "free tiers and traffic (and disk IOPS or throughput above what the size includes); other regions "
               f"differ.{spot}", ""]
    rows = ["| item | count | list price | per hour |", "|---|---|---|---|"]
    low = high = 0.0
    missing = []
    for item in items:
        least, most = item.hourly(item.least), item.hourly(item.most)
        if least is None or most is None:
            rows.append(f"| {item.what} | {_count(item.least, item.most)} | {_price_cell(item)} | not estimated |")
            missing.append(item.what)
            continue
        low, high = low + least, high + most
        ceiling = "at most " if item.floats() else ""
        rows.append(f"| {item.what} | {_count(item.least, item.most)} | {_price_cell(item)} | "
                    f"{ceiling}{_money(least, most)} |")
    monthly = _money(low * HOURS_PER_MONTH, high * HOURS_PER_MONTH, digits=0)
    total = (f"Total of what is priced: {_money(low, high)} an hour (about {monthly} a month of {HOURS_PER_MONTH} "
             "hours)" if low or high else "No item of this stack has a price in the catalogue")
    if any(item.floats() for item in items):
        total += ", AWS spot capacity counted at its ceiling"
    if missing:
        total += f"; not estimated: {', '.join(missing)}"
    sources = _sources(items)
    return heading + rows + ["", total + ".", ""] + (
        ["Sources:", *sources] if sources else ["Sources: none of these items has a price in the catalogue."])
