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
from dataclasses import dataclass
from typing import Any

from .catalog import GPUS, MACHINE_TYPES, MODELS, machine_types_for
from .errors import ConfigError
from .server import DEFAULT_MODEL, DEFAULT_PORT, VLLM_VERSION, ServerSpec
from .sizing import GpuPlan, SizingRequest, plan_gpus

NAMESPACE = "pixtral"
VM_TARGETS = ("aws", "gcp")
TARGETS = VM_TARGETS


@dataclass(frozen=True)
class Key:
    name: str
    default: str
    help: str
    targets: tuple[str, ...] = TARGETS
    secret: bool = False


CONFIG_KEYS: tuple[Key, ...] = (
    Key("target", "(required)", "Where to run: `aws` or `gcp`."),
    Key("model", DEFAULT_MODEL, "Hugging Face model id to serve."),
    Key("servedModelName", "the model id", "Model name clients send in requests."),
    Key("vllmVersion", VLLM_VERSION, "vLLM release to install (the tested pin is the default)."),
    Key("port", str(DEFAULT_PORT), "Port the OpenAI-compatible API listens on."),
    Key("maxModelLen", "32768", "Context length in tokens (prompt, image tokens and answer)."),
    Key("maxImagesPerPrompt", "4", "Most images one request may carry."),
    Key("gpuMemoryUtilization", "0.90", "Share of each GPU's memory vLLM may use, in (0, 1]."),
    Key("tensorParallelSize", "the GPUs on the machine", "GPUs the model is sharded over."),
    Key("quantization", "bf16, or fp8 when bf16 does not fit", "`none` or `fp8`."),
    Key("extraArgs", "[]", "More vLLM arguments, as a list of strings."),
    Key("apiKey", "generated (pulumi-random)", "Bearer key clients must send.", secret=True),
    Key("hfToken", "unset", "Hugging Face token, for gated models.", secret=True),
    Key("allowedCidrs", '["0.0.0.0/0"]', "Networks that may reach the port (IPv4 or IPv6 CIDRs)."),
    Key("diskSizeGb", "200", "Root disk size in GB (the OS image, vLLM and the weights)."),
    Key("spot", "false", "Use spot / preemptible capacity."),
    Key("gpuCount", "from the catalog", "GPUs per machine; required for types outside the catalog."),
    Key("gpuMemoryGb", "from the catalog", "Memory of one GPU in GB; required for types outside the catalog."),
    Key("instanceType", "g6e.xlarge", "EC2 instance type (g6e.xlarge: one L40S, 48 GB).", targets=("aws",)),
    Key("vpcId", "the default VPC", "VPC to launch in.", targets=("aws",)),
    Key("subnetId", "a default subnet in a zone that offers the type", "Subnet to launch in.", targets=("aws",)),
    Key("amiId", "newest Deep Learning Base GPU AMI (Ubuntu)", "AMI to boot.", targets=("aws",)),
    Key("machineType", "g2-standard-24", "Compute Engine machine type.", targets=("gcp",)),
    Key("acceleratorType", "nvidia-l4", "GPU type attached to the VM.", targets=("gcp",)),
    Key("acceleratorCount", "2", "Number of GPUs attached.", targets=("gcp",)),
    Key("image", "Deep Learning VM image family with the NVIDIA driver", "Boot image.", targets=("gcp",)),
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
class Deployment:
    target: str
    server: ServerSpec
    gpus: GpuPlan
    allowed_cidrs: tuple[str, ...]
    disk_size_gb: int
    spot: bool
    aws: AwsSettings | None = None
    gcp: GcpSettings | None = None
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
    aws = _aws_settings(reader) if target == "aws" else None
    gcp = _gcp_settings(reader) if target == "gcp" else None
    hardware = (_hardware_for_type(reader, "instanceType", aws.instance_type, "aws") if aws
                else _gcp_hardware(reader, gcp))
    return _finish(reader, target, model, hardware, aws=aws, gcp=gcp)


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
    cidrs = _cidrs(reader)
    if any(ipaddress.ip_network(c).prefixlen == 0 for c in cidrs):
        warnings.append("the endpoint is open to the whole Internet (pixtral:allowedCidrs); the API key is "
                        "enforced, but set allowedCidrs to your networks to narrow it")
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
