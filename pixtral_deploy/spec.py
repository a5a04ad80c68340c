"""The deployment, read from the stack's `pixtral:*` configuration and validated in one place.

Everything downstream (components, cloud-init, tools) reads a `Deployment`, never raw config. Every error names
the config key, the value found and what is allowed, and is raised before any resource is declared.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .catalog import GPUS, MACHINE_TYPES, MODELS, machine_types_for
from .errors import ConfigError
from .server import DEFAULT_MODEL, DEFAULT_PORT, VLLM_VERSION, ServerSpec
from .sizing import GpuPlan, SizingRequest, plan_gpus

NAMESPACE = "pixtral"
VM_TARGETS = ("aws", "gcp")
KUBERNETES_TARGETS = ("kubernetes", "eks", "gke")
TARGETS = VM_TARGETS + KUBERNETES_TARGETS
# The Kubernetes minor version EKS and GKE clusters are created with, and manifests are validated against.
KUBERNETES_VERSION = "1.34"
SERVICE_TYPES = ("LoadBalancer", "ClusterIP", "NodePort")


_MACHINES = ("aws", "gcp", "eks", "gke")


@dataclass(frozen=True)
class Key:
    name: str
    default: str
    help: str
    targets: tuple[str, ...] = TARGETS
    secret: bool = False


CONFIG_KEYS: tuple[Key, ...] = (
    Key("target", "(required)", "Where to run: `aws`, `gcp`, `kubernetes`, `eks` or `gke`."),
    Key("model", DEFAULT_MODEL, "Hugging Face model id to serve."),
    Key("servedModelName", "the model id", "Model name clients send in requests."),
    Key("vllmVersion", VLLM_VERSION, "vLLM release to run (the tested pin is the default)."),
    Key("port", str(DEFAULT_PORT), "Port the OpenAI-compatible API listens on."),
    Key("maxModelLen", "32768", "Context length in tokens (prompt, image tokens and answer)."),
    Key("maxImagesPerPrompt", "4", "Most images one request may carry."),
    Key("gpuMemoryUtilization", "0.90", "Share of each GPU's memory vLLM may use, in (0, 1]."),
    Key("tensorParallelSize", "the GPUs of a machine / replica", "GPUs the model is sharded over."),
    Key("quantization", "bf16, or fp8 when bf16 does not fit", "`none` or `fp8`."),
    Key("extraArgs", "[]", "More vLLM arguments, as a list of strings."),
    Key("apiKey", "generated (pulumi-random)", "Bearer key clients must send.", secret=True),
    Key("hfToken", "unset", "Hugging Face token, for gated models.", secret=True),
    Key("allowedCidrs", '["0.0.0.0/0"]', "Networks that may reach the port (IPv4 or IPv6 CIDRs)."),
    Key("diskSizeGb", "200", "Disk of the VM or GPU node in GB (OS, vLLM, weights).", targets=_MACHINES),
    Key("spot", "false", "Use spot / preemptible capacity.", targets=_MACHINES),
    Key("gpuCount", "from the catalog", "GPUs per machine; required for types outside the catalog.",
        targets=_MACHINES),
    Key("gpuMemoryGb", "from the catalog", "Memory of one GPU in GB; required for types outside the catalog."),
    Key("instanceType", "g6e.xlarge", "EC2 instance type of the VM / GPU nodes (g6e.xlarge: one L40S, 48 GB).",
        targets=("aws", "eks")),
    Key("vpcId", "the default VPC", "VPC to launch in.", targets=("aws", "eks")),
    Key("subnetId", "a default subnet in a zone that offers the type", "Subnet to launch in.", targets=("aws",)),
    Key("amiId", "newest Deep Learning Base GPU AMI (Ubuntu)", "AMI to boot.", targets=("aws",)),
    Key("machineType", "g2-standard-24", "Compute Engine machine type of the VM / GPU nodes.",
        targets=("gcp", "gke")),
    Key("acceleratorType", "nvidia-l4", "GPU type attached to the VM / GPU nodes.", targets=("gcp", "gke")),
    Key("acceleratorCount", "2", "Number of GPUs attached to each VM / GPU node.", targets=("gcp", "gke")),
    Key("image", "Deep Learning VM image family with the NVIDIA driver", "Boot image.", targets=("gcp",)),
    Key("kubeconfig", "the ambient kubeconfig", "Kubeconfig of an existing cluster.", targets=("kubernetes",),
        secret=True),
    Key("context", "the kubeconfig's current context", "Kubeconfig context to use.", targets=("kubernetes",)),
    Key("gpuType", "(gpuType or gpuMemoryGb required)", "GPU of the cluster's nodes, a catalog name (nvidia-l4, "
        "nvidia-l40s, nvidia-a10g, nvidia-tesla-a100, nvidia-h100-80gb, ...).", targets=("kubernetes",)),
    Key("clusterName", "a new cluster", "Existing EKS / GKE cluster to add the GPU nodes to.",
        targets=("eks", "gke")),
    Key("clusterApiCidrs", "the IPv4 CIDRs of allowedCidrs", "IPv4 networks that may reach the API endpoint of "
        "the EKS / GKE cluster the program creates (where pulumi and kubectl run).", targets=("eks", "gke")),
    Key("namespace", "pixtral", "Namespace of the workload.", targets=KUBERNETES_TARGETS),
    Key("storageClass", "the cluster's default", "StorageClass of the model-cache volume.",
        targets=KUBERNETES_TARGETS),
    Key("cacheSizeGb", "100", "Size of the Hugging Face cache volume in GB.", targets=KUBERNETES_TARGETS),
    Key("gpusPerReplica", "1", "GPUs per pod (`nvidia.com/gpu`); tensor parallel matches.",
        targets=KUBERNETES_TARGETS),
    Key("nodeSelector", "{}", "Node labels the pods must match, as a map.", targets=KUBERNETES_TARGETS),
    Key("serviceType", "LoadBalancer", "`LoadBalancer`, `ClusterIP` (private) or `NodePort`.",
        targets=KUBERNETES_TARGETS),
    Key("replicas", "1", "Number of vLLM pods.", targets=KUBERNETES_TARGETS),
)
KNOWN_KEYS = {key.name for key in CONFIG_KEYS}

# Flags the program sets from its own keys; accepting them in extraArgs would let two values disagree.
_MANAGED_FLAGS = {
    "--model": "model", "--served-model-name": "servedModelName", "--host": "(fixed)", "--port": "port",
    "--tokenizer-mode": "model", "--config-format": "model", "--load-format": "model",
    "--limit-mm-per-prompt": "maxImagesPerPrompt", "--max-model-len": "maxModelLen",
    "--tensor-parallel-size": "tensorParallelSize", "--gpu-memory-utilization": "gpuMemoryUtilization",
    "--quantization": "quantization", "--api-key": "apiKey",
}


@dataclass(frozen=True)
class AwsSettings:
    instance_type: str
    vpc_id: str | None
    subnet_id: str | None
    ami_id: str | None


@dataclass(frozen=True)
class GcpSettings:
    machine_type: str
    accelerator_type: str
    accelerator_count: int
    image: str | None


@dataclass(frozen=True)
class KubernetesSettings:
    namespace: str
    storage_class: str | None
    cache_size_gb: int
    gpus_per_replica: int
    node_selector: tuple[tuple[str, str], ...]
    service_type: str
    replicas: int
    context: str | None = None
    cluster_name: str | None = None
    # EKS / GKE: GPUs of one node of the type the program creates (None on an existing cluster).
    gpus_per_node: int | None = None
    # EKS / GKE: networks that may reach the API endpoint of a cluster the program creates.
    cluster_api_cidrs: tuple[str, ...] = ()

    def nodes_needed(self) -> int:
        """GPU nodes for every replica, when each node holds as many whole replicas as its GPUs allow."""
        per_node = max(1, (self.gpus_per_node or self.gpus_per_replica) // self.gpus_per_replica)
        return -(-self.replicas // per_node)


@dataclass(frozen=True)
class Deployment:
    target: str
    server: ServerSpec
    gpus: GpuPlan
    allowed_cidrs: tuple[str, ...]
    disk_size_gb: int
    spot: bool
    aws: AwsSettings | None = None
    gcp: GcpSettings | None = None
    kubernetes: KubernetesSettings | None = None
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.target}: {self.server.describe()}; {self.gpus.describe()}"


def _fail(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"pixtral:{key}: {value!r} is not allowed; expected {allowed}")


class _Reader:
    """Typed access to raw config strings; each parse names its key in the error."""

    def __init__(self, raw: Mapping[str, str]):
        self.raw = raw

    def str(self, key: str, default: str | None = None) -> str | None:
        value = self.raw.get(key)
        return default if value is None or value == "" else str(value)

    def int(self, key: str, default: int, low: int, high: int) -> int:
        text = self.str(key)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise _fail(key, text, f"a whole number from {low} to {high}") from None
        if not low <= value <= high:
            raise _fail(key, value, f"a whole number from {low} to {high}")
        return value

    def optional_int(self, key: str, low: int, high: int) -> int | None:
        return None if self.str(key) is None else self.int(key, 0, low, high)

    def fraction(self, key: str, default: float) -> float:
        text = self.str(key)
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError:
            raise _fail(key, text, "a number in (0, 1]") from None
        if not 0 < value <= 1:
            raise _fail(key, value, "a number in (0, 1]")
        return value

    def optional_float(self, key: str, low: float) -> float | None:
        text = self.str(key)
        if text is None:
            return None
        try:
            value = float(text)
        except ValueError:
            raise _fail(key, text, f"a number of at least {low}") from None
        if value < low:
            raise _fail(key, value, f"a number of at least {low}")
        return value

    def bool(self, key: str, default: bool) -> bool:
        text = self.str(key)
        if text is None:
            return default
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise _fail(key, text, "true or false")

    def string_list(self, key: str, default: list[str]) -> list[str]:
        value = self.raw.get(key)
        if value is None:
            return default
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise _fail(key, value, "a list of strings, e.g. [\"a\", \"b\"]") from None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise _fail(key, value, "a list of strings")
        return value

    def string_map(self, key: str) -> dict[str, str]:
        value = self.raw.get(key)
        if value is None:
            return {}
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise _fail(key, value, 'a map of strings, e.g. {"cloud.google.com/gke-accelerator": "nvidia-l4"}') \
                    from None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise _fail(key, value, "a map of label names to string values")
        return value


def _check_unknown_keys(raw: Mapping[str, str]) -> None:
    for key in raw:
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(key, sorted(KNOWN_KEYS), n=1)
            hint = f"did you mean pixtral:{close[0]}? " if close else ""
            raise ConfigError(f"pixtral:{key} is not a setting this program reads; {hint}known keys: "
                              f"{', '.join(sorted(KNOWN_KEYS))}")


def _check_target_keys(raw: Mapping[str, str], target: str) -> None:
    """A key of another target is a mistake (an AWS instanceType on a gcp stack), not a no-op."""
    for key in CONFIG_KEYS:
        if key.name in raw and target not in key.targets:
            raise ConfigError(f"pixtral:{key.name} only applies to target {' or '.join(key.targets)}, "
                              f"not to pixtral:target {target!r}; remove it from this stack")


def _cidrs(reader: _Reader) -> tuple[str, ...]:
    cidrs = reader.string_list("allowedCidrs", ["0.0.0.0/0"])
    if not cidrs:
        raise _fail("allowedCidrs", cidrs, "at least one CIDR (an empty list would make the endpoint unreachable)")
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError as error:
            raise _fail("allowedCidrs", cidr, f"CIDRs such as 203.0.113.0/24 or 2001:db8::/32 ({error})") from None
    return tuple(cidrs)


def _cluster_api_cidrs(reader: _Reader, existing_cluster: str | None) -> tuple[str, ...]:
    """EKS public access CIDRs and GKE master authorized networks take IPv4 only; the default is allowedCidrs'."""
    if existing_cluster:
        if reader.raw.get("clusterApiCidrs") is not None:
            raise ConfigError(f"pixtral:clusterApiCidrs sets the API access of a cluster the program creates; "
                              f"pixtral:clusterName names an existing one ({existing_cluster!r}), whose access "
                              "is set where it was created: remove one of the two")
        return ()
    if reader.raw.get("clusterApiCidrs") is None:
        default = tuple(c for c in _cidrs(reader) if ipaddress.ip_network(c).version == 4)
        if not default:
            raise _fail("allowedCidrs", list(_cidrs(reader)), "at least one IPv4 CIDR, or set pixtral:clusterApiCidrs "
                        "to the IPv4 networks that may reach the cluster's API endpoint")
        return default
    cidrs = reader.string_list("clusterApiCidrs", [])
    if not cidrs:
        raise _fail("clusterApiCidrs", cidrs, "at least one IPv4 CIDR (pulumi must reach the cluster's API)")
    for cidr in cidrs:
        try:
            network = ipaddress.ip_network(cidr, strict=True)
        except ValueError as error:
            raise _fail("clusterApiCidrs", cidr, f"IPv4 CIDRs such as 203.0.113.0/24 ({error})") from None
        if network.version != 4:
            raise _fail("clusterApiCidrs", cidr, "IPv4 CIDRs such as 203.0.113.0/24 (EKS and GKE take no IPv6 here)")
    return tuple(cidrs)


def _extra_args(reader: _Reader) -> tuple[str, ...]:
    args = reader.string_list("extraArgs", [])
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag in _MANAGED_FLAGS:
            owner = _MANAGED_FLAGS[flag]
            raise _fail("extraArgs", arg, f"no {flag}: it is set from pixtral:{owner}" if owner != "(fixed)"
                        else f"no {flag}: the program sets it")
    return tuple(args)


_VERSION = re.compile(r"^\d+\.\d+\.\d+(\.post\d+)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


@dataclass(frozen=True)
class _Hardware:
    """The GPUs one machine (or replica) gets, and the config key that chose them, for messages."""

    where: str
    gpu_name: str
    gpu_count: int
    gpu_memory_gb: float
    cloud: str


def _hardware_for_type(reader: _Reader, key: str, type_name: str, cloud: str) -> _Hardware:
    known = MACHINE_TYPES.get(type_name)
    if known is not None and known.cloud != cloud:
        raise _fail(key, type_name, f"a {cloud} type, e.g. {', '.join(m.name for m in machine_types_for(cloud)[:4])}")
    count = reader.optional_int("gpuCount", 1, 16)
    memory = reader.optional_float("gpuMemoryGb", 1)
    if known is None and (count is None or memory is None):
        raise _fail(key, type_name, f"a type from the catalog ({', '.join(m.name for m in machine_types_for(cloud))})"
                    ", or set pixtral:gpuCount and pixtral:gpuMemoryGb for it")
    gpu_name = known.gpu if known else "gpu"
    return _Hardware(
        where=f"pixtral:{key} {type_name}",
        gpu_name=gpu_name,
        gpu_count=count if count is not None else known.gpu_count,
        gpu_memory_gb=memory if memory is not None else GPUS[gpu_name].memory_gb,
        cloud=cloud,
    )


def _gcp_hardware(reader: _Reader, settings: GcpSettings) -> _Hardware:
    if settings.accelerator_type not in GPUS and reader.str("gpuMemoryGb") is None:
        raise _fail("acceleratorType", settings.accelerator_type,
                    f"one of {', '.join(sorted(GPUS))}, or set pixtral:gpuMemoryGb for it")
    known = MACHINE_TYPES.get(settings.machine_type)
    # G2/A2/A3 fix their GPUs; a different acceleratorType or count would be refused by the API at create time.
    attached = (settings.accelerator_type, settings.accelerator_count)
    if known is not None and known.accelerators_built_in and attached != (known.gpu, known.gpu_count):
        raise ConfigError(
            f"pixtral:machineType {settings.machine_type} comes with {known.gpu_count}x {known.gpu}; "
            f"pixtral:acceleratorType/acceleratorCount say {settings.accelerator_count}x "
            f"{settings.accelerator_type}. Set them to match, or pick another machine type"
        )
    count = reader.optional_int("gpuCount", 1, 16)
    memory = reader.optional_float("gpuMemoryGb", 1)
    return _Hardware(
        where=f"pixtral:machineType {settings.machine_type}",
        gpu_name=settings.accelerator_type,
        gpu_count=count if count is not None else settings.accelerator_count,
        gpu_memory_gb=memory if memory is not None else GPUS[settings.accelerator_type].memory_gb,
        cloud="gcp",
    )


def _aws_settings(reader: _Reader) -> AwsSettings:
    settings = AwsSettings(
        instance_type=reader.str("instanceType", "g6e.xlarge"),
        vpc_id=reader.str("vpcId"),
        subnet_id=reader.str("subnetId"),
        ami_id=reader.str("amiId"),
    )
    for key, value, prefix in (("vpcId", settings.vpc_id, "vpc-"), ("subnetId", settings.subnet_id, "subnet-"),
                               ("amiId", settings.ami_id, "ami-")):
        if value is not None and not value.startswith(prefix):
            raise _fail(key, value, f"an id starting with {prefix!r}")
    return settings


def _gcp_settings(reader: _Reader) -> GcpSettings:
    machine_type = reader.str("machineType", "g2-standard-24")
    known = MACHINE_TYPES.get(machine_type)
    if known is not None and known.cloud != "gcp":
        raise _fail("machineType", machine_type, "a Compute Engine machine type, e.g. g2-standard-24")
    return GcpSettings(
        machine_type=machine_type,
        accelerator_type=reader.str("acceleratorType", known.gpu if known else "nvidia-l4"),
        accelerator_count=reader.int("acceleratorCount", known.gpu_count if known else 1, 1, 16),
        image=reader.str("image"),
    )


def _kubernetes_settings(reader: _Reader) -> KubernetesSettings:
    namespace = reader.str("namespace", "pixtral")
    if not _DNS_LABEL.match(namespace):
        raise _fail("namespace", namespace, "a DNS label: lowercase letters, digits and '-', at most 63")
    storage_class = reader.str("storageClass")
    if storage_class is not None and not _DNS_SUBDOMAIN.match(storage_class):
        raise _fail("storageClass", storage_class, "a StorageClass name (lowercase letters, digits, '-', '.')")
    service_type = reader.str("serviceType", "LoadBalancer")
    if service_type not in SERVICE_TYPES:
        raise _fail("serviceType", service_type, f"one of {', '.join(SERVICE_TYPES)}")
    return KubernetesSettings(
        namespace=namespace,
        storage_class=storage_class,
        # The weights alone are ~25 GB; less cannot hold them.
        cache_size_gb=reader.int("cacheSizeGb", 100, 30, 65536),
        gpus_per_replica=reader.int("gpusPerReplica", 1, 1, 16),
        node_selector=tuple(sorted(reader.string_map("nodeSelector").items())),
        service_type=service_type,
        replicas=reader.int("replicas", 1, 1, 64),
        context=reader.str("context"),
        cluster_name=reader.str("clusterName"),
    )


def _cluster_gpu_hardware(reader: _Reader, gpus_per_replica: int) -> _Hardware:
    """An existing cluster: the GPU comes from pixtral:gpuType or pixtral:gpuMemoryGb."""
    gpu_type = reader.str("gpuType")
    memory = reader.optional_float("gpuMemoryGb", 1)
    if gpu_type is not None and gpu_type not in GPUS:
        raise _fail("gpuType", gpu_type, f"one of {', '.join(sorted(GPUS))}, or set pixtral:gpuMemoryGb instead")
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


def _node_pool_hardware(node: _Hardware, key: str, gpus_per_replica: int) -> _Hardware:
    """EKS / GKE: a pod gets gpusPerReplica of the GPUs of one node of the type the program creates."""
    if gpus_per_replica > node.gpu_count:
        raise _fail("gpusPerReplica", gpus_per_replica,
                    f"at most the {node.gpu_count} GPU(s) of one {node.where.split(' ', 1)[1]} node ({key})")
    return _Hardware(
        where=f"{node.where} (pixtral:gpusPerReplica {gpus_per_replica})",
        gpu_name=node.gpu_name,
        gpu_count=gpus_per_replica,
        gpu_memory_gb=node.gpu_memory_gb,
        cloud=node.cloud,
    )


def _quantization(reader: _Reader) -> tuple[str | None, bool]:
    text = reader.str("quantization")
    if text is None:
        return None, False
    if text not in ("none", "fp8"):
        raise _fail("quantization", text, "'none' or 'fp8'")
    return (None if text == "none" else text), True


def _server(reader: _Reader, plan: GpuPlan, model: str) -> ServerSpec:
    return ServerSpec(
        model=model,
        served_model_name=reader.str("servedModelName", model),
        vllm_version=reader.str("vllmVersion", VLLM_VERSION),
        port=reader.int("port", DEFAULT_PORT, 1, 65535),
        max_model_len=reader.int("maxModelLen", 32768, 256, 1048576),
        max_images_per_prompt=reader.int("maxImagesPerPrompt", 4, 1, 64),
        gpu_memory_utilization=reader.fraction("gpuMemoryUtilization", 0.90),
        tensor_parallel_size=plan.tensor_parallel_size,
        quantization=plan.quantization,
        extra_args=_extra_args(reader),
        mistral_format=model.startswith("mistralai/"),
    )


def _validate_names(reader: _Reader) -> str:
    model = reader.str("model", DEFAULT_MODEL)
    if not _NAME.match(model):
        raise _fail("model", model, "a Hugging Face model id such as mistralai/Pixtral-12B-2409")
    served = reader.str("servedModelName")
    if served is not None and not _NAME.match(served):
        raise _fail("servedModelName", served, "letters, digits and . _ / -")
    version = reader.str("vllmVersion", VLLM_VERSION)
    if not _VERSION.match(version):
        raise _fail("vllmVersion", version, f"a release number such as {VLLM_VERSION}")
    return model


def _target(reader: _Reader) -> str:
    target = reader.str("target")
    if target not in TARGETS:
        raise _fail("target", target, f"one of {', '.join(TARGETS)}")
    return target


def load_deployment(raw: Mapping[str, str]) -> Deployment:
    """Validate every `pixtral:*` key (namespace stripped) and derive the deployment."""
    _check_unknown_keys(raw)
    reader = _Reader(raw)
    target = _target(reader)
    _check_target_keys(raw, target)
    model = _validate_names(reader)
    aws = _aws_settings(reader) if target in ("aws", "eks") else None
    gcp = _gcp_settings(reader) if target in ("gcp", "gke") else None
    kubernetes = _kubernetes_settings(reader) if target in KUBERNETES_TARGETS else None
    if target == "kubernetes":
        hardware = _cluster_gpu_hardware(reader, kubernetes.gpus_per_replica)
    else:
        hardware = (_hardware_for_type(reader, "instanceType", aws.instance_type, "aws") if aws
                    else _gcp_hardware(reader, gcp))
        if kubernetes is not None:
            kubernetes = replace(kubernetes, gpus_per_node=hardware.gpu_count,
                                 cluster_api_cidrs=_cluster_api_cidrs(reader, kubernetes.cluster_name))
            hardware = _node_pool_hardware(hardware, "instanceType" if aws else "machineType",
                                           kubernetes.gpus_per_replica)
    return _finish(reader, target, model, hardware, aws=aws, gcp=gcp, kubernetes=kubernetes)


def _finish(reader: _Reader, target: str, model: str, hardware: _Hardware, **cloud: Any) -> Deployment:
    quantization, quantization_set = _quantization(reader)
    request = SizingRequest(
        where=hardware.where,
        gpu_name=hardware.gpu_name,
        gpu_count=hardware.gpu_count,
        gpu_memory_gb=hardware.gpu_memory_gb,
        max_model_len=reader.int("maxModelLen", 32768, 256, 1048576),
        gpu_memory_utilization=reader.fraction("gpuMemoryUtilization", 0.90),
        tensor_parallel_size=reader.optional_int("tensorParallelSize", 1, 16),
        quantization=quantization,
        quantization_set=quantization_set,
    )
    plan, warnings = plan_gpus(request, MODELS.get(model), machine_types_for(hardware.cloud))
    kubernetes = cloud.get("kubernetes")
    if kubernetes is not None and plan.tensor_parallel_size != kubernetes.gpus_per_replica:
        raise _fail("tensorParallelSize", plan.tensor_parallel_size,
                    f"pixtral:gpusPerReplica ({kubernetes.gpus_per_replica}): a pod's GPUs all serve one shard")
    cidrs = _cidrs(reader)
    if any(ipaddress.ip_network(c).prefixlen == 0 for c in cidrs):
        warnings.append("the endpoint is open to the whole Internet (pixtral:allowedCidrs); the API key is "
                        "enforced, but set allowedCidrs to your networks to narrow it")
    if kubernetes is not None and any(
            ipaddress.ip_network(c).prefixlen == 0 for c in kubernetes.cluster_api_cidrs):
        warnings.append("the cluster's API endpoint is open to the whole Internet (pixtral:clusterApiCidrs, which "
                        "defaults to allowedCidrs); every request still needs cloud credentials, but set "
                        "clusterApiCidrs to the networks you run pulumi and kubectl from")
    return Deployment(
        target=target,
        server=_server(reader, plan, model),
        gpus=plan,
        allowed_cidrs=cidrs,
        disk_size_gb=reader.int("diskSizeGb", 200, 100, 16384),
        spot=reader.bool("spot", False),
        warnings=tuple(warnings),
        **cloud,
    )


def raw_config_from(get: Callable[[str], Any], keys: list[str]) -> dict[str, str]:
    """Collect the namespace's values (secrets excluded: they stay Pulumi secrets and never enter the spec)."""
    secret = {k.name for k in CONFIG_KEYS if k.secret}
    return {key: get(key) for key in keys if key not in secret and get(key) is not None}
