"""What the targets that create machines share: a fleet's candidate types and the catalogue's view of a type."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..catalog import GPUS, MACHINE_TYPES, machine_types_for
from ..parsers import setting_error
from . import Hardware

if TYPE_CHECKING:
    from ..keys import Settings


def candidates(settings: Settings, one: str, many: str) -> tuple[str, ...]:
    """A fleet's candidate types: pixtral:instanceTypes (machineTypes), else the one type."""
    if settings.is_set(one) and settings.is_set(many):
        raise setting_error(many, list(settings[many]), f"either pixtral:{one} or pixtral:{many}, not both")
    return settings[many] or (settings[one],)


def chosen_by(settings: Settings, one: str, many: str) -> str:
    """The key whose value named the types, for messages."""
    return many if settings.is_set(many) else one


def catalogue_hardware(settings: Settings, key: str, type_name: str, cloud: str, cloud_phrase: str) -> Hardware:
    """A machine type's GPUs, from the catalogue or from gpuCount / gpuMemoryGb."""
    known = MACHINE_TYPES.get(type_name)
    if known is not None and known.cloud != cloud:
        examples = ", ".join(m.name for m in machine_types_for(cloud)[:4])
        raise setting_error(key, type_name, f"{cloud_phrase} type, e.g. {examples}")
    count, memory = settings["gpuCount"], settings["gpuMemoryGb"]
    if known is None and (count is None or memory is None):
        catalog = ", ".join(m.name for m in machine_types_for(cloud))
        raise setting_error(key, type_name, f"a type from the catalog ({catalog}), or set pixtral:gpuCount and "
                            "pixtral:gpuMemoryGb for it")
    gpu_name = known.gpu if known else "gpu"
    return Hardware(
        where=f"pixtral:{key} {type_name}",
        gpu_name=gpu_name,
        gpu_count=count if count is not None else known.gpu_count,
        gpu_memory_gb=memory if memory is not None else GPUS[gpu_name].memory_gb,
        cloud=cloud,
    )


def per_replica(node: Hardware, gpus_per_replica: int) -> Hardware:
    """EKS / GKE: a pod gets gpusPerReplica of the GPUs of one node of the type the program creates."""
    return Hardware(
        where=f"{node.where} (pixtral:gpusPerReplica {gpus_per_replica})",
        gpu_name=node.gpu_name,
        gpu_count=gpus_per_replica,
        gpu_memory_gb=node.gpu_memory_gb,
        cloud=node.cloud,
    )
