"""One Compute Engine GPU VM serving Pixtral: firewall, identity, the API key and TLS key in Secret Manager, its
address (and DNS name), and the VM."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from components.boot_image import looked_up_image_options
from components.gcp_shared import (
    GcpServerArgs,
    api_firewalls,
    artefact_rights,
    boot_disk,
    dns_record,
    gpu_scheduling,
    guest_accelerator,
    local_ssds,
    network_tag,
    replica_user_data,
    shielded_vm,
    stack_labels,
    stack_network,
    vm_identity,
    vm_metadata,
)
from pixtral_deploy.storage import GCP_LOCAL_SSD_GB

GcpGpuVmArgs = GcpServerArgs


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
        spec = args.spec
        machines = spec.gcp
        region = args.zone.rsplit("-", 1)[0]
        tag = network_tag(name)

        tls = spec.tls
        address = gcp.compute.Address(f"{name}-address", region=region, project=args.project, opts=self._child)
        certificate = args.ca.issue(name, ip_addresses=[address.address], dns_names=[tls.domain] if tls.domain
                                    else [], parent=self) if args.ca else None
        identity = vm_identity(name, args.project, args.api_key, args.hf_token, parent=self,
                               tls_key=certificate.private_key_pem if certificate else None)
        network = stack_network(name, args.project, region, machines.network, machines.subnetwork, parent=self)
        api_firewalls(f"{name}-api", spec.allowed_cidrs, spec.server.port, network.network, args.project,
                      tag, parent=self)

        self.user_data = replica_user_data(spec, identity,
                                           tls=args.ca.tls_files(certificate) if certificate else None,
                                           artefacts=args.artefacts)
        # The boot reads the store at once: its rights must exist before the VM does.
        store_ready = artefact_rights(name, args.artefacts, identity, parent=self)
        disk = boot_disk(spec, parent=self)
        instance = gcp.compute.Instance(
            name,
            project=args.project,
            zone=args.zone,
            machine_type=machines.machine_type,
            boot_disk=gcp.compute.InstanceBootDiskArgs(
                initialize_params=gcp.compute.InstanceBootDiskInitializeParamsArgs(
                    image=disk.image, size=disk.size_gb, type=disk.type),
            ),
            # The model cache's scratch disks (userdata/prepare-storage.sh mounts them): blank after a stop, so a
            # stopped VM fetches again, which is what the artefact store is for.
            scratch_disks=[gcp.compute.InstanceScratchDiskArgs(interface="NVME", size=GCP_LOCAL_SSD_GB)
                           for _ in range(local_ssds(spec))],
            guest_accelerators=[gcp.compute.InstanceGuestAcceleratorArgs(**guest_accelerator(spec))],
            scheduling=gcp.compute.InstanceSchedulingArgs(**gpu_scheduling(spec.spot)),
            shielded_instance_config=gcp.compute.InstanceShieldedInstanceConfigArgs(**shielded_vm()),
            network_interfaces=[gcp.compute.InstanceNetworkInterfaceArgs(
                network=network.network,
                subnetwork=network.subnetwork,
                access_configs=[gcp.compute.InstanceNetworkInterfaceAccessConfigArgs(nat_ip=address.address)],
            )],
            service_account=gcp.compute.InstanceServiceAccountArgs(email=identity.service_account.email,
                                                                   scopes=["cloud-platform"]),
            metadata=vm_metadata(self.user_data),
            tags=[tag],
            allow_stopping_for_update=True,
            labels=stack_labels(),
            # GCP updates metadata in place, but cloud-init reads user-data once per instance: without a
            # replacement a changed server description or a rotated key would never reach the running VM. The old
            # VM goes first because the new one takes over its static address.
            opts=pulumi.ResourceOptions.merge(self._child, pulumi.ResourceOptions.merge(
                pulumi.ResourceOptions(replace_on_changes=["metadata"], delete_before_replace=True,
                                       depends_on=store_ready),
                looked_up_image_options(machines.image, "bootDisk.initializeParams.image"))),
        )
        if tls.domain:
            dns_record(name, args.project, tls.dns_zone, tls.domain, address.address, parent=self)
        self.instance_name = instance.name
        self.public_ip = address.address
        self.endpoint = pulumi.Output.from_input(tls.domain or address.address).apply(spec.endpoint_url)
        self.register_outputs({"endpoint": self.endpoint, "instance_name": self.instance_name,
                               "public_ip": self.public_ip})
