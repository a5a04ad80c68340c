"""One EC2 GPU instance serving Pixtral: network access, identity, the API key in SSM, and the VM itself."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.ssm_agent_policy import ssm_agent_policy
from pixtral_deploy.catalog import has_local_nvme
from pixtral_deploy.cloudinit import SecretStore, compress_user_data, render_cloud_init
from pixtral_deploy.coldstart import AWS_ROOT_IOPS, AWS_ROOT_THROUGHPUT_MIBS
from pixtral_deploy.config import stored_secret
from pixtral_deploy.spec import Deployment

# "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04) 20261103": NVIDIA driver, CUDA, Docker, AWS CLI.
DLAMI_NAME = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04) *"


@dataclass
class AwsGpuVmArgs:
    deployment: Deployment
    api_key: pulumi.Input[str]
    hf_token: pulumi.Input[str] | None = None


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
        deployment = args.deployment
        settings = deployment.aws
        region = aws.get_region_output(opts=pulumi.InvokeOptions(parent=self)).region

        api_key_param = self._secure_parameter("api-key", args.api_key)
        hf_token_param = self._secure_parameter("hf-token", args.hf_token) if args.hf_token is not None else None
        profile = self._instance_profile([p for p in (api_key_param, hf_token_param) if p is not None])
        subnet_id = self._subnet_id(settings.instance_type, settings.vpc_id, settings.subnet_id)
        vpc_id = aws.ec2.get_subnet_output(id=subnet_id, opts=pulumi.InvokeOptions(parent=self)).vpc_id
        security_group = self._security_group(vpc_id, deployment)

        self.user_data = pulumi.Output.all(
            region,
            stored_secret(api_key_param.name, api_key_param.version),
            stored_secret(hf_token_param.name, hf_token_param.version) if hf_token_param else None,
        ).apply(lambda values: render_cloud_init(
            deployment.server,
            SecretStore("aws-ssm", values[1], values[2], {"PIXTRAL_AWS_REGION": values[0]}),
            local_nvme=has_local_nvme(settings.instance_type),
        ))
        instance = aws.ec2.Instance(
            name,
            ami=settings.ami_id or self._newest_dlami(),
            instance_type=settings.instance_type,
            subnet_id=subnet_id,
            vpc_security_group_ids=[security_group.id],
            iam_instance_profile=profile.name,
            user_data_base64=self.user_data.apply(compress_user_data),
            # A changed server description must reach the VM: replace it rather than keep stale cloud-init.
            user_data_replace_on_change=True,
            metadata_options=aws.ec2.InstanceMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1
            ),
            root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                volume_size=deployment.disk_size_gb,
                volume_type="gp3",
                # gp3 above its 125 MiB/s default: the weights are written once and read on every cold start.
                throughput=AWS_ROOT_THROUGHPUT_MIBS,
                iops=AWS_ROOT_IOPS,
                encrypted=True,
                delete_on_termination=True,
            ),
            instance_market_options=self._spot_options() if deployment.spot else None,
            tags={"Name": f"pixtral-{name}", "pixtral:model": deployment.server.model},
            # A looked-up AMI is fixed when the VM is made: AWS publishes a new DLAMI every few weeks, and an
            # unrelated `pulumi up` must not replace a serving VM for it. Setting amiId moves it on purpose.
            opts=pulumi.ResourceOptions.merge(self._child, pulumi.ResourceOptions(
                ignore_changes=[] if settings.ami_id else ["ami"])),
        )
        # An Elastic IP keeps `endpoint` valid across stop/start and spot interruptions.
        address = aws.ec2.Eip(f"{name}-address", domain="vpc", instance=instance.id,
                              tags={"Name": f"pixtral-{name}"}, opts=self._child)

        self.instance_id = instance.id
        self.public_ip = address.public_ip
        self.endpoint = pulumi.Output.concat("http://", address.public_ip, f":{deployment.server.port}")
        self.register_outputs({"endpoint": self.endpoint, "instance_id": self.instance_id,
                               "public_ip": self.public_ip})

    def _secure_parameter(self, what: str, value: pulumi.Input[str]) -> aws.ssm.Parameter:
        return aws.ssm.Parameter(
            f"{self._name}-{what}",
            name=f"/pixtral/{pulumi.get_stack()}/{self._name}/{what}",
            type="SecureString",
            value=pulumi.Output.secret(value),
            opts=self._child,
        )

    def _instance_profile(self, parameters: list[aws.ssm.Parameter]) -> aws.iam.InstanceProfile:
        role = aws.iam.Role(
            f"{self._name}-role",
            assume_role_policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                               "Principal": {"Service": "ec2.amazonaws.com"}}],
            }),
            opts=self._child,
        )
        # Session Manager instead of SSH: shell access through IAM, no inbound port. Only the agent's own actions:
        # AmazonSSMManagedInstanceCore would let the VM read every parameter in the account.
        aws.iam.RolePolicy(
            f"{self._name}-ssm-agent",
            role=role.id,
            policy=json.dumps(ssm_agent_policy()),
            opts=self._child,
        )
        aws.iam.RolePolicy(
            f"{self._name}-read-secrets",
            role=role.id,
            policy=pulumi.Output.all(*[p.arn for p in parameters]).apply(lambda arns: json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": list(arns)}],
            })),
            opts=self._child,
        )
        return aws.iam.InstanceProfile(f"{self._name}-profile", role=role.name, opts=self._child)

    def _subnet_id(self, instance_type: str, vpc_id: str | None, subnet_id: str | None) -> pulumi.Input[str]:
        """The configured subnet, else a default subnet in a zone that offers the instance type."""
        if subnet_id:
            return subnet_id
        invoke = pulumi.InvokeOptions(parent=self)
        vpc = vpc_id or aws.ec2.get_vpc_output(default=True, opts=invoke).id
        zones = aws.ec2.get_instance_type_offerings_output(
            location_type="availability-zone",
            filters=[aws.ec2.GetInstanceTypeOfferingsFilterArgs(name="instance-type", values=[instance_type])],
            opts=invoke,
        ).locations
        subnets = aws.ec2.get_subnets_output(
            filters=[
                aws.ec2.GetSubnetsFilterArgs(name="vpc-id", values=[vpc]),
                aws.ec2.GetSubnetsFilterArgs(name="availability-zone", values=zones),
            ],
            opts=invoke,
        )
        return pulumi.Output.all(subnets.ids, zones).apply(lambda found: _first_subnet(instance_type, *found))

    def _security_group(self, vpc_id: pulumi.Input[str], deployment: Deployment) -> aws.ec2.SecurityGroup:
        group = aws.ec2.SecurityGroup(
            f"{self._name}-api",
            vpc_id=vpc_id,
            description=f"Pixtral API on port {deployment.server.port}",
            opts=self._child,
        )
        for index, cidr in enumerate(deployment.allowed_cidrs):
            ipv6 = ipaddress.ip_network(cidr).version == 6
            aws.vpc.SecurityGroupIngressRule(
                f"{self._name}-api-in-{index}",
                security_group_id=group.id,
                ip_protocol="tcp",
                from_port=deployment.server.port,
                to_port=deployment.server.port,
                cidr_ipv6=cidr if ipv6 else None,
                cidr_ipv4=None if ipv6 else cidr,
                description="Pixtral OpenAI-compatible API",
                opts=self._child,
            )
        # Outbound is needed at boot: PyPI for vLLM, Hugging Face for the weights, SSM for the key.
        aws.vpc.SecurityGroupEgressRule(
            f"{self._name}-out", security_group_id=group.id, ip_protocol="-1", cidr_ipv4="0.0.0.0/0",
            opts=self._child,
        )
        return group

    def _newest_dlami(self) -> pulumi.Output[str]:
        return aws.ec2.get_ami_output(
            most_recent=True,
            owners=["amazon"],
            filters=[
                aws.ec2.GetAmiFilterArgs(name="name", values=[DLAMI_NAME]),
                aws.ec2.GetAmiFilterArgs(name="architecture", values=["x86_64"]),
            ],
            opts=pulumi.InvokeOptions(parent=self),
        ).id

    @staticmethod
    def _spot_options() -> aws.ec2.InstanceInstanceMarketOptionsArgs:
        # Persistent + stop: an interrupted VM comes back with its disk, so vLLM and the weights are still there.
        return aws.ec2.InstanceInstanceMarketOptionsArgs(
            market_type="spot",
            spot_options=aws.ec2.InstanceInstanceMarketOptionsSpotOptionsArgs(
                instance_interruption_behavior="stop", spot_instance_type="persistent"
            ),
        )


def _first_subnet(instance_type: str, subnet_ids: list[str], zones: list[str]) -> str:
    if not subnet_ids:
        raise ValueError(
            f"no default subnet of the VPC is in a zone that offers {instance_type} (zones offering it: "
            f"{', '.join(zones) or 'none in this region'}); set pixtral:subnetId, or another aws:region"
        )
    return sorted(subnet_ids)[0]
