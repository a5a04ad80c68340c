"""EKS: the Kubernetes Cluster Autoscaler on the cluster the program creates, so that the GPU node group follows the
pods (a scaled-out pod, a surge rollout's new set) with no manual step. GKE's is built in; EKS has none.

- The maintained chart (kubernetes/autoscaler's `cluster-autoscaler`), pinned to the release for the cluster's
  Kubernetes minor: the autoscaler simulates the scheduler of its own minor, so it follows the cluster's version.
- It finds the node groups by the tags EKS puts on every managed node group's Auto Scaling group
  (`k8s.io/cluster-autoscaler/enabled`, `k8s.io/cluster-autoscaler/<cluster>`), so no group is named here.
- Its AWS rights come from EKS Pod Identity for its own service account: read-only calls anywhere, and resizing
  only the Auto Scaling groups tagged as this cluster's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws_shared import assume_role_policy

CHART = "cluster-autoscaler"
# Chart 9.53.0 ships Cluster Autoscaler 1.34.2 (its appVersion): the newest chart for Kubernetes 1.34
# (spec.KUBERNETES_VERSION); chart 9.54.0 moves to 1.35. Bump both together.
CHART_VERSION = "9.53.0"
APP_VERSION = "1.34.2"
CHART_REPO = "https://kubernetes.github.io/autoscaler"
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "cluster-autoscaler"
# The tag EKS gives a managed node group's Auto Scaling group for its cluster, with the value `owned`.
CLUSTER_TAG_PREFIX = "k8s.io/cluster-autoscaler/"
# What auto-discovery and scaling read, in the autoscaler's AWS README's recommended policy: the groups, their
# launch templates and instance types, and (for a managed node group at zero nodes) its labels and taints.
READ_ACTIONS = (
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations",
    "autoscaling:DescribeScalingActivities",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:GetInstanceTypesFromInstanceRequirements",
)
# The only changes it makes: a group's desired size, and removing one drained node from its group.
WRITE_ACTIONS = ("autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup")
# Flags (FAQ.md "What are the parameters to CA?" at cluster-autoscaler-1.34.2); the chart passes each as --KEY=VALUE.
FLAGS = {
    # One GPU group per zone is the way to keep a pod's ReadWriteOnce claim and a new node in the same zone
    # (docs/kubernetes.md, `eks`); with such groups this keeps them the same size instead of filling one zone first.
    "balance-similar-node-groups": "true",
    # Where more than one group could take a pending pod (groups a user adds), grow the one that leaves the least
    # CPU and memory idle: GPU nodes are the dear ones. 1.34's default too, stated so that a chart bump cannot
    # change it unseen.
    "expander": "least-waste",
}


@dataclass
class EksClusterAutoscalerArgs:
    cluster_name: pulumi.Input[str]
    region: pulumi.Input[str]
    provider: k8s.Provider
    # Where the controller runs: the system node group's label (the GPU nodes are tainted and kept for vLLM).
    node_selector: dict[str, str]
    # The system nodes and the eks-pod-identity-agent add-on: the controller's pod needs both to start with its
    # AWS identity.
    after: list[pulumi.Resource]


class EksClusterAutoscaler(pulumi.ComponentResource):
    def __init__(self, name: str, args: EksClusterAutoscalerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pixtral:aws:EksClusterAutoscaler", name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        role = self._role(args)
        # EKS hands a pod its role's credentials only if the association exists when the pod is created: the
        # release waits for it.
        association = aws.eks.PodIdentityAssociation(
            f"{name}-identity", cluster_name=args.cluster_name, namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT, role_arn=role.arn, opts=self._child)
        k8s.helm.v3.Release(
            f"{name}-chart",
            name=CHART,
            chart=CHART,
            version=CHART_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPO),
            namespace=NAMESPACE,
            values=chart_values(args.cluster_name, args.region, args.node_selector),
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider,
                                        depends_on=[*args.after, association]))
        self.register_outputs({})

    def _role(self, args: EksClusterAutoscalerArgs) -> aws.iam.Role:
        role = aws.iam.Role(
            f"{self._name}-role",
            assume_role_policy=assume_role_policy("pods.eks.amazonaws.com", ("sts:AssumeRole", "sts:TagSession")),
            opts=self._child)
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        aws.iam.RolePolicy(
            f"{self._name}-scaling",
            role=role.id,
            policy=pulumi.Output.all(args.cluster_name, args.region, account).apply(lambda v: scaling_policy(*v)),
            opts=self._child)
        return role


def scaling_policy(cluster_name: str, region: str, account_id: str) -> str:
    """Least privilege for auto-discovery: reads anywhere (they name no resource, or take none), the node group
    description on this cluster's groups only, and writes only on this account and region's Auto Scaling groups
    tagged as this cluster's (EKS tags a managed node group's group `k8s.io/cluster-autoscaler/<cluster>` =
    `owned`): the group names are EKS's, so the tag is what scopes them."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "DiscoverGroups", "Effect": "Allow", "Action": list(READ_ACTIONS), "Resource": "*"},
        {"Sid": "ReadManagedNodeGroupsAtZero", "Effect": "Allow", "Action": "eks:DescribeNodegroup",
         "Resource": f"arn:aws:eks:{region}:{account_id}:nodegroup/{cluster_name}/*/*"},
        {"Sid": "ResizeThisClustersGroups", "Effect": "Allow", "Action": list(WRITE_ACTIONS),
         "Resource": f"arn:aws:autoscaling:{region}:{account_id}:autoScalingGroup:*:autoScalingGroupName/*",
         "Condition": {"StringEquals": {f"aws:ResourceTag/{CLUSTER_TAG_PREFIX}{cluster_name}": "owned"}}},
    ]})


def chart_values(cluster_name: pulumi.Input[str], region: pulumi.Input[str],
                 node_selector: dict[str, str]) -> dict:
    """The chart's values: AWS auto-discovery of this cluster's groups, in this region, as the service account the
    Pod Identity association names, on the system nodes."""
    return {
        "cloudProvider": "aws",
        "awsRegion": region,
        "autoDiscovery": {"clusterName": cluster_name},
        "rbac": {"serviceAccount": {"create": True, "name": SERVICE_ACCOUNT}},
        "nodeSelector": node_selector,
        "extraArgs": FLAGS,
    }
