"""Pieces every AWS shape of the server declares the same way: the single VM, the fleet and the EKS cluster.

Each function declares its resources as children of the calling component (`parent`), so moving a piece here
changes no resource's URN.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws_artefact_store import AwsArtefactStore
from components.ssm_agent_policy import ssm_agent_policy
from components.stack_ca import StackCa
from pixtral_deploy.cloudinit import SecretStore, StoredSecret, TlsFiles, render_cloud_init
from pixtral_deploy.config import stored_secret
from pixtral_deploy.fleetboot import FleetBoot
from pixtral_deploy.network import ip_version
from pixtral_deploy.server import ServerSpec
from pixtral_deploy.spec import StackSpec
from pixtral_deploy.storage import AWS_ROOT_IOPS, AWS_ROOT_THROUGHPUT_MIBS

# "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04) 20261103": NVIDIA driver, CUDA, Docker, AWS CLI.
DLAMI_NAME = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04) *"


def assume_role_policy(service: str, actions: tuple[str, ...] = ("sts:AssumeRole",)) -> str:
    """The trust policy that lets one AWS service (ec2, eks, pods.eks) assume a role."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": list(actions) if len(actions) > 1 else actions[0],
         "Principal": {"Service": service}}]})


@dataclass
class AwsServerArgs:
    """What every AWS shape of the server is made from: the one spec, its two secrets, the stack CA that signs the
    endpoint's certificate (None with pixtral:tls false, or where a public certificate serves), and the stack's
    artefact store (None with pixtral:warmStarts false)."""

    spec: StackSpec
    api_key: pulumi.Input[str]
    hf_token: pulumi.Input[str] | None = None
    ca: StackCa | None = None
    artefacts: AwsArtefactStore | None = None


@dataclass
class VmIdentity:
    """What a replica needs to read its secrets: the instance profile, and where the secrets are for cloud-init."""

    instance_profile: aws.iam.InstanceProfile
    secret_store: pulumi.Output[SecretStore]
    # The instance role, for what a shape adds beyond reading its secrets (a fleet's metrics, lifecycle hook).
    role: aws.iam.Role


def vm_identity(name: str, api_key: pulumi.Input[str], hf_token: pulumi.Input[str] | None,
                parent: pulumi.Resource, tls_key: pulumi.Input[str] | None = None) -> VmIdentity:
    """The API key (and HF token, and the TLS private key) as SSM SecureStrings, and an instance role that may read
    exactly them."""
    child = pulumi.ResourceOptions(parent=parent)
    region = aws.get_region_output(opts=pulumi.InvokeOptions(parent=parent)).region
    api_key_param = _secure_parameter(name, "api-key", api_key, child)
    hf_token_param = _secure_parameter(name, "hf-token", hf_token, child) if hf_token is not None else None
    tls_key_param = _secure_parameter(name, "tls-key", tls_key, child) if tls_key is not None else None
    parameters = [p for p in (api_key_param, hf_token_param, tls_key_param) if p is not None]
    store = pulumi.Output.all(
        region,
        stored_secret(api_key_param.name, api_key_param.version),
        stored_secret(hf_token_param.name, hf_token_param.version) if hf_token_param else None,
        stored_secret(tls_key_param.name, tls_key_param.version) if tls_key_param else None,
    ).apply(lambda values: _ssm_store(*values))
    role = aws.iam.Role(f"{name}-role", assume_role_policy=assume_role_policy("ec2.amazonaws.com"), opts=child)
    return VmIdentity(_instance_profile(name, role, parameters, child), store, role)


def _ssm_store(region: str, api_key: StoredSecret, hf_token: StoredSecret | None,
               tls_key: StoredSecret | None) -> SecretStore:
    return SecretStore("aws-ssm", api_key, hf_token, {"PIXTRAL_AWS_REGION": region}, tls_key)


def _secure_parameter(name: str, what: str, value: pulumi.Input[str],
                      child: pulumi.ResourceOptions) -> aws.ssm.Parameter:
    return aws.ssm.Parameter(
        f"{name}-{what}",
        name=f"/pixtral/{pulumi.get_stack()}/{name}/{what}",
        type="SecureString",
        value=pulumi.Output.secret(value),
        opts=child,
    )


def _instance_profile(name: str, role: aws.iam.Role, parameters: list[aws.ssm.Parameter],
                      child: pulumi.ResourceOptions) -> aws.iam.InstanceProfile:
    # Session Manager instead of SSH: shell access through IAM, no inbound port. Only the agent's own actions:
    # AmazonSSMManagedInstanceCore would let the VM read every parameter in the account.
    aws.iam.RolePolicy(f"{name}-ssm-agent", role=role.id, policy=json.dumps(ssm_agent_policy()), opts=child)
    aws.iam.RolePolicy(
        f"{name}-read-secrets",
        role=role.id,
        policy=pulumi.Output.all(*[p.arn for p in parameters]).apply(lambda arns: json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": list(arns)}],
        })),
        opts=child,
    )
    return aws.iam.InstanceProfile(f"{name}-profile", role=role.name, opts=child)


def replica_user_data(server: ServerSpec, identity: VmIdentity, local_nvme: bool,
                      fleet: FleetBoot | None = None,
                      tls: pulumi.Input[TlsFiles] | None = None,
                      artefacts: AwsArtefactStore | None = None) -> pulumi.Output[str]:
    """The plain cloud-config every AWS replica boots with (one VM, or each of a fleet's): it names where the
    secrets are, never their values; with `tls`, the server's public certificates (its key is in the store); with
    `artefacts`, the store's URL."""
    return pulumi.Output.all(identity.secret_store, tls, artefacts.url if artefacts else None).apply(
        lambda values: render_cloud_init(server, values[0], local_nvme=local_nvme, fleet=fleet, tls=values[1],
                                         artefacts=values[2]))


def artefact_rights(name: str, artefacts: AwsArtefactStore | None, identity: VmIdentity,
                    parent: pulumi.Resource) -> list[pulumi.Resource]:
    """The replicas' rights on the stack's artefact store; what they must wait for before booting (none without a
    store)."""
    return artefacts.grant(name, identity.role, parent) if artefacts else []


def root_volume(disk_size_gb: int) -> dict:
    """The encrypted gp3 root volume of every AWS replica, as launch-template or instance block-device fields."""
    return {
        "volume_size": disk_size_gb,
        "volume_type": "gp3",
        # gp3 above its 125 MiB/s default: the weights are written once and read on every cold start.
        "throughput": AWS_ROOT_THROUGHPUT_MIBS,
        "iops": AWS_ROOT_IOPS,
        "encrypted": True,
        "delete_on_termination": True,
    }


def metadata_options() -> dict:
    """IMDSv2 only, one hop: a process in a container on the replica cannot reach the instance's credentials."""
    return {"http_endpoint": "enabled", "http_tokens": "required", "http_put_response_hop_limit": 1}


def replica_security_group(name: str, vpc_id: pulumi.Input[str], description: str, egress_name: str,
                           parent: pulumi.Resource) -> aws.ec2.SecurityGroup:
    """A replica's group: everything out (boot needs PyPI, Hugging Face, SSM), nothing in until a rule says."""
    group = aws.ec2.SecurityGroup(name, vpc_id=vpc_id, description=description,
                                  opts=pulumi.ResourceOptions(parent=parent))
    egress_everywhere(egress_name, group, parent)
    return group


def api_ingress_from_cidrs(name: str, group: aws.ec2.SecurityGroup, cidrs: tuple[str, ...], port: int,
                           parent: pulumi.Resource) -> None:
    """One ingress rule per allowed CIDR on the API port (a rule takes one address family)."""
    for index, cidr in enumerate(cidrs):
        ipv6 = ip_version(cidr) == 6
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-in-{index}",
            security_group_id=group.id,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            cidr_ipv6=cidr if ipv6 else None,
            cidr_ipv4=None if ipv6 else cidr,
            description="Pixtral OpenAI-compatible API",
            opts=pulumi.ResourceOptions(parent=parent),
        )


def dns_record(name: str, zone_id: str, domain: str, address: pulumi.Input[str], parent: pulumi.Resource,
               record_type: str = "A", ttl: int = 300) -> None:
    """pixtral:domain in the user's Route 53 hosted zone, pointing at the endpoint's address (an A record for an
    IP, a CNAME for a load balancer's hostname)."""
    aws.route53.Record(f"{name}-dns", zone_id=zone_id, name=domain, type=record_type, ttl=ttl, records=[address],
                       opts=pulumi.ResourceOptions(parent=parent))


def egress_everywhere(name: str, group: aws.ec2.SecurityGroup, parent: pulumi.Resource) -> None:
    # Outbound is needed at boot: PyPI for vLLM, Hugging Face for the weights, SSM for the key.
    aws.vpc.SecurityGroupEgressRule(f"{name}-out", security_group_id=group.id, ip_protocol="-1",
                                    cidr_ipv4="0.0.0.0/0",
                                    description="PyPI and Hugging Face at boot, SSM for the secrets and the agent",
                                    opts=pulumi.ResourceOptions(parent=parent))


def zones_offering(instance_types: list[str], parent: pulumi.Resource) -> pulumi.Output[list[str]]:
    """The region's availability zones that offer every one of the instance types, sorted."""
    offerings = [
        aws.ec2.get_instance_type_offerings_output(
            location_type="availability-zone",
            filters=[aws.ec2.GetInstanceTypeOfferingsFilterArgs(name="instance-type", values=[instance_type])],
            opts=pulumi.InvokeOptions(parent=parent),
        ).locations
        for instance_type in instance_types
    ]
    return pulumi.Output.all(*offerings).apply(
        lambda found: sorted(set(found[0]).intersection(*found[1:])) if found else [])


def subnets_offering(instance_types: list[str], subnet_filter: pulumi.Input[aws.ec2.GetSubnetsFilterArgs],
                     parent: pulumi.Resource) -> pulumi.Output[list[str]]:
    """Subnets (among those the filter selects) in zones that offer every instance type, sorted by id: a node
    group or VM in another zone would never get capacity."""
    zones = zones_offering(instance_types, parent)
    subnets = aws.ec2.get_subnets_output(
        filters=[subnet_filter, aws.ec2.GetSubnetsFilterArgs(name="availability-zone", values=zones)],
        opts=pulumi.InvokeOptions(parent=parent),
    )
    return pulumi.Output.all(subnets.ids, zones).apply(
        lambda found: _require_subnets(instance_types, sorted(found[0]), found[1]))


def default_vpc_subnets_offering(instance_types: list[str], vpc_id: str | None,
                                 parent: pulumi.Resource) -> pulumi.Output[list[str]]:
    """Subnets of the configured VPC (else the default one) in zones that offer every instance type."""
    vpc = vpc_id or aws.ec2.get_vpc_output(default=True, opts=pulumi.InvokeOptions(parent=parent)).id
    return subnets_offering(instance_types, aws.ec2.GetSubnetsFilterArgs(name="vpc-id", values=[vpc]), parent)


def _require_subnets(instance_types: list[str], subnet_ids: list[str], zones: list[str]) -> list[str]:
    # Known only once the cloud answers the lookups, so it cannot be refused with the other settings; a RunError is
    # the run's error, which the CLI shows as this message alone, without a stack trace.
    if not subnet_ids:
        raise pulumi.RunError(
            f"pixtral:vpcId: no subnet of the VPC is in a zone that offers {', '.join(instance_types)} (zones that "
            f"offer it: {', '.join(zones) or 'none in this region'}); expected a VPC with a subnet in one of those "
            "zones (or, on target aws, pixtral:subnetId), or another aws:region")
    return subnet_ids


def newest_dlami(parent: pulumi.Resource) -> pulumi.Output[str]:
    """The newest Deep Learning Base GPU AMI; callers fix it at creation (components.boot_image)."""
    return aws.ec2.get_ami_output(
        most_recent=True,
        owners=["amazon"],
        filters=[
            aws.ec2.GetAmiFilterArgs(name="name", values=[DLAMI_NAME]),
            aws.ec2.GetAmiFilterArgs(name="architecture", values=["x86_64"]),
        ],
        opts=pulumi.InvokeOptions(parent=parent),
    ).id
