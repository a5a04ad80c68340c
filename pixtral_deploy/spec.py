"""The deployment, derived from the stack's parsed settings and validated in one place.

Everything downstream (components, cloud-init, tools) reads a `Deployment`, never raw config. Each setting is parsed
once, from its entry in `keys.CONFIG_KEYS`; the rules that join several settings live on the dataclasses
(`__post_init__`), as SkyServe's spec checks its fields in its constructor. Every error names the config key, the
value found and what is allowed, and is raised before any resource is declared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .catalog import GPUS, MACHINE_TYPES, MODELS, gpu_zones, has_local_nvme, machine_types_for, region_of
from .cloudinit import USER_DATA_LIMIT_BYTES, compressed_size
from .errors import ConfigError
from .keys import (
    CONFIG_KEYS,
    KUBERNETES_TARGETS,
    NAMESPACE,
    RESERVED_NAMESPACES,
    TARGETS,
    VM_TARGETS,
    Settings,
    parse_settings,
)
from .network import by_ip_family, covers_a_whole_family, ip_version
from .parsers import setting_error
from .scaling import AWS_MAX_DOWNSCALE_DELAY_SECONDS, Scaling
from .server import ServerSpec
from .sizing import VALID_TENSOR_PARALLEL, GpuPlan, SizingRequest, plan_gpus
from .vllm_flags import check_extra_args

__all__ = ["CONFIG_KEYS", "KUBERNETES_TARGETS", "KUBERNETES_VERSION", "NAMESPACE", "TARGETS", "VM_TARGETS",
           "ConfigError", "Deployment", "TlsSettings", "load_deployment", "raw_config_from"]

# The Kubernetes minor version EKS and GKE clusters are created with, and manifests are validated against.
KUBERNETES_VERSION = "1.34"
# The HPA's stabilization windows (what the contract's delays become on Kubernetes) are capped by the API server.
MAX_STABILIZATION_SECONDS = 3600
_CLOUD_NAMES = {"aws": "an AWS", "gcp": "a Compute Engine"}
# A security group takes 60 inbound rules per IP version by default (Amazon VPC quotas, "Inbound or outbound rules
# per security group", counted separately for IPv4 and IPv6). A VPC firewall rule takes at most 5,000 source ranges
# (Google Cloud VPC quotas).
CIDR_LIMITS = {
    "aws": (60, "a security group's default quota of 60 inbound rules per IP version, one rule per CIDR"),
    "eks": (60, "the load balancer's security group: a default quota of 60 inbound rules per IP version"),
    "gcp": (5000, "a firewall rule's limit of 5,000 source ranges"),
    "gke": (5000, "a firewall rule's limit of 5,000 source ranges"),
}

@dataclass(frozen=True)
class AwsSettings:
    instance_type: str
    vpc_id: str | None
    subnet_id: str | None
    ami_id: str | None
    # A fleet's candidate types in order of preference; the first is `instance_type`.
    instance_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class GcpSettings:
    machine_type: str
    accelerator_type: str
    accelerator_count: int
    image: str | None
    # A fleet's candidate types in order of preference; the first is `machine_type`.
    machine_types: tuple[str, ...] = ()
    # The user's VPC network and subnetwork; None: the stack makes its own.
    network: str | None = None
    subnetwork: str | None = None
    # A fleet's zones as the user listed them (pixtral:zones); empty: derived from gcp:zone's region.
    zones: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.subnetwork and not self.network:
            raise setting_error("subnetwork", self.subnetwork, "a subnetwork of pixtral:network: set "
                                "pixtral:network too (the firewall rules go on the network)")
        self._check_zones()
        self._check_candidates()
        known = MACHINE_TYPES.get(self.machine_type)
        if known is not None and known.cloud != "gcp":
            raise setting_error("machineType", self.machine_type, "a Compute Engine machine type, e.g. g2-standard-24")
        # G2/A2/A3 fix their GPUs; a different acceleratorType or count would be refused by the API at create time.
        attached = (self.accelerator_type, self.accelerator_count)
        if known is not None and known.accelerators_built_in and attached != (known.gpu, known.gpu_count):
            raise ConfigError(
                f"pixtral:machineType {self.machine_type} comes with {known.gpu_count}x {known.gpu}; "
                f"pixtral:acceleratorType/acceleratorCount say {self.accelerator_count}x {self.accelerator_type}. "
                "Set them to match, or pick another machine type")

    def _check_candidates(self) -> None:
        """A fleet's group runs one instance template, whose attached GPUs are fixed: every candidate type must carry
        the same GPU (the group's instance flexibility changes the machine type only)."""
        for name in self.machine_types:
            known = MACHINE_TYPES.get(name)
            if known is not None and known.accelerators_built_in and known.gpu != self.accelerator_type:
                raise setting_error("machineTypes", list(self.machine_types),
                                    f"candidates with the same GPU: {self.machine_types[0]} has "
                                    f"{self.accelerator_type}, {name} has {known.gpu}")

    def _check_zones(self) -> None:
        if not self.zones:
            return
        regions = sorted({region_of(zone) for zone in self.zones})
        if len(regions) > 1:
            raise setting_error("zones", list(self.zones), "zones of one region (a regional managed instance group "
                                f"spans one region); found {', '.join(regions)}")
        offered = gpu_zones(self.accelerator_type, regions[0])
        if offered is not None and not set(self.zones) & set(offered):
            raise setting_error("zones", list(self.zones), f"at least one zone that offers {self.accelerator_type}; "
                                f"in {regions[0]} those are {', '.join(offered)}")

    def fleet_zones(self, zone: str) -> tuple[str, ...]:
        """Where a fleet's regional group places replicas: the listed zones that offer the GPU, else every zone of
        gcp:zone's region that does, else gcp:zone alone (a region the catalog does not know)."""
        region = region_of(self.zones[0] if self.zones else zone)
        offered = gpu_zones(self.accelerator_type, region)
        if self.zones:
            return tuple(z for z in self.zones if offered is None or z in offered)
        return offered or (zone,)


@dataclass(frozen=True)
class KubernetesSettings:
    namespace: str
    storage_class: str | None
    cache_size_gb: int
    gpus_per_replica: int
    node_selector: tuple[tuple[str, str], ...]
    service_type: str
    context: str | None = None
    cluster_name: str | None = None
    # EKS / GKE: GPUs of one node of the type the program creates (None on an existing cluster).
    gpus_per_node: int | None = None
    # EKS / GKE: the config key and value that chose the node type, for messages.
    node_type: str | None = None
    # EKS / GKE: networks that may reach the API endpoint of a cluster the program creates.
    cluster_api_cidrs: tuple[str, ...] = ()
    # With autoscale: what scales the pods (None when unset: keda), and the Prometheus KEDA queries.
    autoscaler: str | None = None
    prometheus_url: str | None = None
    # One ReadWriteMany cache for every pod instead of a ReadWriteOnce cache per pod.
    shared_cache: bool = False
    # surge: new pods are ready before old ones go; inPlace: pods are replaced one at a time on their GPUs.
    rollout: str = "surge"
    # How KEDA signs in to prometheus_url: "basic" or "bearer" (the credentials are Pulumi secrets, not here).
    prometheus_auth: str | None = None

    def __post_init__(self) -> None:
        if self.namespace in RESERVED_NAMESPACES:
            raise setting_error("namespace", self.namespace, "a namespace of the workload's own, not one Kubernetes "
                                f"owns ({', '.join(RESERVED_NAMESPACES)}): the program creates it and deletes it on "
                                "destroy")
        if self.gpus_per_node is not None and self.gpus_per_replica > self.gpus_per_node:
            raise setting_error("gpusPerReplica", self.gpus_per_replica,
                                f"at most the {self.gpus_per_node} GPU(s) of one {self.node_type} node")

    @property
    def scaler(self) -> str:
        return self.autoscaler or "keda"

    def surge_pods(self, replicas: int) -> int:
        """Pods a rollout runs next to the `replicas` it replaces: with rollout surge, a whole new set with a cache
        per pod (a StatefulSet cannot surge, so the new pods are a new StatefulSet), one with a shared cache (the
        Deployment's maxSurge); none with rollout inPlace."""
        if self.rollout != "surge":
            return 0
        return 1 if self.shared_cache else replicas

    def nodes_needed(self, replicas: int) -> int:
        """GPU nodes for `replicas` pods, when each node holds as many whole replicas as its GPUs allow."""
        per_node = max(1, (self.gpus_per_node or self.gpus_per_replica) // self.gpus_per_replica)
        return -(-replicas // per_node)


@dataclass(frozen=True)
class TlsSettings:
    """How the endpoint is reached: HTTPS with the stack CA's certificate (or plain HTTP), at an address or a DNS
    name the program keeps in the user's zone."""

    enabled: bool = True
    domain: str | None = None
    dns_zone: str | None = None

    def __post_init__(self) -> None:
        if self.domain and not self.dns_zone:
            raise setting_error("domain", self.domain, "pixtral:dnsZone set with it: the zone (Route 53 hosted zone "
                                "id on AWS, Cloud DNS managed zone name on GCP) the program creates the record in")
        if self.dns_zone and not self.domain:
            raise setting_error("dnsZone", self.dns_zone, "pixtral:domain set with it: the zone only holds the "
                                "record of pixtral:domain; remove dnsZone or set domain")

    def warnings(self) -> list[str]:
        if self.enabled:
            return []
        return ["pixtral:tls is false: the endpoint serves plain HTTP, so the API key and every image cross the "
                "network unencrypted; remove pixtral:tls to serve HTTPS"]


@dataclass(frozen=True)
class Deployment:
    target: str
    server: ServerSpec
    gpus: GpuPlan
    allowed_cidrs: tuple[str, ...]
    disk_size_gb: int
    scaling: Scaling
    aws: AwsSettings | None = None
    gcp: GcpSettings | None = None
    kubernetes: KubernetesSettings | None = None
    # Whether the user set allowedCidrs, or the default applies (the default is no promise a Service can break).
    allowed_cidrs_set: bool = False
    warnings: tuple[str, ...] = ()
    tls: TlsSettings = TlsSettings()

    @property
    def spot(self) -> bool:
        return self.scaling.spot

    def __post_init__(self) -> None:
        self._check_cidr_quota()
        if self.target == "aws":
            self._check_user_data_fits()
        if self.aws is not None and self.target == "aws" and self.scaling.is_fleet:
            self._check_aws_fleet(self.aws)
        if self.target == "gcp" and self.scaling.autoscale is not None:
            _check_gcp_autoscale(self.scaling.autoscale)
        if self.gcp is not None and self.gcp.zones and not self.scaling.is_fleet:
            raise setting_error("zones", list(self.gcp.zones), "no zones for one VM (it runs in gcp:zone); zones "
                                "apply to a fleet (pixtral:replicas above 1, or pixtral:autoscale)")
        kubernetes = self.kubernetes
        if kubernetes is None:
            return
        self._check_kubernetes_autoscaling(kubernetes)
        if kubernetes.gpus_per_replica not in VALID_TENSOR_PARALLEL:
            # tensorParallelSize follows gpusPerReplica: the pod's GPU count is what to change.
            raise setting_error("gpusPerReplica", kubernetes.gpus_per_replica,
                                f"one of {', '.join(map(str, VALID_TENSOR_PARALLEL))}: vLLM shards the model over "
                                "all of a pod's GPUs, and a shard count must divide the model's attention heads")
        if self.server.tensor_parallel_size != kubernetes.gpus_per_replica:
            raise setting_error("tensorParallelSize", self.server.tensor_parallel_size,
                                f"pixtral:gpusPerReplica ({kubernetes.gpus_per_replica}): a pod's GPUs all serve "
                                "one shard")
        if self.allowed_cidrs_set and kubernetes.service_type != "LoadBalancer":
            raise setting_error("allowedCidrs", list(self.allowed_cidrs),
                                f"no allowedCidrs with pixtral:serviceType {kubernetes.service_type}: only a "
                                "LoadBalancer Service can restrict its sources (loadBalancerSourceRanges); remove "
                                "allowedCidrs or set serviceType to LoadBalancer")
        if self.tls.domain and kubernetes.service_type != "LoadBalancer":
            # The record points at the load balancer's address; any other Service has none outside the cluster.
            raise setting_error("domain", self.tls.domain,
                                f"no domain with pixtral:serviceType {kubernetes.service_type}: its DNS record "
                                "points at a LoadBalancer Service's address; remove domain or set serviceType to "
                                "LoadBalancer")

    def _check_cidr_quota(self) -> None:
        """Each allowed CIDR is one inbound rule of a security group on AWS (the VM's, the fleet load balancer's, the
        EKS Service's load balancer's) or one source range of a GCP firewall rule (one rule per IP version)."""
        limit, what = CIDR_LIMITS.get(self.target, (None, ""))
        if limit is None:
            return
        for version, members in by_ip_family(self.allowed_cidrs).items():
            if len(members) > limit:
                raise setting_error("allowedCidrs", list(self.allowed_cidrs),
                                    f"at most {limit} IPv{version} CIDRs on target {self.target} ({what}); found "
                                    f"{len(members)}: merge neighbouring networks into wider CIDRs")

    def _check_user_data_fits(self) -> None:
        """EC2 refuses user data over 16 KB (compressed): say so now, not after other resources exist."""
        size = compressed_size(self.server, has_local_nvme(self.aws.instance_type))
        if size > USER_DATA_LIMIT_BYTES:
            raise setting_error("extraArgs", list(self.server.extra_args),
                                f"fewer or shorter arguments: the VM's cloud-init would be {size} bytes compressed, "
                                f"over EC2's {USER_DATA_LIMIT_BYTES}-byte user-data limit")

    def _check_aws_fleet(self, aws: AwsSettings) -> None:
        if aws.subnet_id is not None:
            raise setting_error("subnetId", aws.subnet_id, "no subnetId with a fleet: its load balancer and "
                                "replicas span at least two zones; set pixtral:vpcId and the fleet picks that VPC's "
                                "subnets in zones offering every candidate type")
        if self.scaling.warm_pool and len(aws.instance_types) > 1:
            # A warm pool cannot stand beside a mixed instances policy (EC2 Auto Scaling's PutWarmPool).
            raise setting_error("warmPool", self.scaling.warm_pool,
                                f"0 with several candidate types (pixtral:instanceTypes {list(aws.instance_types)}): "
                                "EC2 Auto Scaling keeps warm pools for single-type groups only")
        autoscale = self.scaling.autoscale
        if autoscale is not None and autoscale.downscale_delay_seconds > AWS_MAX_DOWNSCALE_DELAY_SECONDS:
            # The fleet's scale-in alarm must see every minute of the delay, and CloudWatch refuses an alarm that
            # looks back further than a day.
            raise ConfigError(f"pixtral:autoscale: downscaleDelaySeconds={autoscale.downscale_delay_seconds} is not "
                              f"allowed on target aws; expected at most {AWS_MAX_DOWNSCALE_DELAY_SECONDS} (one day: "
                              "the longest a CloudWatch alarm on one-minute data can look back)")

    def _check_kubernetes_autoscaling(self, kubernetes: KubernetesSettings) -> None:
        """What scales the pods: each setting only where it does something, and everything `keda` needs."""
        auth_key = PROMETHEUS_AUTH_KEYS.get(kubernetes.prometheus_auth)
        if self.scaling.autoscale is None:
            for key, value in (("autoscaler", kubernetes.autoscaler), ("prometheusUrl", kubernetes.prometheus_url),
                               (auth_key, SECRET_SET)):
                if key is not None and value is not None:
                    raise setting_error(key, value, "no value without pixtral:autoscale: with a fixed number of "
                                        "replicas nothing scales the pods")
            return
        if auth_key is not None and (kubernetes.scaler != "keda" or kubernetes.prometheus_url is None):
            raise setting_error(auth_key, SECRET_SET, "no value unless KEDA queries pixtral:prometheusUrl "
                                "(pixtral:autoscaler keda): the credentials are what KEDA signs in to it with")
        autoscale = self.scaling.autoscale
        for field, delay in (("upscaleDelaySeconds", autoscale.upscale_delay_seconds),
                             ("downscaleDelaySeconds", autoscale.downscale_delay_seconds)):
            if delay > MAX_STABILIZATION_SECONDS:
                raise ConfigError(f"pixtral:autoscale: {field} {delay} is not allowed on Kubernetes; expected at "
                                  f"most {MAX_STABILIZATION_SECONDS}: the delays become the HPA's stabilization "
                                  "windows, which the API server caps at one hour")
        if self.target == "gke" and kubernetes.scaler != "keda":
            raise setting_error("autoscaler", kubernetes.autoscaler, "keda on gke: the program installs KEDA and "
                                "reads GKE's managed Prometheus; an HPA would need a custom metrics adapter it does "
                                "not install")
        if kubernetes.scaler == "hpa" and kubernetes.prometheus_url is not None:
            raise setting_error("prometheusUrl", kubernetes.prometheus_url, "no prometheusUrl with pixtral:autoscaler "
                                "hpa: the HPA reads the cluster's custom metrics API (the Prometheus adapter), not "
                                "a URL; remove it, or set autoscaler to keda")
        if self.target != "gke" and kubernetes.scaler == "keda" and kubernetes.prometheus_url is None:
            raise ConfigError("pixtral:prometheusUrl is not set; pixtral:autoscaler keda (the default) queries "
                              "vLLM's metrics from a Prometheus: set pixtral:prometheusUrl to its query API (e.g. "
                              "http://prometheus-operated.monitoring.svc:9090), or set pixtral:autoscaler to hpa to "
                              "read the custom metrics API instead")

    def gpu_node_range(self) -> tuple[int, int]:
        """EKS / GKE: the GPU nodes the replica range needs, fewest to most (a surge rollout's new pods included), for
        the cluster autoscaler's bounds on the pool."""
        kubernetes = self.kubernetes
        return (kubernetes.nodes_needed(self.scaling.min_replicas),
                kubernetes.nodes_needed(self.scaling.max_replicas + kubernetes.surge_pods(self.scaling.max_replicas)))

    def endpoint_url(self, host: str) -> str:
        """The URL clients call at `host`: HTTPS wherever pixtral:tls is on, whether vLLM serves it or a fleet's load
        balancer does (in front of replicas that speak plain HTTP)."""
        return f"{'https' if self.tls.enabled else 'http'}://{host}:{self.server.port}"

    @property
    def public_certificate(self) -> bool:
        """Whether a public CA's managed certificate serves pixtral:domain at a fleet's load balancer: ACM's (an
        internal ALB too: DNS validation needs only the public zone), or Google's, which serves only external load
        balancers (an internal one keeps the stack CA's certificate, for the domain and the address)."""
        return (self.tls.enabled and bool(self.tls.domain) and balancer_terminates_tls(self.target, self.scaling)
                and not (self.target == "gcp" and self.scaling.internal))

    @property
    def stack_ca_needed(self) -> bool:
        """HTTPS with a certificate the stack's own CA signs: everywhere TLS is on, except where a public
        certificate serves (public_certificate). Without a CA there is no caCertificate output, and clients
        (pixtralctl, curl, httpx) verify with the system's CAs."""
        return self.tls.enabled and not self.public_certificate

    def describe(self) -> str:
        server = self.server.describe()
        if self.tls.enabled and balancer_terminates_tls(self.target, self.scaling):
            # The replicas serve HTTP, but the endpoint a client calls is the balancer's HTTPS.
            server = (server.removesuffix(", HTTP") + ", HTTPS at the load balancer (which forwards plain HTTP to "
                      "the replicas inside the VPC)")
        return f"{self.target}: {server}; {self.gpus.describe()}; {self.scaling.describe()}"


# KEDA's Prometheus scaler: authModes "basic" takes username and password, "bearer" takes bearerToken.
PROMETHEUS_AUTH_KEYS = {"basic": "prometheusBasicAuth", "bearer": "prometheusBearerToken"}


# The GCP autoscaler's scale-in control window (time_window_sec) takes 60 to 3600 seconds.
GCP_SCALE_IN_WINDOW_SECONDS = (60, 3600)


def _check_gcp_autoscale(autoscale) -> None:
    low, high = GCP_SCALE_IN_WINDOW_SECONDS
    if not low <= autoscale.downscale_delay_seconds <= high:
        raise ConfigError(f"pixtral:autoscale: downscaleDelaySeconds={autoscale.downscale_delay_seconds} is not "
                          f"allowed on target gcp; expected {low} to {high} (the autoscaler's scale-in window)")


@dataclass(frozen=True)
class _Hardware:
    """The GPUs one machine (or replica) gets, and the config key that chose them, for messages."""

    where: str
    gpu_name: str
    gpu_count: int
    gpu_memory_gb: float
    cloud: str


def _machine_hardware(settings: Settings, key: str, type_name: str, cloud: str) -> _Hardware:
    """An AWS instance type's GPUs, from the catalog or from gpuCount / gpuMemoryGb."""
    known = MACHINE_TYPES.get(type_name)
    if known is not None and known.cloud != cloud:
        examples = ", ".join(m.name for m in machine_types_for(cloud)[:4])
        raise setting_error(key, type_name, f"{_CLOUD_NAMES[cloud]} type, e.g. {examples}")
    count, memory = settings["gpuCount"], settings["gpuMemoryGb"]
    if known is None and (count is None or memory is None):
        catalog = ", ".join(m.name for m in machine_types_for(cloud))
        raise setting_error(key, type_name, f"a type from the catalog ({catalog}), or set pixtral:gpuCount and "
                            "pixtral:gpuMemoryGb for it")
    gpu_name = known.gpu if known else "gpu"
    return _Hardware(
        where=f"pixtral:{key} {type_name}",
        gpu_name=gpu_name,
        gpu_count=count if count is not None else known.gpu_count,
        gpu_memory_gb=memory if memory is not None else GPUS[gpu_name].memory_gb,
        cloud=cloud,
    )


def _gcp_hardware(settings: Settings, gcp: GcpSettings, key: str, machine_type: str) -> _Hardware:
    """A Compute Engine machine type's GPUs: its own (G2, A2, A3), else the attached acceleratorType/Count."""
    known = MACHINE_TYPES.get(machine_type)
    if known is not None and known.cloud != "gcp":
        raise setting_error(key, machine_type, "Compute Engine machine types, e.g. g2-standard-24")
    own = known is not None and known.accelerators_built_in
    gpu_name = known.gpu if own else gcp.accelerator_type
    count, memory = settings["gpuCount"], settings["gpuMemoryGb"]
    return _Hardware(
        where=f"pixtral:{key} {machine_type}",
        gpu_name=gpu_name,
        gpu_count=count if count is not None else (known.gpu_count if own else gcp.accelerator_count),
        gpu_memory_gb=memory if memory is not None else GPUS[gpu_name].memory_gb,
        cloud="gcp",
    )


def _cluster_gpu_hardware(settings: Settings, gpus_per_replica: int) -> _Hardware:
    """An existing cluster: the GPU comes from pixtral:gpuType or pixtral:gpuMemoryGb."""
    gpu_type, memory = settings["gpuType"], settings["gpuMemoryGb"]
    if gpu_type is None and memory is None:
        raise ConfigError(
            "pixtral:gpuType is not set: the program needs the GPU of the cluster's nodes to size the model; set "
            f"pixtral:gpuType to one of {', '.join(sorted(GPUS))}, or pixtral:gpuMemoryGb to its memory in GB")
    return _Hardware(
        where=f"pixtral:gpusPerReplica {gpus_per_replica} of pixtral:gpuType {gpu_type or 'gpu'}",
        gpu_name=gpu_type or "gpu",
        gpu_count=gpus_per_replica,
        gpu_memory_gb=memory if memory is not None else GPUS[gpu_type].memory_gb,
        cloud="kubernetes",
    )


def _per_replica(node: _Hardware, gpus_per_replica: int) -> _Hardware:
    """EKS / GKE: a pod gets gpusPerReplica of the GPUs of one node of the type the program creates."""
    return _Hardware(
        where=f"{node.where} (pixtral:gpusPerReplica {gpus_per_replica})",
        gpu_name=node.gpu_name,
        gpu_count=gpus_per_replica,
        gpu_memory_gb=node.gpu_memory_gb,
        cloud=node.cloud,
    )


def _candidates(settings: Settings, one: str, many: str) -> tuple[str, ...]:
    """A fleet's candidate types: pixtral:instanceTypes (machineTypes), else the one type."""
    if settings.is_set(one) and settings.is_set(many):
        raise setting_error(many, list(settings[many]), f"either pixtral:{one} or pixtral:{many}, not both")
    return settings[many] or (settings[one],)


def _aws_settings(settings: Settings) -> AwsSettings:
    candidates = _candidates(settings, "instanceType", "instanceTypes")
    return AwsSettings(instance_type=candidates[0], vpc_id=settings["vpcId"], subnet_id=settings["subnetId"],
                       ami_id=settings["amiId"], instance_types=candidates)


def _gcp_settings(settings: Settings) -> GcpSettings:
    candidates = _candidates(settings, "machineType", "machineTypes")
    machine_type = candidates[0]
    known = MACHINE_TYPES.get(machine_type)
    accelerator_type, accelerator_count = settings["acceleratorType"], settings["acceleratorCount"]
    if accelerator_type is not None and accelerator_type not in GPUS and settings["gpuMemoryGb"] is None:
        raise setting_error("acceleratorType", accelerator_type,
                            f"one of {', '.join(sorted(GPUS))}, or set pixtral:gpuMemoryGb for it")
    return GcpSettings(
        machine_type=machine_type,
        accelerator_type=accelerator_type or (known.gpu if known else "nvidia-l4"),
        accelerator_count=accelerator_count or (known.gpu_count if known else 1),
        image=settings["image"],
        machine_types=candidates,
        network=settings["network"],
        subnetwork=settings["subnetwork"],
        zones=settings["zones"] or (),
    )


def _cluster_api_cidrs(settings: Settings, node: _Hardware | None) -> tuple[str, ...]:
    """EKS public access CIDRs / GKE master authorized networks of a cluster the program creates (IPv4 only); by
    default the IPv4 CIDRs of allowedCidrs."""
    existing = settings["clusterName"]
    if node is None or existing:
        if settings.is_set("clusterApiCidrs"):
            raise ConfigError(f"pixtral:clusterApiCidrs sets the API access of a cluster the program creates; "
                              f"pixtral:clusterName names an existing one ({existing}), whose access is set where "
                              "it was created: remove one of the two")
        return ()
    if settings.is_set("clusterApiCidrs"):
        return settings["clusterApiCidrs"]
    default = tuple(c for c in settings["allowedCidrs"] if ip_version(c) == 4)
    if not default:
        raise setting_error("allowedCidrs", list(settings["allowedCidrs"]), "at least one IPv4 CIDR, or set "
                            "pixtral:clusterApiCidrs to the IPv4 networks that may reach the cluster's API endpoint")
    return default


def _kubernetes_settings(settings: Settings, node: _Hardware | None) -> KubernetesSettings:
    return KubernetesSettings(
        namespace=settings["namespace"],
        storage_class=settings["storageClass"],
        cache_size_gb=settings["cacheSizeGb"],
        gpus_per_replica=settings["gpusPerReplica"],
        node_selector=settings["nodeSelector"],
        service_type=settings["serviceType"],
        context=settings["context"],
        cluster_name=settings["clusterName"],
        gpus_per_node=node.gpu_count if node else None,
        node_type=node.where.split(" ", 1)[1] if node else None,
        cluster_api_cidrs=_cluster_api_cidrs(settings, node),
        autoscaler=settings["autoscaler"],
        prometheus_url=settings["prometheusUrl"],
        prometheus_auth=_prometheus_auth(settings),
        shared_cache=settings["sharedCache"],
        rollout=settings["rollout"],
    )


def _prometheus_auth(settings: Settings) -> str | None:
    """KEDA's authMode for the Prometheus trigger, from which secret is set (its value never enters the spec)."""
    modes = [mode for mode, key in PROMETHEUS_AUTH_KEYS.items() if settings[key]]
    if len(modes) > 1:
        raise setting_error("prometheusBearerToken", SECRET_SET, "either pixtral:prometheusBasicAuth or "
                            "pixtral:prometheusBearerToken, not both (KEDA takes one of basic and bearer)")
    return modes[0] if modes else None


def _extra_args(settings: Settings) -> tuple[str, ...]:
    check_extra_args(settings["extraArgs"])
    return settings["extraArgs"]


def balancer_terminates_tls(target: str, scaling: Scaling) -> bool:
    """A fleet's load balancer serves HTTPS and forwards plain HTTP to the replicas inside the VPC, to the balancer
    and its health checkers only: no replica holds a TLS key or starts vLLM with --ssl-* flags."""
    return target in VM_TARGETS and scaling.is_fleet


def _server(settings: Settings, plan: GpuPlan, vllm_tls: bool) -> ServerSpec:
    model = settings["model"]
    return ServerSpec(
        model=model,
        served_model_name=settings["servedModelName"] or model,
        vllm_version=settings["vllmVersion"],
        port=settings["port"],
        max_model_len=settings["maxModelLen"],
        max_images_per_prompt=settings["maxImagesPerPrompt"],
        gpu_memory_utilization=settings["gpuMemoryUtilization"],
        tensor_parallel_size=plan.tensor_parallel_size,
        quantization=plan.quantization,
        extra_args=_extra_args(settings),
        mistral_format=model.startswith("mistralai/"),
        tls=vllm_tls,
    )


def _plan(settings: Settings, hardware: _Hardware, quantization: str | None = None) -> tuple[GpuPlan, list[str]]:
    quantization = quantization or settings["quantization"]
    request = SizingRequest(
        where=hardware.where,
        gpu_name=hardware.gpu_name,
        gpu_count=hardware.gpu_count,
        gpu_memory_gb=hardware.gpu_memory_gb,
        max_model_len=settings["maxModelLen"],
        gpu_memory_utilization=settings["gpuMemoryUtilization"],
        tensor_parallel_size=settings["tensorParallelSize"],
        quantization=None if quantization in (None, "none") else quantization,
        quantization_set=quantization is not None,
    )
    return plan_gpus(request, MODELS.get(settings["model"]), machine_types_for(hardware.cloud))


def _hardware(settings: Settings, target: str, aws: AwsSettings | None,
              gcp: GcpSettings | None) -> tuple[list[_Hardware], _Hardware | None]:
    """The GPUs one replica gets on each candidate type, and (EKS / GKE) those of one node the program creates."""
    if target == "kubernetes":
        return [_cluster_gpu_hardware(settings, settings["gpusPerReplica"])], None
    key = ("instanceTypes" if settings.is_set("instanceTypes") else "instanceType") if aws else \
        ("machineTypes" if settings.is_set("machineTypes") else "machineType")
    machines = ([_machine_hardware(settings, key, name, "aws") for name in aws.instance_types] if aws
                else [_gcp_hardware(settings, gcp, key, name) for name in gcp.machine_types])
    if target in KUBERNETES_TARGETS:
        return [_per_replica(machines[0], settings["gpusPerReplica"])], machines[0]
    return machines, None


def _plan_candidates(settings: Settings, candidates: list[_Hardware]) -> tuple[GpuPlan, list[str]]:
    """One vLLM command line for every candidate type: the same GPU count (so one tensor-parallel size), and fp8 on
    all of them when one needs it. The plan returned is the tightest candidate's."""
    first = candidates[0]
    for other in candidates[1:]:
        if other.gpu_count != first.gpu_count:
            raise ConfigError(f"{first.where} has {first.gpu_count} GPU(s) and {other.where} has "
                              f"{other.gpu_count}: a fleet's candidate types must have the same GPU count, so that "
                              "one vLLM command line (one tensor-parallel size) serves on all of them")
    plans = [_plan(settings, hardware) for hardware in candidates]
    needs_fp8 = [hardware for hardware, (plan, _) in zip(candidates, plans, strict=True) if plan.quantization == "fp8"]
    warnings = [warning for _, found in plans for warning in found]
    if needs_fp8 and len(needs_fp8) < len(candidates):
        plans = [_plan(settings, hardware, quantization="fp8") for hardware in candidates]
        warnings = [f"serving fp8 weights on every candidate type, because {needs_fp8[0].where} needs them: one "
                    "command line serves the whole fleet"] + warnings
    tightest = min(range(len(plans)), key=lambda i: plans[i][0].usable_per_gpu_gb)
    return plans[tightest][0], list(dict.fromkeys(warnings))


def _open_to_everyone_warnings(cidrs: tuple[str, ...], kubernetes: KubernetesSettings | None) -> list[str]:
    warnings = []
    if covers_a_whole_family(cidrs):
        warnings.append("the endpoint is open to the whole Internet (pixtral:allowedCidrs); the API key is enforced, "
                        "but set allowedCidrs to your networks to narrow it")
    if kubernetes is not None and kubernetes.cluster_api_cidrs and covers_a_whole_family(kubernetes.cluster_api_cidrs):
        warnings.append("the cluster's API endpoint is open to the whole Internet (pixtral:clusterApiCidrs, which "
                        "defaults to allowedCidrs); every request still needs cloud credentials, but set "
                        "clusterApiCidrs to the networks you run pulumi and kubectl from")
    return warnings


def _internal_fleet_warning(target: str, scaling: Scaling) -> list[str]:
    if target == "aws" and scaling.internal and scaling.is_fleet:
        return ["pixtral:internal: the replicas get no public address; they reach PyPI, Hugging Face and SSM at boot "
                "only if the VPC (pixtral:vpcId) routes them out, through a NAT gateway or VPC endpoints"]
    return []


def _any_gpu_warning(target: str, settings: Settings) -> list[str]:
    """pixtral:gpuMemoryGb without gpuType sizes the model but selects no GPU type (see VllmWorkload's affinity)."""
    if target == "kubernetes" and settings["gpuType"] is None:
        return [f"pixtral:gpuMemoryGb {settings['gpuMemoryGb']:g} without pixtral:gpuType: the pods may land on any "
                "GPU node, so the cluster must not mix GPUs with less memory; set pixtral:gpuType to select one"]
    return []


def _zones_left_out(gcp: GcpSettings | None) -> list[str]:
    if gcp is None or not gcp.zones:
        return []
    kept = gcp.fleet_zones(gcp.zones[0])
    left_out = [zone for zone in gcp.zones if zone not in kept]
    return [f"pixtral:zones: {', '.join(left_out)} do not offer {gcp.accelerator_type}; the fleet uses "
            f"{', '.join(kept)}"] if left_out else []


def load_deployment(raw: Mapping[str, Any], other_errors: list[str] | None = None) -> Deployment:
    """Validate every `pixtral:*` key (namespace stripped) and derive the deployment; `other_errors` (settings of
    other namespaces found wrong) are reported together with any bad key."""
    settings = parse_settings(raw, other_errors)
    target = settings["target"]
    aws = _aws_settings(settings) if target in ("aws", "eks") else None
    gcp = _gcp_settings(settings) if target in ("gcp", "gke") else None
    candidates, node = _hardware(settings, target, aws, gcp)
    kubernetes = _kubernetes_settings(settings, node) if target in KUBERNETES_TARGETS else None
    scaling = Scaling(replicas=settings["replicas"], autoscale=settings["autoscale"],
                      on_demand_base_replicas=settings["onDemandBaseReplicas"], spot=settings["spot"],
                      internal=settings["internal"], warm_pool=settings["warmPool"],
                      replicas_set=settings.is_set("replicas"))
    plan, warnings = _plan_candidates(settings, candidates)
    cidrs = settings["allowedCidrs"]
    tls = TlsSettings(enabled=settings["tls"], domain=settings["domain"], dns_zone=settings["dnsZone"])
    return Deployment(
        target=target,
        server=_server(settings, plan, settings["tls"] and not balancer_terminates_tls(target, scaling)),
        gpus=plan,
        allowed_cidrs=cidrs,
        disk_size_gb=settings["diskSizeGb"],
        scaling=scaling,
        aws=aws,
        gcp=gcp,
        kubernetes=kubernetes,
        allowed_cidrs_set=settings.is_set("allowedCidrs"),
        warnings=tuple(warnings + _zones_left_out(gcp) + _any_gpu_warning(target, settings)
                       + _open_to_everyone_warnings(cidrs, kubernetes)
                       + _internal_fleet_warning(target, scaling) + tls.warnings()),
        tls=tls,
    )


# A secret setting in the raw configuration: that it is set, never its value (keys.parse_settings keeps no more).
SECRET_SET = "(secret)"


def raw_config_from(get: Callable[[str], Any], keys: list[str]) -> dict[str, str]:
    """Collect the namespace's values; a secret is only marked as set (its value stays a Pulumi secret and never
    enters the spec), so that a secret key is refused on a target it does not apply to like any other key."""
    secret = {k.name for k in CONFIG_KEYS if k.secret}
    return {key: SECRET_SET if key in secret else get(key) for key in keys
            if key in secret or get(key) is not None}
