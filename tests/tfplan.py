"""A program run (pixtral_render.engine) written as the Terraform plan JSON that checkov's terraform_plan runner reads.

Pulumi's AWS and GCP providers are bridged from Terraform's, so each declared resource maps onto a Terraform
resource: the type through the bridge's table (TERRAFORM_TYPES), the arguments mechanically: camelCase becomes
snake_case, a list of nested objects takes the singular block name Terraform gives it, and every nested object
becomes a list of blocks, as `terraform show -json` writes them. Whether a property is a nested object, a list of
them or a plain map comes from the provider's own Python types (the `...Args` input classes), which mirror the
Terraform schema.

An input that holds another declared resource's id, ARN, name or e-mail is what Terraform would show as a reference
(`role = aws_iam_role.node.name`): unknown until apply, so left out of `planned_values` and written as a reference
in `configuration`, which is how checkov's graph checks connect resources (a security group to its instance).
"""

from __future__ import annotations

import collections.abc
import importlib
import re
import typing
import warnings
from typing import Any

import pulumi._types as pulumi_types

TERRAFORM_VERSION = "1.11.4"
PROVIDERS = {"aws": ("aws", "registry.terraform.io/hashicorp/aws"),
             "gcp": ("google", "registry.terraform.io/hashicorp/google")}

# The bridge's type table (pulumi-aws / pulumi-gcp resources.go) for the types this program declares. A type
# missing here fails the scan by name: add it, looked up in the provider's registry docs, rather than guess.
TERRAFORM_TYPES = {
    "aws:acm/certificate:Certificate": "aws_acm_certificate",
    "aws:acm/certificateValidation:CertificateValidation": "aws_acm_certificate_validation",
    "aws:autoscaling/group:Group": "aws_autoscaling_group",
    "aws:autoscaling/policy:Policy": "aws_autoscaling_policy",
    "aws:cloudwatch/logGroup:LogGroup": "aws_cloudwatch_log_group",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "aws_cloudwatch_metric_alarm",
    "aws:ec2/eip:Eip": "aws_eip",
    "aws:ec2/eipAssociation:EipAssociation": "aws_eip_association",
    "aws:ec2/instance:Instance": "aws_instance",
    "aws:ec2/launchTemplate:LaunchTemplate": "aws_launch_template",
    "aws:ec2/securityGroup:SecurityGroup": "aws_security_group",
    "aws:eks/addon:Addon": "aws_eks_addon",
    "aws:eks/cluster:Cluster": "aws_eks_cluster",
    "aws:eks/nodeGroup:NodeGroup": "aws_eks_node_group",
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": "aws_eks_pod_identity_association",
    "aws:iam/instanceProfile:InstanceProfile": "aws_iam_instance_profile",
    "aws:iam/policy:Policy": "aws_iam_policy",
    "aws:iam/role:Role": "aws_iam_role",
    "aws:iam/rolePolicy:RolePolicy": "aws_iam_role_policy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "aws_iam_role_policy_attachment",
    "aws:kms/alias:Alias": "aws_kms_alias",
    "aws:kms/key:Key": "aws_kms_key",
    "aws:lb/listener:Listener": "aws_lb_listener",
    "aws:lb/loadBalancer:LoadBalancer": "aws_lb",
    "aws:lb/targetGroup:TargetGroup": "aws_lb_target_group",
    "aws:route53/record:Record": "aws_route53_record",
    "aws:s3/bucket:Bucket": "aws_s3_bucket",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": "aws_s3_bucket_lifecycle_configuration",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": "aws_s3_bucket_ownership_controls",
    "aws:s3/bucketPolicy:BucketPolicy": "aws_s3_bucket_policy",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": "aws_s3_bucket_public_access_block",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration":
        "aws_s3_bucket_server_side_encryption_configuration",
    "aws:ssm/parameter:Parameter": "aws_ssm_parameter",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "aws_vpc_security_group_egress_rule",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "aws_vpc_security_group_ingress_rule",
    "gcp:compute/address:Address": "google_compute_address",
    "gcp:compute/backendService:BackendService": "google_compute_backend_service",
    "gcp:compute/firewall:Firewall": "google_compute_firewall",
    "gcp:compute/forwardingRule:ForwardingRule": "google_compute_forwarding_rule",
    "gcp:compute/globalAddress:GlobalAddress": "google_compute_global_address",
    "gcp:compute/globalForwardingRule:GlobalForwardingRule": "google_compute_global_forwarding_rule",
    "gcp:compute/healthCheck:HealthCheck": "google_compute_health_check",
    "gcp:compute/instance:Instance": "google_compute_instance",
    "gcp:compute/instanceTemplate:InstanceTemplate": "google_compute_instance_template",
    "gcp:compute/managedSslCertificate:ManagedSslCertificate": "google_compute_managed_ssl_certificate",
    "gcp:compute/network:Network": "google_compute_network",
    "gcp:compute/regionAutoscaler:RegionAutoscaler": "google_compute_region_autoscaler",
    "gcp:compute/regionBackendService:RegionBackendService": "google_compute_region_backend_service",
    "gcp:compute/regionHealthCheck:RegionHealthCheck": "google_compute_region_health_check",
    "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager": "google_compute_region_instance_group_manager",
    "gcp:compute/regionSecurityPolicy:RegionSecurityPolicy": "google_compute_region_security_policy",
    "gcp:compute/regionSslCertificate:RegionSslCertificate": "google_compute_region_ssl_certificate",
    "gcp:compute/regionSslPolicy:RegionSslPolicy": "google_compute_region_ssl_policy",
    "gcp:compute/regionTargetHttpProxy:RegionTargetHttpProxy": "google_compute_region_target_http_proxy",
    "gcp:compute/regionTargetHttpsProxy:RegionTargetHttpsProxy": "google_compute_region_target_https_proxy",
    "gcp:compute/regionUrlMap:RegionUrlMap": "google_compute_region_url_map",
    "gcp:compute/router:Router": "google_compute_router",
    "gcp:compute/routerNat:RouterNat": "google_compute_router_nat",
    "gcp:compute/sSLCertificate:SSLCertificate": "google_compute_ssl_certificate",
    "gcp:compute/sSLPolicy:SSLPolicy": "google_compute_ssl_policy",
    "gcp:compute/securityPolicy:SecurityPolicy": "google_compute_security_policy",
    "gcp:compute/subnetwork:Subnetwork": "google_compute_subnetwork",
    "gcp:compute/targetHttpProxy:TargetHttpProxy": "google_compute_target_http_proxy",
    "gcp:compute/targetHttpsProxy:TargetHttpsProxy": "google_compute_target_https_proxy",
    "gcp:compute/uRLMap:URLMap": "google_compute_url_map",
    "gcp:container/cluster:Cluster": "google_container_cluster",
    "gcp:container/nodePool:NodePool": "google_container_node_pool",
    "gcp:dns/recordSet:RecordSet": "google_dns_record_set",
    "gcp:projects/iAMMember:IAMMember": "google_project_iam_member",
    "gcp:projects/service:Service": "google_project_service",
    "gcp:secretmanager/secret:Secret": "google_secret_manager_secret",
    "gcp:secretmanager/secretIamMember:SecretIamMember": "google_secret_manager_secret_iam_member",
    "gcp:secretmanager/secretVersion:SecretVersion": "google_secret_manager_secret_version",
    "gcp:serviceaccount/account:Account": "google_service_account",
    "gcp:serviceaccount/iAMMember:IAMMember": "google_service_account_iam_member",
    "gcp:storage/bucket:Bucket": "google_storage_bucket",
    "gcp:storage/bucketIAMMember:BucketIAMMember": "google_storage_bucket_iam_member",
}

# Lists of nested blocks whose Terraform name is plural already (the bridge pluralises the singular ones:
# `guest_accelerator` -> guestAccelerators, `taint` -> taints). Checked against the providers' schemas.
PLURAL_BLOCK_NAMES = {
    "aws_launch_template": {"blockDeviceMappings", "networkInterfaces", "tagSpecifications"},
    "google_container_cluster": {"cidrBlocks"},
}
# Outputs another resource's input can hold, that is, what Terraform references resolve to.
_REFERABLE = ("id", "arn", "name", "email", "selfLink", "address", "allocationId", "dnsName", "zoneId")


class UntranslatableResource(Exception):
    """A declared cloud resource this module cannot write as Terraform: a translation gap, not a finding."""


def is_cloud_resource(resource: dict) -> bool:
    return resource["type"].split(":", 1)[0] in PROVIDERS


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _singular(name: str) -> str:
    for plural, singular in (("ies", "y"), ("sses", "ss"), ("s", "")):
        if name.endswith(plural):
            return name[: -len(plural)] + singular
    return name


def _args_class(token: str) -> type:
    """The provider's input class of a resource token: `aws:ec2/instance:Instance` -> pulumi_aws.ec2.InstanceArgs."""
    package, module_path, class_name = token.split(":")
    module = importlib.import_module(f"pulumi_{package}.{module_path.split('/')[0]}")
    # Where a nested type already has the name `<Class>Args` (the Bucket's inline
    # `BucketServerSideEncryptionConfigurationArgs`), Pulumi's code generator names the resource's `<Class>InitArgs`.
    own = importlib.import_module(getattr(module, class_name).__module__)
    return getattr(own, f"{class_name}InitArgs", None) or getattr(own, f"{class_name}Args")


def _element_type(typ: Any) -> Any:
    """Strip Input/Optional/Output wrappers: the type a value of `typ` carries on the wire."""
    typ = pulumi_types.unwrap_type(typ)
    if typing.get_origin(typ) is typing.Union:
        members = [m for m in typing.get_args(typ) if typing.get_origin(m) is not collections.abc.Awaitable
                   and m is not type(None) and getattr(m, "__name__", "") != "Output"]
        typ = pulumi_types.unwrap_type(members[0])
    return typ


def _shape(typ: Any) -> tuple[str, Any]:
    """('block', Args), ('blocks', Args), ('map', None) or ('value', None) for one property type."""
    typ = _element_type(typ)
    if isinstance(typ, type) and pulumi_types.is_input_type(typ):
        return "block", typ
    origin = typing.get_origin(typ)
    if origin in (collections.abc.Sequence, list):
        item = _element_type(typing.get_args(typ)[0])
        if isinstance(item, type) and pulumi_types.is_input_type(item):
            return "blocks", item
    if origin in (collections.abc.Mapping, dict):
        return "map", None
    return "value", None


class _Translator:
    def __init__(self, resources: list[dict]):
        self.addresses: dict[tuple[str, str], str] = {}
        self.refs: dict[str, set[str]] = {}
        for resource in resources:
            if not is_cloud_resource(resource):
                continue
            if resource["type"] not in TERRAFORM_TYPES:
                raise UntranslatableResource(
                    f"{resource['type']} ({resource['name']}) has no Terraform type in tests/tfplan.py "
                    "TERRAFORM_TYPES: add the one the provider bridges it from")
            address = f"{TERRAFORM_TYPES[resource['type']]}.{re.sub(r'[^A-Za-z0-9_]', '_', resource['name'])}"
            self.addresses[(resource["type"], resource["name"])] = address
            computed = {k: v for k, v in resource["outputs"].items() if k not in resource["inputs"]}
            computed["id"] = resource.get("id") or None
            for attribute in _REFERABLE:
                value = computed.get(attribute)
                if isinstance(value, str) and value:
                    self.refs.setdefault(value, set()).add(f"{address}.{snake_case(attribute)}")

    def reference(self, value: Any) -> list[str] | None:
        """The Terraform reference a value stands for, when exactly one declared resource produced it."""
        targets = self.refs.get(value) if isinstance(value, str) else None
        if not targets or len(targets) > 1:
            return None
        (target,) = targets
        return [target, target.rsplit(".", 1)[0]]

    def block(self, tf_type: str, args_class: type, inputs: dict[str, Any]) -> tuple[dict, dict, dict]:
        """(values, expressions, unknown) of one resource or nested block, in Terraform's names."""
        types = pulumi_types.input_type_types(args_class)
        values: dict[str, Any] = {}
        expressions: dict[str, Any] = {}
        unknown: dict[str, Any] = {}
        for key, value in inputs.items():
            if key not in types:
                raise UntranslatableResource(f"{tf_type}: input {key!r} is not a property of {args_class.__name__}")
            shape, nested = _shape(types[key])
            name = snake_case(key)
            if shape == "blocks" and key not in PLURAL_BLOCK_NAMES.get(tf_type, ()):
                name = _singular(name)
            if shape in ("block", "blocks"):
                items = [value] if shape == "block" else value
                converted = [self.block(tf_type, nested, item) for item in items]
                values[name] = [c[0] for c in converted]
                if any(c[1] for c in converted):
                    expressions[name] = [c[1] for c in converted]
                if any(c[2] for c in converted):
                    unknown[name] = [c[2] for c in converted]
                continue
            scalars = value if isinstance(value, list) else [value]
            references = [r for r in (self.reference(v) for v in scalars if shape != "map") if r]
            if references:
                expressions[name] = {"references": [ref for pair in references for ref in pair]}
                unknown[name] = True
            else:
                values[name] = value
                expressions[name] = {"constant_value": value}
        return values, expressions, unknown


def terraform_plan(run: dict) -> dict:
    """The program run `run` (as tests/conftest.py run_stack returns it) as Terraform plan JSON."""
    with warnings.catch_warnings():
        # The provider modules, loaded lazily while their types are read, warn about deprecated resources that the
        # program does not use.
        warnings.simplefilter("ignore", DeprecationWarning)
        return _terraform_plan(run)


def _terraform_plan(run: dict) -> dict:
    translator = _Translator(run["resources"])
    planned, changes, configured = [], [], []
    providers: dict[str, dict] = {}
    for resource in run["resources"]:
        if not is_cloud_resource(resource):
            continue
        address = translator.addresses[(resource["type"], resource["name"])]
        tf_type, tf_name = address.split(".")
        provider_key, provider_name = PROVIDERS[resource["type"].split(":", 1)[0]]
        values, expressions, unknown = translator.block(tf_type, _args_class(resource["type"]), resource["inputs"])
        head = {"address": address, "mode": "managed", "type": tf_type, "name": tf_name,
                "provider_name": provider_name}
        planned.append({**head, "schema_version": 0, "values": values, "sensitive_values": {}})
        changes.append({**head, "change": {"actions": ["create"], "before": None, "after": values,
                                           "after_unknown": unknown, "before_sensitive": False,
                                           "after_sensitive": {}}})
        configured.append({"address": address, "mode": "managed", "type": tf_type, "name": tf_name,
                           "provider_config_key": provider_key, "expressions": expressions, "schema_version": 0})
        providers[provider_key] = {"name": provider_key, "full_name": provider_name,
                                   "expressions": _provider_settings(run["config"], resource["type"])}
    return {
        "format_version": "1.2",
        "terraform_version": TERRAFORM_VERSION,
        "planned_values": {"root_module": {"resources": planned}},
        "resource_changes": changes,
        "configuration": {"provider_config": providers, "root_module": {"resources": configured}},
    }


def _provider_settings(config: dict[str, str], token: str) -> dict:
    namespace = token.split(":", 1)[0]
    return {key.split(":", 1)[1]: {"constant_value": value} for key, value in config.items()
            if key.startswith(f"{namespace}:")}
