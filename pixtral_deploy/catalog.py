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
    # Local NVMe / local SSD in GB; 0 when the type has none (weights then live on a network volume).
    local_nvme_gb: int = 0
    # GCP G2/A2/A3 carry their GPUs in the machine type; N1 needs them attached (acceleratorType/Count).
    accelerators_built_in: bool = True


_AWS = "aws"
_GCP = "gcp"

MACHINE_TYPES: dict[str, MachineType] = {
    m.name: m
    for m in (
        MachineType(_AWS, "g6e.xlarge", "nvidia-l40s", 1, network_gbps=20, local_nvme_gb=250),
        MachineType(_AWS, "g6e.2xlarge", "nvidia-l40s", 1, network_gbps=20, local_nvme_gb=450),
        MachineType(_AWS, "g6e.4xlarge", "nvidia-l40s", 1, network_gbps=20, local_nvme_gb=600),
        MachineType(_AWS, "g6e.12xlarge", "nvidia-l40s", 4, network_gbps=100, local_nvme_gb=3800),
        MachineType(_AWS, "g6.xlarge", "nvidia-l4", 1, network_gbps=10, local_nvme_gb=250),
        MachineType(_AWS, "g6.2xlarge", "nvidia-l4", 1, network_gbps=10, local_nvme_gb=450),
        MachineType(_AWS, "g6.12xlarge", "nvidia-l4", 4, network_gbps=40, local_nvme_gb=3760),
        MachineType(_AWS, "g5.xlarge", "nvidia-a10g", 1, network_gbps=10, local_nvme_gb=250),
        MachineType(_AWS, "g5.2xlarge", "nvidia-a10g", 1, network_gbps=10, local_nvme_gb=450),
        MachineType(_AWS, "g5.12xlarge", "nvidia-a10g", 4, network_gbps=40, local_nvme_gb=3800),
        MachineType(_AWS, "p4d.24xlarge", "nvidia-tesla-a100", 8, network_gbps=400, local_nvme_gb=8000),
        MachineType(_AWS, "p5.48xlarge", "nvidia-h100-80gb", 8, network_gbps=3200, local_nvme_gb=30720),
        MachineType(_GCP, "g2-standard-4", "nvidia-l4", 1, network_gbps=10),
        MachineType(_GCP, "g2-standard-8", "nvidia-l4", 1, network_gbps=16),
        MachineType(_GCP, "g2-standard-12", "nvidia-l4", 1, network_gbps=16),
        MachineType(_GCP, "g2-standard-16", "nvidia-l4", 1, network_gbps=32),
        MachineType(_GCP, "g2-standard-24", "nvidia-l4", 2, network_gbps=32),
        MachineType(_GCP, "g2-standard-32", "nvidia-l4", 1, network_gbps=32),
        MachineType(_GCP, "g2-standard-48", "nvidia-l4", 4, network_gbps=50),
        MachineType(_GCP, "g2-standard-96", "nvidia-l4", 8, network_gbps=100),
        MachineType(_GCP, "a2-highgpu-1g", "nvidia-tesla-a100", 1, network_gbps=24),
        MachineType(_GCP, "a2-highgpu-2g", "nvidia-tesla-a100", 2, network_gbps=32),
        MachineType(_GCP, "a2-ultragpu-1g", "nvidia-a100-80gb", 1, network_gbps=24, local_nvme_gb=375),
        MachineType(_GCP, "a3-highgpu-8g", "nvidia-h100-80gb", 8, network_gbps=1000, local_nvme_gb=6000),
        # N1 carries no GPU of its own: acceleratorType/acceleratorCount say what is attached.
        MachineType(_GCP, "n1-standard-8", "nvidia-tesla-t4", 1, network_gbps=16, accelerators_built_in=False),
        MachineType(_GCP, "n1-standard-16", "nvidia-tesla-t4", 1, network_gbps=32, accelerators_built_in=False),
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


# List prices in US dollars, on-demand, Linux, us-east-1 (AWS), as the clouds' pricing pages give them; the date says
# when they were read. `pixtralctl render` turns them into an hourly estimate. A price the catalogue lacks is said to
# be missing, never guessed: GCP's machine and disk prices and every spot price are not here (spot prices move: AWS
# sets them every few minutes, GCP up to once in 30 days).
PRICES_READ_ON = "2026-12-06"
PRICES_REGION = "us-east-1"


@dataclass(frozen=True)
class ListPrice:
    usd: float
    unit: str
    source: str


_EC2 = "AWS EC2 On-Demand pricing (aws.amazon.com/ec2/pricing/on-demand), as quoted in 2026 cost write-ups"
LIST_PRICES: dict[str, ListPrice] = {
    "aws:g6e.xlarge": ListPrice(1.861, "hour", _EC2),
    "aws:g6e.12xlarge": ListPrice(10.493, "hour", _EC2),
    "aws:g6.xlarge": ListPrice(0.8048, "hour", _EC2),
    "aws:g5.xlarge": ListPrice(1.006, "hour", _EC2),
    "aws:g5.2xlarge": ListPrice(1.212, "hour", _EC2),
    "aws:g5.12xlarge": ListPrice(5.672, "hour", _EC2),
    "aws:p4d.24xlarge": ListPrice(32.77, "hour", _EC2),
    "aws:t3.large": ListPrice(0.0832, "hour", _EC2),
    "aws:gp3": ListPrice(0.08, "GB-month", "Amazon EBS pricing (aws.amazon.com/ebs/pricing)"),
    "aws:public-ipv4": ListPrice(0.005, "hour",
                                 "Amazon VPC pricing, public IPv4 addresses (aws.amazon.com/vpc/pricing)"),
    "aws:alb": ListPrice(0.0225, "hour",
                         "Elastic Load Balancing pricing (aws.amazon.com/elasticloadbalancing/pricing), plus $0.008 "
                         "per LCU-hour of traffic, not estimated"),
    "aws:eks": ListPrice(0.10, "hour",
                         "Amazon EKS pricing, a cluster in standard support (aws.amazon.com/eks/pricing)"),
    "gcp:gke": ListPrice(0.10, "hour",
                         "GKE pricing, cluster management fee (cloud.google.com/kubernetes-engine/pricing); a monthly "
                         "credit covers one zonal cluster per billing account"),
}
HOURS_PER_MONTH = 730
