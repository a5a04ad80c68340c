"""AWS: `aws` (one EC2 VM, or a fleet behind an ALB) and `eks` (GPU nodes in an EKS cluster, pods on them).

The settings both read (instance type, VPC), the catalogue's EC2 types, SSM as the secret store, `aws:region`'s
check, and the components each declares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..catalog import has_local_nvme
from ..cloudinit import USER_DATA_LIMIT_BYTES, compressed_size
from ..errors import ConfigError
from ..locations import aws_region_problems
from ..parsers import setting_error
from ..scaling import AWS_MAX_DOWNSCALE_DELAY_SECONDS
from . import Hardware, SecretStore, Target, register
from .kubernetes import KubernetesTarget, deploy_workload
from .machines import candidates, catalogue_hardware, chosen_by, per_replica

if TYPE_CHECKING:
    from ..keys import Settings

CLOUD = "aws"
CLOUD_PHRASE = "an AWS"
# A security group takes 60 inbound rules per IP version by default (Amazon VPC quotas, "Inbound or outbound rules
# per security group", counted separately for IPv4 and IPv6).
SECURITY_GROUP_RULES = 60


@dataclass(frozen=True)
class AwsMachines:
    instance_type: str
    vpc_id: str | None
    subnet_id: str | None
    ami_id: str | None
    # A fleet's candidate types in order of preference; the first is `instance_type`.
    instance_types: tuple[str, ...] = ()


def aws_machines(settings: Settings) -> AwsMachines:
    types = candidates(settings, "instanceType", "instanceTypes")
    return AwsMachines(instance_type=types[0], vpc_id=settings["vpcId"], subnet_id=settings["subnetId"],
                       ami_id=settings["amiId"], instance_types=types)


def _machines(settings: Settings, aws: AwsMachines) -> list[Hardware]:
    key = chosen_by(settings, "instanceType", "instanceTypes")
    return [catalogue_hardware(settings, key, name, CLOUD, CLOUD_PHRASE) for name in aws.instance_types]


def aws_region() -> Any:
    """The region the stack deploys to (for `pixtralctl status`, which asks the AWS CLI about the group)."""
    import pulumi_aws as aws

    return aws.get_region_output().region


class _OnAws:
    provider_namespaces = (CLOUD,)
    creates_machines = True
    artefact_store = "own"

    def cloud_settings(self, settings: Settings) -> dict[str, Any]:
        return {"aws": aws_machines(settings)}

    def location(self, errors: list[str]) -> tuple[Any, list[str]]:
        import pulumi

        region_errors, warnings = aws_region_problems(pulumi.Config("aws").get("region"))
        errors += region_errors
        return None, warnings


class Aws(_OnAws, Target):
    name = "aws"
    listed = 1
    summary = "one EC2 VM, or a fleet of them behind an Application Load Balancer"
    platform = "vm"
    # An SSM SecureString of the standard tier holds 4 KB.
    secret_store = SecretStore(4096, "SSM Parameter Store's standard tier holds 4 KB")
    cidr_limit = (SECURITY_GROUP_RULES, "a security group's default quota of 60 inbound rules per IP version, one "
                                        "rule per CIDR")
    status_module = "pixtralctl.status_aws"
    # A fleet at zero wakes on the balancer's refused requests (components/aws_fleet.py `_wake`).
    cannot_scale_to_zero = None
    # The balancer publishes its metrics every 60 s, and the wake alarm decides on one one-minute period.
    wake_detection_seconds = 120

    def hardware(self, settings: Settings, spec_fields: dict[str, Any]) -> tuple[list[Hardware], Hardware | None]:
        return _machines(settings, spec_fields["aws"]), None

    def candidate_types(self, spec: Any) -> tuple[str, ...]:
        return spec.aws.instance_types or (spec.aws.instance_type,)

    def check(self, spec: Any) -> None:
        _check_user_data_fits(spec)
        if spec.scaling.is_fleet:
            _check_fleet(spec)

    def warnings(self, spec: Any, settings: Settings) -> list[str]:
        if spec.scaling.internal and spec.scaling.is_fleet:
            return ["pixtral:internal: the replicas get no public address; they reach PyPI, Hugging Face and SSM at "
                    "boot only if the VPC (pixtral:vpcId) routes them out, through a NAT gateway or VPC endpoints"]
        return []

    def deploy(self, stack: Any, api_key: Any, ca: Any) -> dict[str, Any]:
        from components.aws_artefact_store import AwsArtefactStore

        # At the top of the stack, beside the server: turning one VM into a fleet (or back) keeps the bucket and
        # what the boots published in it.
        store = AwsArtefactStore("pixtral-artefacts") if stack.spec.warm_starts else None
        stored = {"artefacts": store.url} if store else {}
        if stack.spec.scaling.is_fleet:
            from components.aws_fleet import AwsGpuFleet, AwsGpuFleetArgs

            fleet = AwsGpuFleet("pixtral", AwsGpuFleetArgs(stack.spec, api_key=api_key,
                                                           hf_token=stack.secrets.hf_token, ca=ca, artefacts=store))
            return {"endpoint": fleet.endpoint, "autoScalingGroup": fleet.auto_scaling_group,
                    "targetGroup": fleet.target_group, "region": aws_region(), **stored}
        from components.aws_vm import AwsGpuVm, AwsGpuVmArgs

        vm = AwsGpuVm("pixtral", AwsGpuVmArgs(stack.spec, api_key=api_key, hf_token=stack.secrets.hf_token,
                                              ca=ca, artefacts=store))
        return {"endpoint": vm.endpoint, "instanceId": vm.instance_id, "publicIp": vm.public_ip, **stored}


def _check_user_data_fits(spec: Any) -> None:
    """EC2 refuses user data over 16 KB (compressed): say so now, not after other resources exist."""
    size = compressed_size(spec.server, has_local_nvme(spec.aws.instance_type), spec.warm_starts)
    if size > USER_DATA_LIMIT_BYTES:
        raise setting_error("extraArgs", list(spec.server.extra_args),
                            f"fewer or shorter arguments: the VM's cloud-init would be {size} bytes compressed, "
                            f"over EC2's {USER_DATA_LIMIT_BYTES}-byte user-data limit")


def _check_fleet(spec: Any) -> None:
    aws = spec.aws
    if aws.subnet_id is not None:
        raise setting_error("subnetId", aws.subnet_id, "no subnetId with a fleet: its load balancer and "
                            "replicas span at least two zones; set pixtral:vpcId and the fleet picks that VPC's "
                            "subnets in zones offering every candidate type")
    if spec.scaling.warm_pool and len(aws.instance_types) > 1:
        # A warm pool cannot stand beside a mixed instances policy (EC2 Auto Scaling's PutWarmPool).
        raise setting_error("warmPool", spec.scaling.warm_pool,
                            f"0 with several candidate types (pixtral:instanceTypes {list(aws.instance_types)}): "
                            "EC2 Auto Scaling keeps warm pools for single-type groups only")
    autoscale = spec.scaling.autoscale
    if autoscale is not None and autoscale.downscale_delay_seconds > AWS_MAX_DOWNSCALE_DELAY_SECONDS:
        # The fleet's scale-in alarm must see every minute of the delay, and CloudWatch refuses an alarm that
        # looks back further than a day.
        raise ConfigError(f"pixtral:autoscale: downscaleDelaySeconds={autoscale.downscale_delay_seconds} is not "
                          f"allowed on target aws; expected at most {AWS_MAX_DOWNSCALE_DELAY_SECONDS} (one day: "
                          "the longest a CloudWatch alarm on one-minute data can look back)")


class Eks(_OnAws, KubernetesTarget):
    name = "eks"
    listed = 4
    summary = "a new EKS cluster (or GPU nodes in an existing one) running the pods"
    kubeconfig_command = "aws eks update-kubeconfig --name {cluster}"
    cidr_limit = (SECURITY_GROUP_RULES, "the load balancer's security group: a default quota of 60 inbound rules per "
                                        "IP version")
    own_keda_hint = "remove pixtral:clusterName, so that the program creates the cluster and installs and " \
                    "configures the add-on in it, or use target gke"

    def hardware(self, settings: Settings, spec_fields: dict[str, Any]) -> tuple[list[Hardware], Hardware | None]:
        node = _machines(settings, spec_fields["aws"])[0]
        return [per_replica(node, settings["gpusPerReplica"])], node

    def installs_keda(self, spec: Any) -> bool:
        """A cluster the program creates, as it installs the cluster autoscaler there. A reused cluster
        (pixtral:clusterName) keeps its own KEDA, if it runs one: KEDA on EKS needs no cloud identity to query
        pixtral:prometheusUrl, so the cluster's own serves as well, and a second release would collide with it."""
        return spec.kubernetes.cluster_name is None

    def deploy(self, stack: Any, api_key: Any, ca: Any) -> dict[str, Any]:
        from components.eks_cluster import EksGpuCluster, EksGpuClusterArgs

        cluster = EksGpuCluster("pixtral", EksGpuClusterArgs(stack.spec))
        return {**deploy_workload(stack, api_key, ca, cluster), "clusterName": cluster.cluster_name}

    def pod_artefact_store(self, stack: Any, cluster: Any) -> Any:
        """An S3 bucket and a role the pods' service account gets through EKS Pod Identity (the cluster's
        eks-pod-identity-agent add-on: the program installs it on a cluster it creates; a reused cluster must run
        it, docs/kubernetes.md)."""
        from components.aws_artefact_store import AwsArtefactStore
        from components.pod_artefacts import SERVICE_ACCOUNT, PodArtefactStore

        store = AwsArtefactStore("pixtral-artefacts")
        ready = store.grant_pods("pixtral-pods", cluster.cluster_name, stack.spec.kubernetes.namespace,
                                 SERVICE_ACCOUNT, parent=store)
        return PodArtefactStore(url=store.url, scheme="s3", env={"PIXTRAL_AWS_REGION": aws_region()}, ready=ready)



register(Aws())
register(Eks())
