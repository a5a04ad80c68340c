"""What the mock clouds answer: the outputs each resource type gets on create, and the answers to lookups.

One row per resource type, as the real provider fills them in (ids, addresses, ARNs, self links), in formats the
checkers downstream read as what they are. Values the cloud assigns at `pulumi up` are listed in MADE_UP, so a render
shows them as "known after `pulumi up`", never as real ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .tls import tls_outputs

MOCK_PUBLIC_IP = "203.0.113.10"
MOCK_LB_HOSTNAME = "a1b2c3-pixtral.elb.example.com"
MOCK_INSTANCE_ID = "i-0123456789abcdef0"
MOCK_ACCOUNT = "123456789012"
MOCK_ALB_DNS_NAME = "pixtral-0123456789.us-east-1.elb.amazonaws.com"
# The Route 53 zone that Elastic Load Balancing keeps an ALB's name in (us-east-1's), for alias records.
MOCK_ALB_ZONE_ID = "Z35SXDOTRQ7X7K"
# ACM's DNS validation answer: the CNAME it asks for in the domain's zone.
MOCK_ACM_VALIDATION_NAME = "_0123456789abcdef"
MOCK_ACM_VALIDATION_VALUE = "_fedcba9876543210.mock.acm-validations.aws."
# What the mocks invent on create: a real stack knows these only after `pulumi up` (render shows them so).
MOCK_LB_ADDRESS = "198.51.100.20"
MOCK_INTERNAL_ADDRESS = "10.128.0.50"
MOCK_PRIVATE_IP = "10.0.0.10"
MOCK_ALLOCATION_ID = "eipalloc-0123456789abcdef0"
# What the mocks answer for lookups (the newest AMI, the default VPC and its subnets): the real answers come from
# the account at `pulumi up`, so a render never shows these as if they were real ids.
MOCK_AMI_ID = "ami-0dlami000000000"
MOCK_VPC_ID = "vpc-0default00000000"
MOCK_SUBNET_IDS = ("subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb")
# Stands in for the random suffix Pulumi's auto-naming gives a bucket (S3 and GCS bucket names are global): the real
# name is known only after `pulumi up`.
MOCK_BUCKET_SUFFIX = "-0mock00"
MADE_UP_ON_CREATE = (MOCK_PUBLIC_IP, MOCK_LB_ADDRESS, MOCK_INTERNAL_ADDRESS, MOCK_LB_HOSTNAME, MOCK_INSTANCE_ID,
                     f":{MOCK_ACCOUNT}:", MOCK_ALB_DNS_NAME, MOCK_ACM_VALIDATION_NAME, MOCK_ACM_VALIDATION_VALUE,
                     MOCK_PRIVATE_IP, MOCK_ALLOCATION_ID, MOCK_AMI_ID, MOCK_VPC_ID, *MOCK_SUBNET_IDS,
                     MOCK_BUCKET_SUFFIX)
# Secret versions past the first, as after a rotation or two: the program must carry the number the store gives.
MOCK_SSM_VERSION = 3
MOCK_SECRET_VERSION = "2"
MOCK_GCP_PROJECT = "pixtral-mock-project"
MOCK_CA_DATA = "bW9jay1jYQ=="


@dataclass(frozen=True)
class Created:
    """One resource being created: what its outputs are made from."""

    type: str
    name: str
    inputs: dict[str, Any]
    id: str
    region: str
    # What a LoadBalancer Service's status publishes on the stack's target: "ip" or "hostname".
    load_balancer_publishes: str


def mock_id(name: str) -> str:
    """The id the mocks give the resource `name` (and its `name` output where the cloud names it)."""
    return f"{name}-id"


def mock_name(name: str) -> str:
    return f"{name}-name"


def suffix(name: str) -> str:
    """Stands in for the random suffix of Pulumi's auto-naming; fixed per name so runs compare."""
    return hashlib.sha256(name.encode()).hexdigest()[:7]


def _declared_without_name(inputs: dict[str, Any]) -> bool:
    metadata = inputs.get("metadata")
    return isinstance(metadata, dict) and "name" not in metadata


def _arn(created: Created, name: str) -> str:
    """ARNs in the format the real services give, so policy checkers read them as what they are."""
    if created.type == "aws:iam/role:Role":
        return f"arn:aws:iam::{MOCK_ACCOUNT}:role/{name}"
    if created.type == "aws:kms/key:Key":
        return f"arn:aws:kms:{created.region}:{MOCK_ACCOUNT}:key/{created.id}"
    return f"arn:aws:ssm:{created.region}:{MOCK_ACCOUNT}:parameter/{name.lstrip('/')}"


def gcp_link(inputs: dict[str, Any], collection: str, name: str) -> str:
    where = f"regions/{inputs['region']}" if inputs.get("region") else "global"
    return (f"https://www.googleapis.com/compute/v1/projects/{inputs.get('project', MOCK_GCP_PROJECT)}/{where}/"
            f"{collection}/{name}")


def _named_with_arn(created: Created) -> dict[str, Any]:
    name = created.inputs.get("name", mock_name(created.name))
    outputs = {"name": name, "arn": _arn(created, name)}
    if created.type == "aws:ssm/parameter:Parameter":
        outputs["version"] = MOCK_SSM_VERSION
    return outputs


def _load_balancer(created: Created) -> dict[str, Any]:
    tail = f"app/{created.name}/0123456789abcdef"
    return {"dnsName": MOCK_ALB_DNS_NAME if not created.inputs.get("internal") else f"internal-{MOCK_ALB_DNS_NAME}",
            "arnSuffix": tail, "zoneId": MOCK_ALB_ZONE_ID,
            "arn": f"arn:aws:elasticloadbalancing:{created.region}:{MOCK_ACCOUNT}:loadbalancer/{tail}"}


def _target_group(created: Created) -> dict[str, Any]:
    tail = f"targetgroup/{created.name}/fedcba9876543210"
    return {"arnSuffix": tail, "arn": f"arn:aws:elasticloadbalancing:{created.region}:{MOCK_ACCOUNT}:{tail}"}


def _certificate(created: Created) -> dict[str, Any]:
    outputs: dict[str, Any] = {"arn": f"arn:aws:acm:{created.region}:{MOCK_ACCOUNT}:certificate/{created.id}"}
    domain = created.inputs.get("domainName")
    if domain:
        outputs["domainValidationOptions"] = [{
            "domainName": domain, "resourceRecordType": "CNAME",
            "resourceRecordName": f"{MOCK_ACM_VALIDATION_NAME}.{domain}.",
            "resourceRecordValue": MOCK_ACM_VALIDATION_VALUE}]
    return outputs


def _auto_scaling_group(created: Created) -> dict[str, Any]:
    group = created.inputs.get("name", f"{created.name}-{suffix(created.name)}")
    return {"name": group, "arn": f"arn:aws:autoscaling:{created.region}:{MOCK_ACCOUNT}:autoScalingGroup:mock:"
                                  f"autoScalingGroupName/{group}"}


def _scaling_policy(created: Created) -> dict[str, Any]:
    return {"arn": f"arn:aws:autoscaling:{created.region}:{MOCK_ACCOUNT}:scalingPolicy:{created.id}:"
                   f"autoScalingGroupName/{created.inputs.get('autoscalingGroupName')}:policyName/{created.name}"}


def _s3_bucket(created: Created) -> dict[str, Any]:
    bucket = created.inputs.get("bucket", f"{created.name}{MOCK_BUCKET_SUFFIX}")
    return {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}", "bucketRegionalDomainName":
            f"{bucket}.s3.{created.region}.amazonaws.com", "region": created.region}


def _gcs_bucket(created: Created) -> dict[str, Any]:
    bucket = created.inputs.get("name", f"{created.name}{MOCK_BUCKET_SUFFIX}")
    return {"name": bucket, "url": f"gs://{bucket}",
            "selfLink": f"https://www.googleapis.com/storage/v1/b/{bucket}"}


def _gcp_network(created: Created) -> dict[str, Any]:
    inputs = created.inputs
    kind = "networks" if created.type.endswith("Network") else f"regions/{inputs.get('region')}/subnetworks"
    where = "global/" if kind == "networks" else ""
    return {"selfLink": f"projects/{inputs.get('project')}/{where}{kind}/{created.name}"}


def _gcp_address(created: Created) -> dict[str, Any]:
    internal = created.inputs.get("addressType") == "INTERNAL"
    return {"address": MOCK_INTERNAL_ADDRESS if internal else MOCK_PUBLIC_IP}


def _service_account(created: Created) -> dict[str, Any]:
    inputs = created.inputs
    return {"email": f"{inputs['accountId']}@{inputs.get('project', 'p')}.iam.gserviceaccount.com"}


def _kubernetes_object(created: Created) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    if _declared_without_name(created.inputs):
        # The provider names an object declared without one: the resource name and a random suffix, drawn anew when
        # the object is replaced (new data for a Secret or ConfigMap): the same inputs, the same suffix, so runs
        # compare.
        generation = json.dumps(created.inputs, sort_keys=True, default=str)
        outputs["metadata"] = {**created.inputs["metadata"],
                               "name": f"{created.name}-{suffix(created.name + generation)}"}
    if created.type == "kubernetes:core/v1:Service":
        # As the clouds answer: GKE's load balancers publish an IP, AWS's (and the mock's default) a name.
        ingress = ({"ip": MOCK_LB_ADDRESS} if created.load_balancer_publishes == "ip"
                   else {"hostname": MOCK_LB_HOSTNAME})
        outputs["status"] = {"loadBalancer": {"ingress": [ingress]}}
    return outputs


# The outputs each resource type gets on create, beyond its inputs.
CREATED: dict[str, Callable[[Created], dict[str, Any]]] = {
    "aws:ec2/instance:Instance": lambda c: {"publicIp": MOCK_PUBLIC_IP, "privateIp": MOCK_PRIVATE_IP},
    "aws:ec2/launchTemplate:LaunchTemplate": lambda c: {"latestVersion": 1},
    "aws:ec2/eip:Eip": lambda c: {"publicIp": MOCK_PUBLIC_IP, "allocationId": MOCK_ALLOCATION_ID},
    "aws:ssm/parameter:Parameter": _named_with_arn,
    "aws:iam/role:Role": _named_with_arn,
    "aws:kms/key:Key": _named_with_arn,
    "aws:iam/instanceProfile:InstanceProfile": lambda c: {
        "arn": f"arn:aws:iam::{MOCK_ACCOUNT}:instance-profile/{c.name}"},
    "aws:lb/loadBalancer:LoadBalancer": _load_balancer,
    "aws:lb/targetGroup:TargetGroup": _target_group,
    "aws:acm/certificate:Certificate": _certificate,
    "aws:route53/record:Record": lambda c: {"fqdn": c.inputs["name"].rstrip(".")},
    "aws:autoscaling/group:Group": _auto_scaling_group,
    "aws:autoscaling/policy:Policy": _scaling_policy,
    "aws:s3/bucket:Bucket": _s3_bucket,
    "gcp:storage/bucket:Bucket": _gcs_bucket,
    "aws:eks/cluster:Cluster": lambda c: {"endpoint": "https://mock-eks.example.com",
                                          "name": c.inputs.get("name", c.name),
                                          "certificateAuthority": {"data": MOCK_CA_DATA}},
    "gcp:secretmanager/secretVersion:SecretVersion": lambda c: {
        "version": MOCK_SECRET_VERSION, "name": f"{c.inputs['secret']}/versions/{MOCK_SECRET_VERSION}"},
    "gcp:compute/network:Network": _gcp_network,
    "gcp:compute/subnetwork:Subnetwork": _gcp_network,
    "gcp:compute/address:Address": _gcp_address,
    "gcp:compute/globalAddress:GlobalAddress": lambda c: {"address": MOCK_LB_ADDRESS},
    "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager": lambda c: {
        "instanceGroup": gcp_link(c.inputs, "instanceGroups", c.name)},
    "gcp:serviceaccount/account:Account": _service_account,
    "gcp:container/cluster:Cluster": lambda c: {"endpoint": "192.0.2.10",
                                                "masterAuth": {"clusterCaCertificate": MOCK_CA_DATA}},
    "random:index/randomPassword:RandomPassword": lambda c: {
        "result": "Mock0Generated0Api0Key0" + "x" * (int(c.inputs.get("length", 40)) - 23)},
}
# Whole providers whose outputs one function makes, by type prefix.
CREATED_BY_PROVIDER: dict[str, Callable[[Created], dict[str, Any]]] = {
    "tls:": lambda c: tls_outputs(c.type, c.name, c.inputs),
    "kubernetes:": _kubernetes_object,
}
# Resource ids a cloud gives that other resources (and the outputs) carry.
IDS = {"aws:ec2/instance:Instance": MOCK_INSTANCE_ID}


def created_outputs(created: Created) -> dict[str, Any]:
    """What the cloud returns for the resource: its inputs, and what the provider fills in."""
    outputs = dict(created.inputs)
    fill = CREATED.get(created.type) or next(
        (made for prefix, made in CREATED_BY_PROVIDER.items() if created.type.startswith(prefix)), None)
    if fill is not None:
        outputs.update(fill(created))
    outputs.setdefault("name", created.name)
    if created.type.startswith("gcp:compute/"):
        # Compute Engine names every resource by a link; templates also by one that pins their version.
        collection = created.type.split(":")[-1][0].lower() + created.type.split(":")[-1][1:] + "s"
        outputs.setdefault("selfLink", gcp_link(created.inputs, collection, outputs["name"]))
        outputs.setdefault("selfLinkUnique", f"{outputs['selfLink']}?uniqueId=1234567890")
    return outputs


def invoke_answers(region: str, args: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The answers to the lookups (`get_*` invokes) the program makes, by token."""
    return {
        "aws:index/getRegion:getRegion": {"region": region, "name": region},
        "aws:index/getCallerIdentity:getCallerIdentity": {
            "accountId": MOCK_ACCOUNT, "arn": f"arn:aws:iam::{MOCK_ACCOUNT}:user/mock", "userId": "AIDAMOCK",
            "id": MOCK_ACCOUNT},
        "aws:ec2/getAmi:getAmi": {"id": MOCK_AMI_ID, "name": "Deep Learning Base (mock)"},
        "aws:ec2/getVpc:getVpc": {"id": MOCK_VPC_ID},
        "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": {
            "locations": [f"{region}a", f"{region}b"], "instanceTypes": [], "locationTypes": []},
        "aws:ec2/getSubnets:getSubnets": {"ids": list(reversed(MOCK_SUBNET_IDS))},
        "aws:ec2/getSubnet:getSubnet": {"id": args.get("id"), "vpcId": MOCK_VPC_ID},
        "aws:eks/getCluster:getCluster": {
            "name": args.get("name"), "endpoint": "https://existing-eks.example.com",
            "certificateAuthorities": [{"data": MOCK_CA_DATA}],
            "vpcConfig": {"subnetIds": list(MOCK_SUBNET_IDS)}},
        "gcp:container/getCluster:getCluster": {
            "name": args.get("name"), "endpoint": "192.0.2.20",
            "masterAuths": [{"clusterCaCertificate": MOCK_CA_DATA}]},
        "gcp:compute/getImage:getImage": {
            "selfLink": "projects/deeplearning-platform-release/global/images/mock-dlvm"},
    }
