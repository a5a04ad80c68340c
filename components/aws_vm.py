"""One EC2 GPU instance serving Pixtral: network access, identity, the API key and TLS key in SSM, its address
(and DNS name), and the VM itself."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.aws_shared import (
    AwsServerArgs,
    api_ingress_from_cidrs,
    artefact_rights,
    default_vpc_subnets_offering,
    dns_record,
    metadata_options,
    newest_dlami,
    replica_security_group,
    replica_user_data,
    root_volume,
    vm_identity,
)
from components.boot_image import looked_up_image_options
from pixtral_deploy.catalog import has_local_nvme
from pixtral_deploy.cloudinit import compress_user_data
from pixtral_deploy.spec import StackSpec

AwsGpuVmArgs = AwsServerArgs


class AwsGpuVm(pulumi.ComponentResource):
    """A GPU instance that installs and runs vLLM at boot; `endpoint` is its stable public URL."""

    endpoint: pulumi.Output[str]
    instance_id: pulumi.Output[str]
    public_ip: pulumi.Output[str]
    user_data: pulumi.Output[str]

    def __init__(self, name: str, args: AwsGpuVmArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pixtral:aws:GpuVm", name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        spec = args.spec
        machines = spec.aws

        tls = spec.tls
        # An Elastic IP keeps `endpoint` valid across stop/start and spot interruptions. It is allocated before the
        # instance: the certificate the instance boots with names it.
        address = aws.ec2.Eip(f"{name}-address", domain="vpc", tags={"Name": f"pixtral-{name}"}, opts=self._child)
        certificate = args.ca.issue(name, ip_addresses=[address.public_ip], dns_names=[tls.domain] if tls.domain
                                    else [], parent=self) if args.ca else None
        identity = vm_identity(name, args.api_key, args.hf_token, parent=self,
                               tls_key=certificate.private_key_pem if certificate else None)
        subnet_id = machines.subnet_id or default_vpc_subnets_offering(
            [machines.instance_type], machines.vpc_id, parent=self).apply(lambda ids: ids[0])
        vpc_id = aws.ec2.get_subnet_output(id=subnet_id, opts=pulumi.InvokeOptions(parent=self)).vpc_id
        security_group = self._security_group(vpc_id, spec)

        self.user_data = replica_user_data(spec.server, identity, has_local_nvme(machines.instance_type),
                                           tls=args.ca.tls_files(certificate) if certificate else None,
                                           artefacts=args.artefacts)
        # The boot reads the store at once: its rights must exist before the instance does.
        store_ready = artefact_rights(name, args.artefacts, identity, parent=self)
        instance = aws.ec2.Instance(
            name,
            ami=machines.ami_id or newest_dlami(parent=self),
            instance_type=machines.instance_type,
            subnet_id=subnet_id,
            vpc_security_group_ids=[security_group.id],
            iam_instance_profile=identity.instance_profile.name,
            user_data_base64=self.user_data.apply(compress_user_data),
            # A changed server description (or a renewed certificate) must reach the VM: replace it rather than keep
            # stale cloud-init.
            user_data_replace_on_change=True,
            metadata_options=aws.ec2.InstanceMetadataOptionsArgs(**metadata_options()),
            root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(**root_volume(spec.disk_size_gb)),
            ebs_optimized=True,
            # 1-minute CloudWatch metrics (about $2 a month): a GPU VM that stalls shows it within minutes.
            monitoring=True,
            instance_market_options=self._spot_options() if spec.spot else None,
            tags={"Name": f"pixtral-{name}", "pixtral:model": spec.server.model},
            opts=pulumi.ResourceOptions.merge(
                pulumi.ResourceOptions(parent=self, depends_on=store_ready),
                looked_up_image_options(machines.ami_id, "ami")),
        )
        aws.ec2.EipAssociation(f"{name}-address-association", allocation_id=address.allocation_id,
                               instance_id=instance.id, opts=self._child)
        if tls.domain:
            dns_record(name, tls.dns_zone, tls.domain, address.public_ip, parent=self)

        self.instance_id = instance.id
        self.public_ip = address.public_ip
        host = tls.domain or address.public_ip
        self.endpoint = pulumi.Output.from_input(host).apply(spec.endpoint_url)
        self.register_outputs({"endpoint": self.endpoint, "instance_id": self.instance_id,
                               "public_ip": self.public_ip})

    def _security_group(self, vpc_id: pulumi.Input[str], spec: StackSpec) -> aws.ec2.SecurityGroup:
        group = replica_security_group(f"{self._name}-api", vpc_id, f"Pixtral API on port {spec.server.port}",
                                       self._name, self)
        api_ingress_from_cidrs(f"{self._name}-api", group, spec.allowed_cidrs, spec.server.port, self)
        return group

    @staticmethod
    def _spot_options() -> aws.ec2.InstanceInstanceMarketOptionsArgs:
        # Persistent + stop: an interrupted VM comes back with its disk, so vLLM and the weights are still there.
        return aws.ec2.InstanceInstanceMarketOptionsArgs(
            market_type="spot",
            spot_options=aws.ec2.InstanceInstanceMarketOptionsSpotOptionsArgs(
                instance_interruption_behavior="stop", spot_instance_type="persistent"
            ),
        )
