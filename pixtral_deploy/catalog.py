"""What the program knows about the hardware it rents and the models it serves.

The numbers come from the clouds' instance-type pages and the models' cards. They feed two decisions: GPU sizing
(tensor parallelism, bf16 or fp8, or a clear "does not fit") and the cold-start estimate.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_gb: float
    # Ampere and newer run fp8 weights (Ampere through vLLM's weight-only Marlin kernels); Turing does not.
    supports_fp8: bool


GPUS: dict[str, Gpu] = {
    gpu.name: gpu
    for gpu in (
        Gpu("nvidia-tesla-t4", 16, supports_fp8=False),
        Gpu("nvidia-a10g", 24, supports_fp8=True),
        Gpu("nvidia-l4", 24, supports_fp8=True),
        Gpu("nvidia-l40s", 48, supports_fp8=True),
        Gpu("nvidia-tesla-a100", 40, supports_fp8=True),
        Gpu("nvidia-a100-80gb", 80, supports_fp8=True),
        Gpu("nvidia-h100-80gb", 80, supports_fp8=True),
    )
}


# The labels a Kubernetes node carries for its GPU, by whoever puts them there: GKE on every GPU node (the
# accelerator's Compute Engine name, the catalogue's names); the Cluster Autoscaler's AWS convention, set by the
# node group (k8s.amazonaws.com/accelerator, same names); NVIDIA's GPU feature discovery, run by the GPU Operator
# (nvidia.com/gpu.product: the name nvidia-smi prints with spaces as dashes, older drivers without "NVIDIA-").
GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
AWS_ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"
GFD_PRODUCT_LABEL = "nvidia.com/gpu.product"
GFD_PRODUCTS: dict[str, tuple[str, ...]] = {
    "nvidia-tesla-t4": ("Tesla-T4",),
    "nvidia-a10g": ("NVIDIA-A10G",),
    "nvidia-l4": ("NVIDIA-L4",),
    "nvidia-l40s": ("NVIDIA-L40S",),
    "nvidia-tesla-a100": ("NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB", "A100-SXM4-40GB", "A100-PCIE-40GB"),
    "nvidia-a100-80gb": ("NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe", "A100-SXM4-80GB", "A100-80GB-PCIe"),
    "nvidia-h100-80gb": ("NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe", "H100-80GB-HBM3", "H100-PCIe"),
}


@dataclass(frozen=True)
class MachineType:
    """A VM type with GPUs: what it carries and how fast it can fetch and read weights."""

    cloud: str
    name: str
    gpu: str
    gpu_count: int
    network_gbps: float
    # vCPUs (the EC2 and Compute Engine machine-type tables): what compiles vLLM's bytecode at install
    # (coldstart.BYTECODE_CPU_SECONDS).
    vcpus: int
    # Local NVMe / local SSD in GB; 0 when the type has none (weights then live on a network volume).
    local_nvme_gb: int = 0
    # How many disks make up local_nvme_gb: the boot stripes them all into one array for the model cache
    # (userdata/prepare-storage.sh), so the cache reads and writes at their sum (storage.local_nvme). AWS: the
    # "Instance store volumes" column of "Amazon EC2 instance type specifications, accelerated computing"
    # (https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html#ac_instance-store: g6e.12xlarge 2 x 1900 GB,
    # g6.12xlarge 4 x 940 GB, p4d.24xlarge 8 x 1000 GB, p5.48xlarge 8 x 3840 GB, the others one disk); GCP: 375 GiB
    # Local SSDs, as many as the type takes or bundles (a3-highgpu-8g 16, a2-ultragpu-1g 1).
    local_nvme_disks: int = 0
    # GCP G2/A2/A3 carry their GPUs in the machine type; N1 needs them attached (acceleratorType/Count).
    accelerators_built_in: bool = True
    # Local SSDs (375 GiB each) the VM must ask for when it is created, because the type does not bundle them
    # (GCP's first- and second-generation types and G2, unlike A2 Ultra and A3: "Add a Local SSD disk",
    # https://cloud.google.com/compute/docs/disks/add-local-ssd); 0 where they come with the type or not at all.
    local_ssds_to_attach: int = 0
    # The CPU has SHA extensions, so the boot checks an artefact's SHA-256 at 1.8 GB/s instead of 0.54 GB/s
    # (coldstart.SHA256_GBPS): AMD EPYC (g5, g6, g6e, p5) and Intel from Ice Lake / Sapphire Rapids (a3) have them;
    # Cascade Lake (G2, A2, p4d) and N1's Skylake do not.
    sha_extensions: bool = False


_AWS = "aws"
_GCP = "gcp"

MACHINE_TYPES: dict[str, MachineType] = {
    m.name: m
    for m in (
        MachineType(_AWS, "g6e.xlarge", "nvidia-l40s", 1, network_gbps=20, vcpus=4, local_nvme_gb=250,
                    local_nvme_disks=1, sha_extensions=True),
        MachineType(_AWS, "g6e.2xlarge", "nvidia-l40s", 1, network_gbps=20, vcpus=8, local_nvme_gb=450,
                    local_nvme_disks=1, sha_extensions=True),
        MachineType(_AWS, "g6e.4xlarge", "nvidia-l40s", 1, network_gbps=20, vcpus=16, local_nvme_gb=600,
                    local_nvme_disks=1, sha_extensions=True),
        MachineType(_AWS, "g6e.12xlarge", "nvidia-l40s", 4, network_gbps=100, vcpus=48, local_nvme_gb=3800,
                    local_nvme_disks=2, sha_extensions=True),
        MachineType(_AWS, "g6.xlarge", "nvidia-l4", 1, network_gbps=10, vcpus=4, local_nvme_gb=250, local_nvme_disks=1,
                    sha_extensions=True),
        MachineType(_AWS, "g6.2xlarge", "nvidia-l4", 1, network_gbps=10, vcpus=8, local_nvme_gb=450, local_nvme_disks=1,
                    sha_extensions=True),
        MachineType(_AWS, "g6.12xlarge", "nvidia-l4", 4, network_gbps=40, vcpus=48, local_nvme_gb=3760,
                    local_nvme_disks=4, sha_extensions=True),
        MachineType(_AWS, "g5.xlarge", "nvidia-a10g", 1, network_gbps=10, vcpus=4, local_nvme_gb=250,
                    local_nvme_disks=1, sha_extensions=True),
        MachineType(_AWS, "g5.2xlarge", "nvidia-a10g", 1, network_gbps=10, vcpus=8, local_nvme_gb=450,
                    local_nvme_disks=1, sha_extensions=True),
        MachineType(_AWS, "g5.12xlarge", "nvidia-a10g", 4, network_gbps=40, vcpus=48, local_nvme_gb=3800,
                    local_nvme_disks=1, sha_extensions=True),
        MachineType(_AWS, "p4d.24xlarge", "nvidia-tesla-a100", 8, network_gbps=400, vcpus=96, local_nvme_gb=8000,
                    local_nvme_disks=8),
        MachineType(_AWS, "p5.48xlarge", "nvidia-h100-80gb", 8, network_gbps=3200, vcpus=192, local_nvme_gb=30720,
                    local_nvme_disks=8, sha_extensions=True),
        # G2 takes Local SSD on request, up to the "Max Local SSD supported" of Google's G2 table (375 GiB per
        # disk; https://cloud.google.com/compute/docs/accelerator-optimized-machines#g2-vms): the fastest storage
        # the type offers (two disks on g2-standard-24, striped by the boot, read 1,320 MiB/s and write 700 MiB/s,
        # storage.local_nvme), well ahead of the pd-ssd boot disk (240 MB/s at 500 GB). The program attaches the
        # most the type allows.
        *(MachineType(_GCP, name, "nvidia-l4", gpus, network_gbps=gbps, vcpus=int(name.rsplit("-", 1)[1]),
                      local_nvme_gb=375 * ssds, local_nvme_disks=ssds, local_ssds_to_attach=ssds)
          for name, gpus, gbps, ssds in (
              ("g2-standard-4", 1, 10, 1), ("g2-standard-8", 1, 16, 1), ("g2-standard-12", 1, 16, 1),
              ("g2-standard-16", 1, 32, 1), ("g2-standard-24", 2, 32, 2), ("g2-standard-32", 1, 32, 1),
              ("g2-standard-48", 4, 50, 4), ("g2-standard-96", 8, 100, 8))),
        MachineType(_GCP, "a2-highgpu-1g", "nvidia-tesla-a100", 1, network_gbps=24, vcpus=12),
        MachineType(_GCP, "a2-highgpu-2g", "nvidia-tesla-a100", 2, network_gbps=32, vcpus=24),
        MachineType(_GCP, "a2-ultragpu-1g", "nvidia-a100-80gb", 1, network_gbps=24, vcpus=12, local_nvme_gb=375,
                    local_nvme_disks=1),
        MachineType(_GCP, "a3-highgpu-8g", "nvidia-h100-80gb", 8, network_gbps=1000, vcpus=208, local_nvme_gb=6000,
                    local_nvme_disks=16, sha_extensions=True),
        # N1 carries no GPU of its own: acceleratorType/acceleratorCount say what is attached.
        MachineType(_GCP, "n1-standard-8", "nvidia-tesla-t4", 1, network_gbps=16, vcpus=8, accelerators_built_in=False),
        MachineType(_GCP, "n1-standard-16", "nvidia-tesla-t4", 1, network_gbps=32, vcpus=16,
                    accelerators_built_in=False),
    )
}


@dataclass(frozen=True)
class ModelInfo:
    """Enough of a model's architecture to size it: weights and KV cache per token."""

    name: str
    parameters_billion: float
    layers: int
    kv_heads: int
    head_dim: int
    # Weights on disk, for download and load estimates (bf16 safetensors).
    download_gb: float

    def kv_cache_gb(self, tokens: int) -> float:
        """KV cache for `tokens` tokens in bf16: keys and values, every layer, every KV head."""
        return 2 * self.layers * self.kv_heads * self.head_dim * 2 * tokens / 1e9


DEFAULT_MODEL = "mistralai/Pixtral-12B-2409"
MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo(DEFAULT_MODEL, 12.4, layers=40, kv_heads=8, head_dim=128, download_gb=25.4),
    )
}


def model_download_gb(model: str) -> float:
    """Weights to download and load; a model outside the catalog is assumed to be Pixtral-12B's size."""
    return MODELS.get(model, MODELS[DEFAULT_MODEL]).download_gb


def machine_types_for(cloud: str) -> list[MachineType]:
    return [m for m in MACHINE_TYPES.values() if m.cloud == cloud]


def has_local_nvme(machine_type: str) -> bool:
    known = MACHINE_TYPES.get(machine_type)
    return known is not None and known.local_nvme_gb > 0


# Compute Engine zones that offer each GPU, per region, as Google's "GPU regions and zones" table lists them
# (https://cloud.google.com/compute/docs/gpus/gpu-regions-zones). Not exhaustive: a region missing here is not
# judged (the fleet then uses gcp:zone, or pixtral:zones as given). Check a zone with
# `gcloud compute accelerator-types list --filter="name=nvidia-l4"`.
GPU_ZONES: dict[str, dict[str, tuple[str, ...]]] = {
    "nvidia-l4": {
        "us-central1": ("us-central1-a", "us-central1-b", "us-central1-c"),
        "us-east1": ("us-east1-b", "us-east1-c", "us-east1-d"),
        "us-east4": ("us-east4-a", "us-east4-c"),
        "us-west1": ("us-west1-a", "us-west1-b", "us-west1-c"),
        "us-west4": ("us-west4-a", "us-west4-c"),
        "europe-west4": ("europe-west4-a", "europe-west4-b", "europe-west4-c"),
        "asia-southeast1": ("asia-southeast1-a", "asia-southeast1-b", "asia-southeast1-c"),
    },
    "nvidia-tesla-t4": {
        "us-central1": ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"),
        "us-east1": ("us-east1-c", "us-east1-d"),
        "europe-west4": ("europe-west4-a", "europe-west4-b", "europe-west4-c"),
    },
    "nvidia-tesla-a100": {
        "us-central1": ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"),
        "europe-west4": ("europe-west4-a", "europe-west4-b"),
    },
}


# AWS's commercial, GovCloud and China regions, from "AWS Region billing codes"
# (https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-region-billing-codes.html, read 2026-12-06).
# A region missing here is warned about, not refused: AWS opens new ones.
AWS_REGIONS: tuple[str, ...] = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "ca-west-1", "mx-central-1", "af-south-1",
    "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-south-2",
    "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6",
    "ap-southeast-7", "eu-central-1", "eu-central-2", "eu-west-1", "eu-west-2", "eu-west-3", "eu-south-1",
    "eu-south-2", "eu-north-1", "il-central-1", "me-south-1", "me-central-1", "sa-east-1", "us-gov-east-1",
    "us-gov-west-1", "cn-north-1", "cn-northwest-1",
)


def region_of(zone: str) -> str:
    """us-central1-a -> us-central1."""
    return zone.rsplit("-", 1)[0]


def gpu_zones(gpu: str, region: str) -> tuple[str, ...] | None:
    """The region's zones that offer `gpu`, or None when the catalog does not know the region for it."""
    return GPU_ZONES.get(gpu, {}).get(region)


# List prices in US dollars, as the clouds publish them, each with the page or file it was read from, the region it
# applies to and the day it was read. `pixtralctl render` turns them into an hourly estimate. A price the catalogue
# lacks, for an item or for a region, is said to be missing, never guessed or borrowed from another region.
# Spot: GCP publishes a Spot price per machine type and region (it may change once a day); AWS has no list price for
# spot (EC2 sets it from supply and demand, https://aws.amazon.com/ec2/spot/pricing/), and with no maximum price set,
# as this program sets none, an instance never costs more than the on-demand price, the ceiling the estimate shows
# (https://docs.aws.amazon.com/whitepapers/latest/cost-optimization-leveraging-ec2-spot-instances/how-spot-instances-work.html).
PRICES_READ_ON = "2026-12-06"
HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class ListPrice:
    usd: float
    # "hour", or a monthly unit ("GB-month", "IOPS-month", "MiB/s-month") spread over HOURS_PER_MONTH.
    unit: str
    # Where the price was read: a URL, with a word on what it covers.
    source: str
    # The region the price applies to, or "global" for a price that has none.
    region: str
    read_on: str = PRICES_READ_ON
    # The published Spot price in the same unit; None where spot has no list price.
    spot_usd: float | None = None


_EC2 = "https://aws.amazon.com/ec2/pricing/on-demand/ (Linux)"
_EBS = "https://aws.amazon.com/ebs/pricing/"
# gp3: the size, and the IOPS above 3,000 and throughput above 125 MiB/s a volume includes (the rates AWS's page
# gives, as docs/fleets.md quotes them; the throughput rate also as https://www.saisci.com/aws/gp3-throughput-explained/
# quotes AWS for N. Virginia).
_EBS_GP3_PERFORMANCE = "https://aws.amazon.com/ebs/pricing/ (gp3 IOPS above 3,000 and throughput above 125 MiB/s)"
# Every public IPv4 address, an instance's auto-assigned one as much as an Elastic IP or a load balancer's, since
# 2024-02-01 (https://aws.amazon.com/blogs/networking-and-content-delivery/identify-and-optimize-public-ipv4-address-usage-on-aws/).
_AWS_IPV4 = "https://aws.amazon.com/vpc/pricing/ (a public IPv4 address, in use or idle)"
_ELB = "https://aws.amazon.com/elasticloadbalancing/pricing/ (plus $0.008 per LCU-hour of traffic, not estimated)"
_EKS = "https://aws.amazon.com/eks/pricing/ (a cluster in standard support)"
# Google's own pages render their machine and disk tables with JavaScript; the machine and disk prices below are the
# Cloud Billing Catalog's SKU prices (vCPU + memory + GPU of each type), as pricing.yml of
# github.com/Cyclenerd/google-cloud-pricing-cost-calculator sums them (generated 2026-07-30, read 2026-12-06). They
# agree with the figures Google's pages state in prose: "a 200 GB SSD Persistent Disk volume would cost $34.00 for the
# whole month" (https://cloud.google.com/compute/disks-image-pricing, US) is $0.17 per GB-month.
_GCE = ("https://github.com/Cyclenerd/google-cloud-pricing-cost-calculator/blob/"
        "fd66b26ff84fee5cdd94f341ea89206e76c06b99/pricing.yml (Google Cloud Billing Catalog SKU prices, 2026-07-30)")
_GCP_LB = ("https://cloud.google.com/load-balancing/pricing (a global forwarding rule, one of the first 5; plus data "
           "processed, not estimated)")
_GKE = ("https://cloud.google.com/kubernetes-engine/pricing (cluster management fee; the free tier's monthly credit "
        "covers one zonal cluster per billing account)")

# On-demand and Spot USD per hour of the GCP machine types, per region (the regions GPU_ZONES knows for the L4). The
# G2, A2 and A3 prices include their GPUs; N1 prices do not include the GPUs attached to them.
_GCE_MACHINE_HOURLY: dict[str, dict[str, tuple[float, float]]] = {
    "g2-standard-4": {
        "us-central1": (0.7068, 0.3973), "us-east1": (0.7068, 0.3973), "us-east4": (0.7045, 0.3106),
        "us-west1": (0.7068, 0.3973), "us-west4": (0.7961, 0.4624), "europe-west4": (0.7429, 0.3899),
        "asia-southeast1": (0.872, 0.5233),
    },
    "g2-standard-8": {
        "us-central1": (0.8536, 0.4799), "us-east1": (0.8536, 0.4799), "us-east4": (0.8508, 0.3751),
        "us-west1": (0.8536, 0.4799), "us-west4": (0.9614, 0.5585), "europe-west4": (0.8972, 0.4708),
        "asia-southeast1": (1.0531, 0.6319),
    },
    "g2-standard-12": {
        "us-central1": (1.0004, 0.5624), "us-east1": (1.0004, 0.5624), "us-east4": (0.9971, 0.4396),
        "us-west1": (1.0004, 0.5624), "us-west4": (1.1268, 0.6545), "europe-west4": (1.0515, 0.5518),
        "asia-southeast1": (1.2342, 0.7406),
    },
    "g2-standard-16": {
        "us-central1": (1.1472, 0.6449), "us-east1": (1.1472, 0.6449), "us-east4": (1.1435, 0.5041),
        "us-west1": (1.1472, 0.6449), "us-west4": (1.2921, 0.7506), "europe-west4": (1.2058, 0.6327),
        "asia-southeast1": (1.4153, 0.8493),
    },
    "g2-standard-24": {
        "us-central1": (2.0008, 1.1248), "us-east1": (2.0008, 1.1248), "us-east4": (1.9943, 0.8792),
        "us-west1": (2.0008, 1.1248), "us-west4": (2.2535, 1.309), "europe-west4": (2.103, 1.1036),
        "asia-southeast1": (2.4684, 1.4812),
    },
    "g2-standard-32": {
        "us-central1": (1.7344, 0.9751), "us-east1": (1.7344, 0.9751), "us-east4": (1.7287, 0.7621),
        "us-west1": (1.7344, 0.9751), "us-west4": (1.9534, 1.1347), "europe-west4": (1.8229, 0.9566),
        "asia-southeast1": (2.1397, 1.284),
    },
    "g2-standard-48": {
        "us-central1": (4.0017, 2.2496), "us-east1": (4.0017, 2.2496), "us-east4": (3.9886, 1.7584),
        "us-west1": (4.0017, 2.2496), "us-west4": (4.5071, 2.6181), "europe-west4": (4.206, 2.2071),
        "asia-southeast1": (4.9369, 2.9625),
    },
    "g2-standard-96": {
        "us-central1": (8.0033, 4.4993), "us-east1": (8.0033, 4.4993), "us-east4": (7.9771, 3.5167),
        "us-west1": (8.0033, 4.4993), "us-west4": (9.0142, 5.2362), "europe-west4": (8.4119, 4.4142),
        "asia-southeast1": (9.8737, 5.9249),
    },
    "a2-highgpu-1g": {
        "us-central1": (3.6734, 1.928), "us-east1": (3.6734, 1.928), "us-east4": (3.9344, 2.3606),
        "us-west1": (3.6734, 1.928), "us-west4": (3.9344, 1.8168), "europe-west4": (3.748, 1.6928),
        "asia-southeast1": (4.0138, 2.4083),
    },
    "a2-highgpu-2g": {
        "us-central1": (7.3468, 3.856), "us-east1": (7.3468, 3.856), "us-east4": (7.8687, 4.7211),
        "us-west1": (7.3468, 3.856), "us-west4": (7.8687, 3.6337), "europe-west4": (7.4959, 3.3857),
        "asia-southeast1": (8.0275, 4.8165),
    },
    "a2-ultragpu-1g": {
        "us-central1": (5.0688, 2.7595), "us-east1": (5.0688, 2.7595), "us-east4": (5.7077, 2.3673),
        "us-west1": (5.0688, 2.7595), "us-west4": (5.7077, 1.1836), "europe-west4": (5.5809, 2.9452),
        "asia-southeast1": (6.2477, 3.2487),
    },
    "a3-highgpu-8g": {
        "us-central1": (88.49, 50.6095), "us-east1": (88.49, 50.6095), "us-east4": (88.5558, 36.3208),
        "us-west1": (88.49, 50.6095), "us-west4": (99.649, 37.2756), "europe-west4": (112.5405, 44.1188),
        "asia-southeast1": (114.2783, 51.2187),
    },
    "n1-standard-8": {
        "us-central1": (0.38, 0.134), "us-east1": (0.38, 0.134), "us-east4": (0.428, 0.1095), "us-west1": (0.38, 0.134),
        "us-west4": (0.428, 0.1215), "europe-west4": (0.4183, 0.2431), "asia-southeast1": (0.4688, 0.0939),
    },
    "n1-standard-16": {
        "us-central1": (0.76, 0.268), "us-east1": (0.76, 0.268), "us-east4": (0.8559, 0.219), "us-west1": (0.76, 0.268),
        "us-west4": (0.8559, 0.2431), "europe-west4": (0.8367, 0.4861), "asia-southeast1": (0.9375, 0.1878),
    },
    "e2-standard-4": {
        "us-central1": (0.134, 0.0804), "us-east1": (0.134, 0.0804), "us-east4": (0.1509, 0.0828),
        "us-west1": (0.134, 0.0804), "us-west4": (0.1509, 0.0182), "europe-west4": (0.1475, 0.0705),
        "asia-southeast1": (0.1653, 0.0863),
    },
}
# USD per GB-month of Persistent Disk, per region.
_GCE_DISK_MONTHLY: dict[str, dict[str, float]] = {
    "pd-ssd": {"us-central1": 0.17, "us-east1": 0.17, "us-east4": 0.187, "us-west1": 0.17, "us-west4": 0.187,
               "europe-west4": 0.187, "asia-southeast1": 0.187},
    "pd-balanced": {"us-central1": 0.1, "us-east1": 0.1, "us-east4": 0.11, "us-west1": 0.1, "us-west4": 0.11,
                    "europe-west4": 0.11, "asia-southeast1": 0.11},
}
_GCP_REGIONS = tuple(_GCE_DISK_MONTHLY["pd-ssd"])

LIST_PRICES: dict[tuple[str, str], ListPrice] = {
    **{(f"aws:{kind}", "us-east-1"): ListPrice(usd, "hour", _EC2, "us-east-1") for kind, usd in (
        ("g6e.xlarge", 1.861), ("g6e.12xlarge", 10.493), ("g6.xlarge", 0.8048), ("g5.xlarge", 1.006),
        ("g5.2xlarge", 1.212), ("g5.12xlarge", 5.672), ("p4d.24xlarge", 32.77), ("t3.large", 0.0832))},
    ("aws:gp3", "us-east-1"): ListPrice(0.08, "GB-month", _EBS, "us-east-1"),
    ("aws:gp3-iops", "us-east-1"): ListPrice(0.005, "IOPS-month", _EBS_GP3_PERFORMANCE, "us-east-1"),
    ("aws:gp3-throughput", "us-east-1"): ListPrice(0.04, "MiB/s-month", _EBS_GP3_PERFORMANCE, "us-east-1"),
    ("aws:public-ipv4", "us-east-1"): ListPrice(0.005, "hour", _AWS_IPV4, "us-east-1"),
    ("aws:alb", "us-east-1"): ListPrice(0.0225, "hour", _ELB, "us-east-1"),
    ("aws:eks", "global"): ListPrice(0.10, "hour", _EKS, "global"),
    **{(f"gcp:{kind}", region): ListPrice(usd, "hour", _GCE, region, spot_usd=spot)
       for kind, regions in _GCE_MACHINE_HOURLY.items() for region, (usd, spot) in regions.items()},
    **{(f"gcp:{disk}", region): ListPrice(usd, "GB-month", _GCE, region)
       for disk, regions in _GCE_DISK_MONTHLY.items() for region, usd in regions.items()},
    **{("gcp:static-ipv4", region): ListPrice(0.005, "hour", _GCE, region) for region in _GCP_REGIONS},
    ("gcp:global-forwarding-rule", "global"): ListPrice(0.025, "hour", _GCP_LB, "global"),
    ("gcp:gke", "global"): ListPrice(0.10, "hour", _GKE, "global"),
}


def list_price(item: str, region: str) -> ListPrice | None:
    """The catalogue's price of `item` ("gcp:g2-standard-24") in `region`, or its one global price; None when the
    catalogue has neither (then the estimate says so instead of using another region's price)."""
    return LIST_PRICES.get((item, region)) or LIST_PRICES.get((item, "global"))
