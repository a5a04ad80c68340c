"""GPU sizing: how many GPUs to shard over and in which precision the weights must be loaded.

vLLM refuses to start when one full sequence of max_model_len tokens does not fit in the KV cache left after the
weights, so the rule here is the same: weights / tp + KV(max_model_len) / tp + runtime overhead must fit in
gpu_memory_utilization x the memory of one GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import GPUS, MachineType, ModelInfo
from .errors import ConfigError

# Activations, the vision encoder's working set, CUDA graphs and the CUDA context, per GPU.
RUNTIME_OVERHEAD_GB = 2.0
BYTES_PER_PARAMETER = {None: 2.0, "fp8": 1.0}
# Pixtral's text decoder has 32 attention heads and its vision encoder 16: tensor parallelism must divide both.
VALID_TENSOR_PARALLEL = (1, 2, 4, 8, 16)


class SizingError(ConfigError):
    """The model cannot be served on the GPUs the configuration gives it."""


@dataclass(frozen=True)
class GpuPlan:
    gpu_name: str
    gpu_count: int
    gpu_memory_gb: float
    tensor_parallel_size: int
    quantization: str | None
    needed_per_gpu_gb: float | None
    usable_per_gpu_gb: float

    def describe(self) -> str:
        usable = f"{self.usable_per_gpu_gb:.1f} GB usable per GPU"
        need = (f"needs ~{self.needed_per_gpu_gb:.1f} of {usable}" if self.needed_per_gpu_gb is not None else
                f"{usable}, fit not checked (the model is not in the sizing catalogue)")
        return f"{self.gpu_count}x {self.gpu_name} ({self.gpu_memory_gb:g} GB each); {need}"


def needed_per_gpu_gb(model: ModelInfo, tensor_parallel: int, quantization: str | None, max_model_len: int) -> float:
    weights = model.parameters_billion * BYTES_PER_PARAMETER[quantization]
    return (weights + model.kv_cache_gb(max_model_len)) / tensor_parallel + RUNTIME_OVERHEAD_GB


def default_tensor_parallel(gpu_count: int) -> int:
    """The largest valid tensor-parallel size that the machine's GPUs can hold."""
    return max(tp for tp in VALID_TENSOR_PARALLEL if tp <= gpu_count)


def _max_fitting_len(model: ModelInfo, tp: int, quantization: str | None, usable: float) -> int:
    weights = model.parameters_billion * BYTES_PER_PARAMETER[quantization]
    room = (usable - RUNTIME_OVERHEAD_GB) * tp - weights
    per_token = model.kv_cache_gb(1)
    return max(0, int(room / per_token) // 1024 * 1024)


@dataclass(frozen=True)
class SizingRequest:
    """What the configuration says; `where` names the config key and value that chose the GPUs, for messages."""

    where: str
    gpu_name: str
    gpu_count: int
    gpu_memory_gb: float
    max_model_len: int
    gpu_memory_utilization: float
    tensor_parallel_size: int | None
    quantization: str | None
    quantization_set: bool


def plan_gpus(
    request: SizingRequest, model: ModelInfo | None, alternatives: list[MachineType]
) -> tuple[GpuPlan, list[str]]:
    """Choose tensor parallelism and precision; return the plan and any warnings for the `pulumi up` log."""
    tp = request.tensor_parallel_size or default_tensor_parallel(request.gpu_count)
    if tp > request.gpu_count:
        raise SizingError(
            f"pixtral:tensorParallelSize: {tp} is more than the {request.gpu_count} GPU(s) of {request.where}; "
            f"allowed: one of {[v for v in VALID_TENSOR_PARALLEL if v <= request.gpu_count]}"
        )
    usable = request.gpu_memory_gb * request.gpu_memory_utilization
    warnings: list[str] = []

    def plan(quantization: str | None, needed: float | None) -> GpuPlan:
        return GpuPlan(request.gpu_name, request.gpu_count, request.gpu_memory_gb, tp, quantization, needed, usable)

    if model is None:
        warnings.append(
            f"model is not in the sizing catalog: serving it with tensor parallel {tp} and "
            f"{request.quantization or 'its own'} precision without checking that it fits"
        )
        return plan(request.quantization, None), warnings

    candidates = [request.quantization] if request.quantization_set else [None, "fp8"]
    gpu_fp8 = GPUS[request.gpu_name].supports_fp8 if request.gpu_name in GPUS else True
    for quantization in candidates:
        if quantization == "fp8" and not gpu_fp8:
            continue
        needed = needed_per_gpu_gb(model, tp, quantization, request.max_model_len)
        if needed <= usable:
            if quantization == "fp8" and not request.quantization_set:
                warnings.append(
                    f"{model.name} does not fit {request.where} in bf16 (needs ~"
                    f"{needed_per_gpu_gb(model, tp, None, request.max_model_len):.1f} GB per GPU of {usable:.1f} "
                    f"usable); serving fp8 weights, which costs a little accuracy. Set pixtral:quantization to "
                    f"fp8 to silence this, or pick a larger GPU."
                )
            return plan(quantization, needed), warnings
    raise SizingError(_does_not_fit(request, model, tp, usable, alternatives))


def _does_not_fit(
    request: SizingRequest, model: ModelInfo, tp: int, usable: float, alternatives: list[MachineType]
) -> str:
    precisions = [request.quantization] if request.quantization_set else [None, "fp8"]
    needs = ", ".join(
        f"~{needed_per_gpu_gb(model, tp, q, request.max_model_len):.1f} GB in {q or 'bf16'}" for q in precisions
    )
    fitting = [
        m.name
        for m in alternatives
        if needed_per_gpu_gb(model, default_tensor_parallel(m.gpu_count), None, request.max_model_len)
        <= GPUS[m.gpu].memory_gb * request.gpu_memory_utilization
    ]
    best_len = max(_max_fitting_len(model, tp, q, usable) for q in precisions)
    hints = []
    if fitting:
        hints.append(f"Types that fit in bf16: {', '.join(fitting[:6])}")
    more_gpus = [tp2 for tp2 in VALID_TENSOR_PARALLEL if tp2 > tp and any(
        needed_per_gpu_gb(model, tp2, q, request.max_model_len) <= usable for q in precisions)]
    if not alternatives and more_gpus:
        hints.append(f"Raise pixtral:gpusPerReplica to {more_gpus[0]}")
    if best_len >= 4096:
        hints.append(f"or lower pixtral:maxModelLen to {best_len} or less")
    if not GPUS.get(request.gpu_name, GPUS["nvidia-l4"]).supports_fp8 and not request.quantization_set:
        hints.append(f"{request.gpu_name} cannot run fp8 weights")
    return (
        f"{request.where}: {model.name} does not fit {request.gpu_count}x {request.gpu_name} "
        f"({request.gpu_memory_gb:g} GB each, {usable:.1f} GB usable at gpuMemoryUtilization "
        f"{request.gpu_memory_utilization}) with maxModelLen {request.max_model_len}: it needs {needs} per GPU "
        f"at tensor parallel {tp}. " + "; ".join(hints)
    ).rstrip(". ") + "."
