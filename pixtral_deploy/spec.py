"""The spec, derived from the stack's parsed settings and validated in one place.

Everything downstream (components, cloud-init, tools) reads a `StackSpec`, never raw config. Each setting is parsed
once, from its entry in `keys.CONFIG_KEYS`; the rules that join several settings live on the dataclasses
(`__post_init__`), as SkyServe's spec checks its fields in its constructor. Every error names the config key, the
value found and what is allowed, and is raised before any resource is declared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import targets
from .catalog import MODELS, machine_types_for
from .errors import ConfigError
from .keys import CONFIG_KEYS, NAMESPACE, SECRET_SET, Settings, parse_settings
from .network import by_ip_family, covers_a_whole_family
from .parsers import setting_error
from .scaling import Scaling
from .server import ServerSpec
from .sizing import GpuPlan, SizingRequest, plan_gpus
from .targets import Hardware, Target
from .vllm_flags import check_extra_args

if TYPE_CHECKING:
    from .targets.aws import AwsMachines
    from .targets.gcp import GcpMachines
    from .targets.kubernetes import KubernetesSettings

__all__ = ["CONFIG_KEYS", "KUBERNETES_VERSION", "NAMESPACE", "SECRET_SET", "ConfigError", "StackSpec",
           "TlsSettings", "load_spec", "raw_config_from"]

# The Kubernetes minor version EKS and GKE clusters are created with, and manifests are validated against.
KUBERNETES_VERSION = "1.34"


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
class StackSpec:
    target: str
    server: ServerSpec
    gpus: GpuPlan
    allowed_cidrs: tuple[str, ...]
    disk_size_gb: int
    scaling: Scaling
    aws: AwsMachines | None = None
    gcp: GcpMachines | None = None
    kubernetes: KubernetesSettings | None = None
    # Whether the user set allowedCidrs, or the default applies (the default is no promise a Service can break).
    allowed_cidrs_set: bool = False
    warnings: tuple[str, ...] = ()
    tls: TlsSettings = TlsSettings()
    # The stack keeps its own artefact store (pixtral:warmStarts on a target that takes it): later boots fetch vLLM,
    # the compile cache and the weights from it (pixtral_deploy/artefacts.py).
    warm_starts: bool = False

    @property
    def spot(self) -> bool:
        return self.scaling.spot

    @property
    def runs_on(self) -> Target:
        """The target's class: what it takes, builds and checks (pixtral_deploy/targets)."""
        return targets.get(self.target)

    def __post_init__(self) -> None:
        self._check_cidr_quota()
        self._check_scale_to_zero()
        self.runs_on.check(self)

    def _check_scale_to_zero(self) -> None:
        autoscale = self.scaling.autoscale
        reason = self.runs_on.cannot_scale_to_zero
        if autoscale is not None and autoscale.scales_to_zero and reason:
            raise ConfigError(f"pixtral:autoscale: minReplicas=0 is not allowed on target {self.target}; expected "
                              f"1 or more: {reason}")

    def _check_cidr_quota(self) -> None:
        """Each allowed CIDR is one inbound rule of a security group on AWS (the VM's, the fleet load balancer's, the
        EKS Service's load balancer's) or one source range of a GCP firewall rule (one rule per IP version)."""
        if self.runs_on.cidr_limit is None:
            return
        limit, what = self.runs_on.cidr_limit
        for version, members in by_ip_family(self.allowed_cidrs).items():
            if len(members) > limit:
                raise setting_error("allowedCidrs", list(self.allowed_cidrs),
                                    f"at most {limit} IPv{version} CIDRs on target {self.target} ({what}); found "
                                    f"{len(members)}: merge neighbouring networks into wider CIDRs")

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
    def balancer_terminates_tls(self) -> bool:
        return balancer_terminates_tls(self.runs_on, self.scaling)

    @property
    def public_certificate(self) -> bool:
        """Whether a public CA's managed certificate serves pixtral:domain at a fleet's load balancer: ACM's (an
        internal ALB too: DNS validation needs only the public zone), or Google's, which serves only external load
        balancers (an internal one keeps the stack CA's certificate, for the domain and the address)."""
        return (self.tls.enabled and bool(self.tls.domain) and self.balancer_terminates_tls
                and self.runs_on.public_certificate_possible(self))

    @property
    def stack_ca_needed(self) -> bool:
        """HTTPS with a certificate the stack's own CA signs: everywhere TLS is on, except where a public
        certificate serves (public_certificate). Without a CA there is no caCertificate output, and clients
        (pixtralctl, curl, httpx) verify with the system's CAs."""
        return self.tls.enabled and not self.public_certificate

    def describe(self) -> str:
        server = self.server.describe()
        if self.tls.enabled and self.balancer_terminates_tls:
            # The replicas serve HTTP, but the endpoint a client calls is the balancer's HTTPS.
            server = (server.removesuffix(", HTTP") + ", HTTPS at the load balancer (which forwards plain HTTP to "
                      "the replicas inside the VPC)")
        return f"{self.target}: {server}; {self.gpus.describe()}; {self.scaling.describe()}"


def _extra_args(settings: Settings) -> tuple[str, ...]:
    check_extra_args(settings["extraArgs"])
    return settings["extraArgs"]


def balancer_terminates_tls(target: Target, scaling: Scaling) -> bool:
    """A fleet's load balancer serves HTTPS and forwards plain HTTP to the replicas inside the VPC, to the balancer
    and its health checkers only: no replica holds a TLS key or starts vLLM with --ssl-* flags."""
    return target.platform == "vm" and scaling.is_fleet


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


def _plan(settings: Settings, hardware: Hardware, quantization: str | None = None) -> tuple[GpuPlan, list[str]]:
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


def _plan_candidates(settings: Settings, candidates: list[Hardware]) -> tuple[GpuPlan, list[str]]:
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


def _open_to_everyone_warnings(cidrs: tuple[str, ...], kubernetes: Any) -> list[str]:
    warnings = []
    if covers_a_whole_family(cidrs):
        warnings.append("the endpoint is open to the whole Internet (pixtral:allowedCidrs); the API key is enforced, "
                        "but set allowedCidrs to your networks to narrow it")
    if kubernetes is not None and kubernetes.cluster_api_cidrs and covers_a_whole_family(kubernetes.cluster_api_cidrs):
        warnings.append("the cluster's API endpoint is open to the whole Internet (pixtral:clusterApiCidrs, which "
                        "defaults to allowedCidrs); every request still needs cloud credentials, but set "
                        "clusterApiCidrs to the networks you run pulumi and kubectl from")
    return warnings


def load_spec(raw: Mapping[str, Any], other_errors: list[str] | None = None) -> StackSpec:
    """Validate every `pixtral:*` key (namespace stripped) and derive the spec; `other_errors` (settings of
    other namespaces found wrong) are reported together with any bad key."""
    settings = parse_settings(raw, other_errors)
    target = targets.get(settings["target"])
    cloud = target.cloud_settings(settings)
    candidates, node = target.hardware(settings, cloud)
    workload = target.workload_fields(settings, node)
    scaling = Scaling(replicas=settings["replicas"], autoscale=settings["autoscale"],
                      on_demand_base_replicas=settings["onDemandBaseReplicas"], spot=settings["spot"],
                      internal=settings["internal"], warm_pool=settings["warmPool"],
                      replicas_set=settings.is_set("replicas"))
    plan, warnings = _plan_candidates(settings, candidates)
    cidrs = settings["allowedCidrs"]
    tls = TlsSettings(enabled=settings["tls"], domain=settings["domain"], dns_zone=settings["dnsZone"])
    # The target decides: its own store on by default, or the user's bucket when one is named.
    warm_starts = target.warm_starts(settings)
    spec = StackSpec(
        target=target.name,
        server=_server(settings, plan, settings["tls"] and not balancer_terminates_tls(target, scaling)),
        gpus=plan,
        allowed_cidrs=cidrs,
        disk_size_gb=settings["diskSizeGb"],
        scaling=scaling,
        **cloud,
        **workload,
        allowed_cidrs_set=settings.is_set("allowedCidrs"),
        tls=tls,
        warm_starts=warm_starts,
    )
    found = (warnings + target.warnings(spec, settings)
             + _open_to_everyone_warnings(cidrs, spec.kubernetes) + tls.warnings())
    return replace(spec, warnings=tuple(found))


def raw_config_from(get: Callable[[str], Any], keys: list[str]) -> dict[str, str]:
    """Collect the namespace's values; a secret is only marked as set (its value stays a Pulumi secret and never
    enters the spec), so that a secret key is refused on a target it does not apply to like any other key."""
    secret = {k.name for k in CONFIG_KEYS if k.secret}
    return {key: SECRET_SET if key in secret else get(key) for key in keys
            if key in secret or get(key) is not None}
