"""Where the weights live, and how fast that storage is: the one home for disk choices and their throughput.

The VM components declare these disks and the cold-start estimate reads the same numbers, so a faster disk in one
place is a faster estimate in the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import MachineType, has_local_nvme

MIB = 1024 * 1024
# The AWS root volume the VMs and fleets declare: gp3 well above its 125 MiB/s default, because the weights are
# written once and read on every cold start.
AWS_ROOT_THROUGHPUT_MIBS = 1000
AWS_ROOT_IOPS = 6000
# The EKS StorageClass for the model cache (a volume per pod, written once, read on every start).
EKS_CACHE_THROUGHPUT_MIBS = 500
# pd-ssd reads at up to 1,200 MB/s on large VMs; pd-balanced's 240 MB/s would make loading 25 GB take minutes.
GCP_BOOT_DISK_TYPE = "pd-ssd"


@dataclass(frozen=True)
class Storage:
    name: str
    write_mibs: float
    read_mibs: float


# The per-disk speeds of local NVMe; a machine's cache stripes every such disk (userdata/prepare-storage.sh, RAID 0),
# so its array reads and writes at the disks' sum (catalog.MachineType.local_nvme_disks says how many): local_nvme.
# AWS instance store, per disk: AWS's instance-store table gives each type's disks and their 4 KiB random IOPS
# (https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html#ac_instance-store), no sequential throughput; 2,000
# MiB/s of writes and 3,000 of reads for one NVMe SSD is this catalogue's assumption.
LOCAL_NVME = Storage("local NVMe", write_mibs=2000, read_mibs=3000)
# GCP Local SSD (NVMe), per 375 GiB disk: 660 MiB/s read, 350 MiB/s write; Google's "Local SSD performance" table
# (https://cloud.google.com/compute/docs/disks/local-ssd#performance) lists the throughput of 1, 2, 4, 8 ... disks
# growing with their count, which is what a striped array adds up.
GCP_LOCAL_SSD_GB = 375
GCP_LOCAL_SSD_READ_MIBS = 660
GCP_LOCAL_SSD_WRITE_MIBS = 350


def gcp_local_ssd(disks: int) -> Storage:
    name = f"{disks} local SSDs striped" if disks > 1 else "local SSD"
    return Storage(name, GCP_LOCAL_SSD_WRITE_MIBS * disks, GCP_LOCAL_SSD_READ_MIBS * disks)


def aws_instance_store(disks: int) -> Storage:
    if disks == 1:
        return LOCAL_NVME
    return Storage(f"{disks} local NVMe disks striped", LOCAL_NVME.write_mibs * disks, LOCAL_NVME.read_mibs * disks)


def local_nvme(machine: MachineType) -> Storage:
    """The array the boot makes of every local NVMe disk of `machine` (one disk: that disk)."""
    disks = machine.local_nvme_disks
    return gcp_local_ssd(disks) if machine.cloud == "gcp" else aws_instance_store(disks)


def gp3(throughput_mibs: float) -> Storage:
    return Storage(f"gp3 at {throughput_mibs:g} MiB/s", throughput_mibs, throughput_mibs)


def pd_ssd(size_gb: int) -> Storage:
    # pd-ssd: 0.48 MB/s per GB for reads and writes, up to 1,200 MB/s per VM.
    mibs = min(0.48 * size_gb, 1200) * 1e6 / MIB
    return Storage(f"pd-ssd {size_gb} GB", mibs, mibs)


def pd_balanced(size_gb: int) -> Storage:
    # pd-balanced: 0.28 MB/s per GB, up to 1,200 MB/s: what a default boot disk gets.
    mibs = min(0.28 * size_gb, 1200) * 1e6 / MIB
    return Storage(f"pd-balanced {size_gb} GB", mibs, mibs)


def vm_storage(machine: MachineType, disk_size_gb: int, keep_across_stop: bool = False) -> Storage:
    """Where the boot plan puts the weights on this machine: local NVMe when it has one, else its root disk.
    `keep_across_stop` (a fleet's warm pool of stopped instances): always the root disk, since instance store is
    blank after a stop and the weights must be there when the instance resumes."""
    if has_local_nvme(machine.name) and not keep_across_stop:
        return local_nvme(machine)
    return root_disk(machine, disk_size_gb)


def root_disk(machine: MachineType, disk_size_gb: int) -> Storage:
    """The root disk the program provisions: it holds /opt/pixtral (vLLM's venv and its Python) on a VM without local
    NVMe (with it, userdata/prepare-storage.sh puts /opt/pixtral on the local disks beside the cache)."""
    return gp3(AWS_ROOT_THROUGHPUT_MIBS) if machine.cloud == "aws" else pd_ssd(disk_size_gb)


def default_root_disk(machine: MachineType, disk_size_gb: int) -> Storage:
    """What a VM gets without tuning: gp3 at its 125 MiB/s baseline, or a pd-balanced boot disk."""
    return gp3(125) if machine.cloud == "aws" else pd_balanced(disk_size_gb)
