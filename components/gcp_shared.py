"""Pieces every GCP shape of the server declares the same way: the single VM, the fleet and the GKE cluster.

Each function declares its resources as children of the calling component (`parent`), so moving a piece here
changes no resource's URN.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi
import pulumi_gcp as gcp

from components.stack_ca import StackCa
from pixtral_deploy.catalog import MACHINE_TYPES, has_local_nvme
from pixtral_deploy.cloudinit import SecretStore, StoredSecret, TlsFiles, render_cloud_init
from pixtral_deploy.config import stored_secret
from pixtral_deploy.network import by_ip_family
from pixtral_deploy.spec import StackSpec
from pixtral_deploy.storage import GCP_BOOT_DISK_TYPE

if TYPE_CHECKING:
    # The store's module labels its bucket with stack_labels from here.
    from components.gcp_artefact_store import GcpArtefactStore

# Deep Learning VM images with the NVIDIA driver installed, so the first boot does not build a kernel module.
DLVM_PROJECT = "deeplearning-platform-release"
DLVM_FAMILY = "common-cu128-ubuntu-2204-nvidia-570"
# GCP: a service account id is 6-30 characters, unique per project; a cut one ends in "-" and this many hex digits.
SERVICE_ACCOUNT_ID_MAX = 30
SERVICE_ACCOUNT_DIGEST_CHARS = 6


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", text.lower()).strip("-")


def network_tag(name: str) -> str:
    """The network tag that ties this stack's firewall rules to its VMs."""
    return f"pixtral-{slug(pulumi.get_stack())}-{slug(name)}"[:63]


def service_account_id(stack: str, name: str) -> str:
    """A service account id of its own per stack: ids are unique per project, and teams run several stacks (dev,
    prod) in one project. GCP allows 6-30 characters, a letter first, no dash last; a long stack name is cut and
    a digest of the whole keeps two such stacks apart."""
    full = f"pixtral-{slug(stack)}" + ("" if name == "pixtral" else f"-{slug(name)}")
    if len(full) <= SERVICE_ACCOUNT_ID_MAX:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:SERVICE_ACCOUNT_DIGEST_CHARS]
    return f"{full[:SERVICE_ACCOUNT_ID_MAX - SERVICE_ACCOUNT_DIGEST_CHARS - 1].rstrip('-')}-{digest}"


@dataclass
class GcpServerArgs:
    """What every GCP shape of the server is made from: the single VM and the fleet take the same arguments (the
    stack CA signs the endpoint's certificate; None with pixtral:tls false, or where a public certificate serves;
    the stack's artefact store, None with pixtral:warmStarts false)."""

    spec: StackSpec
    project: str
    zone: str
    api_key: pulumi.Input[str]
    hf_token: pulumi.Input[str] | None = None
    ca: StackCa | None = None
    artefacts: GcpArtefactStore | None = None


@dataclass
class VmIdentity:
    """What a replica needs to read its secrets: the service account, and where the secrets are for cloud-init."""

    service_account: gcp.serviceaccount.Account
    secret_store: pulumi.Output[SecretStore]


def vm_identity(name: str, project: str, api_key: pulumi.Input[str], hf_token: pulumi.Input[str] | None,
                parent: pulumi.Resource, tls_key: pulumi.Input[str] | None = None) -> VmIdentity:
    """A service account of the stack's own, and the secrets in Secret Manager (the API key, the HF token, the TLS
    private key) that exactly it may read."""
    child = pulumi.ResourceOptions(parent=parent)
    api = gcp.projects.Service(
        f"{name}-secretmanager-api", service="secretmanager.googleapis.com", project=project,
        # Other workloads in the project may use Secret Manager: never turn it off on destroy.
        disable_on_destroy=False, opts=child,
    )
    account = gcp.serviceaccount.Account(
        f"{name}-sa", account_id=service_account_id(pulumi.get_stack(), name), project=project,
        display_name=f"Pixtral VM {name} ({pulumi.get_stack()})", opts=child,
    )
    api_key_secret = _secret(name, "api-key", api_key, project, account, api, parent)
    hf_secret = _secret(name, "hf-token", hf_token, project, account, api, parent) if hf_token else None
    tls_secret = _secret(name, "tls-key", tls_key, project, account, api, parent) if tls_key is not None else None
    store = pulumi.Output.all(api_key_secret, hf_secret, tls_secret).apply(
        lambda stored: _secret_manager_store(project, *stored))
    return VmIdentity(account, store)


def _secret_manager_store(project: str, api_key: StoredSecret, hf_token: StoredSecret | None,
                          tls_key: StoredSecret | None) -> SecretStore:
    return SecretStore("gcp-secret-manager", api_key, hf_token, {"PIXTRAL_GCP_PROJECT": project}, tls_key)


def _secret(name: str, what: str, value: pulumi.Input[str], project: str, account: gcp.serviceaccount.Account,
            api: gcp.projects.Service, parent: pulumi.Resource) -> pulumi.Output[StoredSecret]:
    child = pulumi.ResourceOptions(parent=parent)
    secret = gcp.secretmanager.Secret(
        f"{name}-{what}",
        secret_id=f"pixtral-{slug(pulumi.get_stack())}-{slug(name)}-{what}",
        project=project,
        replication=gcp.secretmanager.SecretReplicationArgs(auto=gcp.secretmanager.SecretReplicationAutoArgs()),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[api]),
    )
    # A new value replaces the version resource: Secret Manager numbers the new one, the VM reads exactly it.
    version = gcp.secretmanager.SecretVersion(
        f"{name}-{what}-version", secret=secret.id, secret_data=pulumi.Output.secret(value), opts=child,
    )
    # The VM's identity may read exactly its own secrets, nothing else in the project.
    gcp.secretmanager.SecretIamMember(
        f"{name}-{what}-reader", project=project, secret_id=secret.secret_id,
        role="roles/secretmanager.secretAccessor",
        member=account.email.apply(lambda email: f"serviceAccount:{email}"),
        opts=child,
    )
    return stored_secret(secret.secret_id, version.version)


def api_firewalls(name: str, source_ranges: tuple[str, ...], port: int, network: pulumi.Input[str], project: str,
                  target_tag: str, parent: pulumi.Resource) -> None:
    """Ingress on the API port from `source_ranges` to the tagged VMs: one rule per IP family, since a GCP firewall
    rule cannot mix IPv4 and IPv6 source ranges."""
    for version, ranges in by_ip_family(source_ranges).items():
        if ranges:
            gcp.compute.Firewall(
                f"{name}-ipv{version}",
                network=network,
                project=project,
                direction="INGRESS",
                allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(port)])],
                source_ranges=ranges,
                target_tags=[target_tag],
                description="Pixtral OpenAI-compatible API",
                opts=pulumi.ResourceOptions(parent=parent),
            )


def dns_record(name: str, project: str, zone: str, domain: str, address: pulumi.Input[str],
               parent: pulumi.Resource, ttl: int = 300) -> None:
    """pixtral:domain in the user's Cloud DNS managed zone, pointing at the endpoint's address."""
    gcp.dns.RecordSet(f"{name}-dns", project=project, managed_zone=zone, name=f"{domain}.", type="A", ttl=ttl,
                      rrdatas=[address], opts=pulumi.ResourceOptions(parent=parent))


def dlvm_image(parent: pulumi.Resource) -> pulumi.Output[str]:
    """The newest Deep Learning VM image of the family; callers fix it at creation (components.boot_image)."""
    return gcp.compute.get_image_output(
        family=DLVM_FAMILY, project=DLVM_PROJECT, opts=pulumi.InvokeOptions(parent=parent)
    ).self_link


# The stack's own subnet: a /20 holds 4,000 replicas; the range only has to avoid networks the user peers with.
SUBNET_RANGE = "10.64.0.0/20"
# Metadata every VM shape carries: OS Login governs SSH (through IAP, if the user opens it) with IAM, and the
# project's SSH keys, which any project member may add, reach no Pixtral VM.
LOGIN_METADATA = {"enable-oslogin": "TRUE", "block-project-ssh-keys": "TRUE"}


@dataclass
class StackNetwork:
    network: pulumi.Input[str]
    subnetwork: pulumi.Input[str] | None


def stack_network(name: str, project: str, region: str, network: str | None, subnetwork: str | None,
                  parent: pulumi.Resource) -> StackNetwork:
    """The network the VMs live in: the user's (pixtral:network / subnetwork), else a VPC of the stack's own.
    Never the project's `default` network, whose usual default-allow-ssh / -rdp rules would expose the VMs: in the
    stack's VPC only the program's rules exist (egress is open, as in every VPC, for PyPI and Hugging Face)."""
    if network:
        return StackNetwork(network, subnetwork)
    child = pulumi.ResourceOptions(parent=parent)
    vpc = gcp.compute.Network(f"{name}-network", project=project, auto_create_subnetworks=False,
                              description=f"Pixtral ({pulumi.get_stack()})", opts=child)
    subnet = gcp.compute.Subnetwork(
        f"{name}-subnet", project=project, region=region, network=vpc.id, ip_cidr_range=SUBNET_RANGE,
        # Google APIs (Secret Manager, Cloud Monitoring) stay reachable for VMs without a public address.
        private_ip_google_access=True,
        # Flow logs at a tenth of the flows, aggregated over 10 minutes: an audit trail at a few cents a day.
        log_config=gcp.compute.SubnetworkLogConfigArgs(aggregation_interval="INTERVAL_10_MIN", flow_sampling=0.1,
                                                       metadata="INCLUDE_ALL_METADATA"),
        opts=child)
    return StackNetwork(vpc.self_link, subnet.self_link)


def shielded_vm() -> dict:
    """Shielded VM with vTPM and integrity monitoring. Secure Boot stays off: the Deep Learning VM images load an
    NVIDIA kernel module that is not signed with a key Secure Boot trusts."""
    return {"enable_secure_boot": False, "enable_vtpm": True, "enable_integrity_monitoring": True}


def gpu_scheduling(spot: bool, on_preemption: str = "STOP") -> dict:
    """Scheduling of a GPU VM, as instance or instance-template fields. A single Spot VM stops when preempted and
    keeps its disk; a fleet's Spot replicas are deleted and the group recreates them where capacity returns."""
    # GPU VMs cannot live-migrate: Compute Engine requires TERMINATE on host maintenance.
    if spot:
        return {"on_host_maintenance": "TERMINATE", "automatic_restart": False, "preemptible": True,
                "provisioning_model": "SPOT", "instance_termination_action": on_preemption}
    return {"on_host_maintenance": "TERMINATE", "automatic_restart": True}


@dataclass(frozen=True)
class BootDisk:
    """The boot disk of every GPU replica: the image, the size the weights need and the disk type the cold-start
    plan reads them from."""

    image: pulumi.Input[str]
    size_gb: int
    type: str


def boot_disk(spec: StackSpec, parent: pulumi.Resource) -> BootDisk:
    return BootDisk(spec.gcp.image or dlvm_image(parent=parent), spec.disk_size_gb, GCP_BOOT_DISK_TYPE)


def local_ssds(spec: StackSpec) -> int:
    """How many Local SSDs every replica asks for, as NVMe scratch disks for the model cache: what each candidate
    type takes on request (catalog.MachineType.local_ssds_to_attach; G2 up to its table's maximum), the fewest of
    them so one template fits every candidate; 0 for a type outside the catalog."""
    return min(MACHINE_TYPES[name].local_ssds_to_attach if name in MACHINE_TYPES else 0
               for name in spec.runs_on.candidate_types(spec))


def guest_accelerator(spec: StackSpec) -> dict:
    """The attached GPUs, as instance or instance-template fields."""
    return {"type": spec.gcp.accelerator_type, "count": spec.gcp.accelerator_count}


def replica_user_data(spec: StackSpec, identity: VmIdentity, tls: pulumi.Input[TlsFiles] | None = None,
                      artefacts: GcpArtefactStore | None = None, **options) -> pulumi.Output[str]:
    """The cloud-init every replica boots with (`options` go to render_cloud_init): secrets named, never carried;
    with `tls`, the server's public certificates (its key is in the store); with `artefacts`, the store's URL."""
    return pulumi.Output.all(identity.secret_store, tls, artefacts.url if artefacts else None).apply(
        lambda values: render_cloud_init(spec.server, values[0], local_nvme=has_local_nvme(spec.gcp.machine_type),
                                         tls=values[1], artefacts=values[2], **options))


def artefact_rights(name: str, artefacts: GcpArtefactStore | None, identity: VmIdentity,
                    parent: pulumi.Resource) -> list[pulumi.Resource]:
    """The replicas' rights on the stack's artefact store; what they must wait for before booting (none without a
    store)."""
    return artefacts.grant(name, identity.service_account, parent) if artefacts else []


def vm_metadata(user_data: pulumi.Input[str]) -> dict:
    return {"user-data": user_data, **LOGIN_METADATA, "install-nvidia-driver": "True"}


def label_value(text: str) -> str:
    """A GCP label value: lowercase letters, digits, '-' and '_', at most 63 characters."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]


def stack_labels() -> dict[str, str]:
    """The labels every GCP resource of the stack carries (VMs, disks, clusters, node pools)."""
    return {"app": "pixtral", "stack": label_value(pulumi.get_stack())}
