"""One Compute Engine GPU VM serving Pixtral: firewall, identity, the API key in Secret Manager, and the VM."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from pixtral_deploy.catalog import has_local_nvme
from pixtral_deploy.cloudinit import SecretStore, StoredSecret, render_cloud_init
from pixtral_deploy.config import stored_secret
from pixtral_deploy.spec import Deployment

# Deep Learning VM images with the NVIDIA driver installed, so the first boot does not build a kernel module.
DLVM_PROJECT = "deeplearning-platform-release"
DLVM_FAMILY = "common-cu128-ubuntu-2204-nvidia-570"
# pd-ssd reads at up to 1,200 MB/s on large VMs; pd-balanced's 240 MB/s would make loading 25 GB take minutes.
BOOT_DISK_TYPE = "pd-ssd"
# GCP: a service account id is 6-30 characters, unique per project; a cut one ends in "-" and this many hex digits.
SERVICE_ACCOUNT_ID_MAX = 30
SERVICE_ACCOUNT_DIGEST_CHARS = 6


@dataclass
class GcpGpuVmArgs:
    deployment: Deployment
    project: str
    zone: str
    api_key: pulumi.Input[str]
    hf_token: pulumi.Input[str] | None = None
    network: str = "default"


class GcpGpuVm(pulumi.ComponentResource):
    """A GPU VM that installs and runs vLLM at boot; `endpoint` is its static public URL."""

    endpoint: pulumi.Output[str]
    instance_name: pulumi.Output[str]
    public_ip: pulumi.Output[str]
    user_data: pulumi.Output[str]

    def __init__(self, name: str, args: GcpGpuVmArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pixtral:gcp:GpuVm", name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        deployment = args.deployment
        settings = deployment.gcp
        region = args.zone.rsplit("-", 1)[0]
        tag = f"pixtral-{_slug(pulumi.get_stack())}-{_slug(name)}"[:63]

        api = gcp.projects.Service(
            f"{name}-secretmanager-api", service="secretmanager.googleapis.com", project=args.project,
            # Other workloads in the project may use Secret Manager: never turn it off on destroy.
            disable_on_destroy=False, opts=self._child,
        )
        account = gcp.serviceaccount.Account(
            f"{name}-sa", account_id=service_account_id(pulumi.get_stack(), name), project=args.project,
            display_name=f"Pixtral VM {name} ({pulumi.get_stack()})", opts=self._child,
        )
        api_key_secret = self._secret("api-key", args.api_key, args.project, account, api)
        hf_secret = self._secret("hf-token", args.hf_token, args.project, account, api) if args.hf_token else None
        self._firewalls(deployment, tag, args.network, args.project)
        address = gcp.compute.Address(f"{name}-address", region=region, project=args.project, opts=self._child)

        store_settings = {"PIXTRAL_GCP_PROJECT": args.project}
        self.user_data = pulumi.Output.all(api_key_secret, hf_secret).apply(
            lambda stored: render_cloud_init(
                deployment.server, SecretStore("gcp-secret-manager", stored[0], stored[1], store_settings),
                local_nvme=has_local_nvme(settings.machine_type),
            )
        )
        instance = gcp.compute.Instance(
            name,
            project=args.project,
            zone=args.zone,
            machine_type=settings.machine_type,
            boot_disk=gcp.compute.InstanceBootDiskArgs(
                initialize_params=gcp.compute.InstanceBootDiskInitializeParamsArgs(
                    image=settings.image or self._dlvm_image(),
                    size=deployment.disk_size_gb,
                    type=BOOT_DISK_TYPE,
                ),
            ),
            guest_accelerators=[gcp.compute.InstanceGuestAcceleratorArgs(
                type=settings.accelerator_type, count=settings.accelerator_count
            )],
            scheduling=self._scheduling(deployment.spot),
            network_interfaces=[gcp.compute.InstanceNetworkInterfaceArgs(
                network=args.network,
                access_configs=[gcp.compute.InstanceNetworkInterfaceAccessConfigArgs(nat_ip=address.address)],
            )],
            service_account=gcp.compute.InstanceServiceAccountArgs(email=account.email, scopes=["cloud-platform"]),
            metadata={
                "user-data": self.user_data,
                # OS Login: SSH (through IAP, if the user opens it) is governed by IAM, not by keys in metadata.
                "enable-oslogin": "TRUE",
                "install-nvidia-driver": "True",
            },
            tags=[tag],
            allow_stopping_for_update=True,
            labels={"app": "pixtral", "stack": _slug(pulumi.get_stack())},
            # GCP updates metadata in place, but cloud-init reads user-data once per instance: without a
            # replacement a changed server description or a rotated key would never reach the running VM. The old
            # VM goes first because the new one takes over its static address.
            # A looked-up image is fixed when the VM is made (a newer DLVM image in the family must not replace a
            # serving VM on an unrelated `pulumi up`); setting pixtral:image moves it on purpose.
            opts=pulumi.ResourceOptions.merge(self._child, pulumi.ResourceOptions(
                replace_on_changes=["metadata"], delete_before_replace=True,
                ignore_changes=[] if settings.image else ["bootDisk.initializeParams.image"])),
        )
        self.instance_name = instance.name
        self.public_ip = address.address
        self.endpoint = pulumi.Output.concat("http://", address.address, f":{deployment.server.port}")
        self.register_outputs({"endpoint": self.endpoint, "instance_name": self.instance_name,
                               "public_ip": self.public_ip})

    def _secret(self, what: str, value: pulumi.Input[str], project: str, account: gcp.serviceaccount.Account,
                api: gcp.projects.Service) -> pulumi.Output[StoredSecret]:
        secret = gcp.secretmanager.Secret(
            f"{self._name}-{what}",
            secret_id=f"pixtral-{_slug(pulumi.get_stack())}-{_slug(self._name)}-{what}",
            project=project,
            replication=gcp.secretmanager.SecretReplicationArgs(auto=gcp.secretmanager.SecretReplicationAutoArgs()),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[api]),
        )
        # A new value replaces the version resource: Secret Manager numbers the new one, the VM reads exactly it.
        version = gcp.secretmanager.SecretVersion(
            f"{self._name}-{what}-version", secret=secret.id, secret_data=pulumi.Output.secret(value),
            opts=self._child,
        )
        # The VM's identity may read exactly its own secrets, nothing else in the project.
        gcp.secretmanager.SecretIamMember(
            f"{self._name}-{what}-reader", project=project, secret_id=secret.secret_id,
            role="roles/secretmanager.secretAccessor",
            member=account.email.apply(lambda email: f"serviceAccount:{email}"),
            opts=self._child,
        )
        return stored_secret(secret.secret_id, version.version)

    def _firewalls(self, deployment: Deployment, tag: str, network: str, project: str) -> None:
        # One rule per IP family: a GCP firewall rule cannot mix IPv4 and IPv6 source ranges.
        for version in (4, 6):
            ranges = [c for c in deployment.allowed_cidrs if ipaddress.ip_network(c).version == version]
            if ranges:
                gcp.compute.Firewall(
                    f"{self._name}-api-ipv{version}",
                    network=network,
                    project=project,
                    direction="INGRESS",
                    allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(deployment.server.port)])],
                    source_ranges=ranges,
                    target_tags=[tag],
                    description="Pixtral OpenAI-compatible API",
                    opts=self._child,
                )

    def _dlvm_image(self) -> pulumi.Output[str]:
        return gcp.compute.get_image_output(
            family=DLVM_FAMILY, project=DLVM_PROJECT, opts=pulumi.InvokeOptions(parent=self)
        ).self_link

    @staticmethod
    def _scheduling(spot: bool) -> gcp.compute.InstanceSchedulingArgs:
        # GPU VMs cannot live-migrate: Compute Engine requires TERMINATE on host maintenance.
        if spot:
            return gcp.compute.InstanceSchedulingArgs(
                on_host_maintenance="TERMINATE", automatic_restart=False, preemptible=True,
                provisioning_model="SPOT", instance_termination_action="STOP",
            )
        return gcp.compute.InstanceSchedulingArgs(on_host_maintenance="TERMINATE", automatic_restart=True)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", text.lower()).strip("-")


def service_account_id(stack: str, name: str) -> str:
    """A service account id of its own per stack: ids are unique per project, and teams run several stacks (dev,
    prod) in one project. GCP allows 6-30 characters, a letter first, no dash last; a long stack name is cut and
    a digest of the whole keeps two such stacks apart."""
    full = f"pixtral-{_slug(stack)}" + ("" if name == "pixtral" else f"-{_slug(name)}")
    if len(full) <= SERVICE_ACCOUNT_ID_MAX:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:SERVICE_ACCOUNT_DIGEST_CHARS]
    return f"{full[:SERVICE_ACCOUNT_ID_MAX - SERVICE_ACCOUNT_DIGEST_CHARS - 1].rstrip('-')}-{digest}"
