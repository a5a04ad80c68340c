"""An EKS cluster (created, or reused by name) with a managed GPU node group, and a provider to deploy into it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws_shared import assume_role_policy, subnets_offering
from pixtral_deploy.kubeconfig import exec_kubeconfig
from pixtral_deploy.spec import KUBERNETES_VERSION, Deployment
from pixtral_deploy.storage import AWS_ROOT_IOPS, EKS_CACHE_THROUGHPUT_MIBS

# Bottlerocket's NVIDIA variant ships the driver and the NVIDIA device plugin: no DaemonSet to install.
GPU_AMI_TYPE = "BOTTLEROCKET_x86_64_NVIDIA"
# CoreDNS, the EBS CSI controller and other cluster add-ons cannot run on the tainted GPU nodes.
SYSTEM_INSTANCE_TYPE = "t3.large"
GPU_NODE_LABEL = {"pixtral.dev/gpu-node": "true"}
STORAGE_CLASS = "pixtral-gp3"
_NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly",
                  "AmazonEBSCSIDriverPolicy")


@dataclass
class EksGpuClusterArgs:
    deployment: Deployment


class EksGpuCluster(pulumi.ComponentResource):
    """`provider` deploys into the cluster; `node_selector` steers pods onto the GPU node group."""

    provider: k8s.Provider
    cluster_name: pulumi.Output[str]
    node_selector: dict[str, str]
    storage_class: str

    def __init__(self, name: str, args: EksGpuClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pixtral:aws:EksGpuCluster", name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        deployment = args.deployment
        invoke = pulumi.InvokeOptions(parent=self)
        region = aws.get_region_output(opts=invoke).region
        existing = deployment.kubernetes.cluster_name
        node_role = self._role("node-role", "ec2.amazonaws.com", _NODE_POLICIES)

        if existing:
            cluster = aws.eks.get_cluster_output(name=existing, opts=invoke)
            cluster_name, subnet_ids = cluster.name, cluster.vpc_config.subnet_ids
            endpoint, ca = cluster.endpoint, cluster.certificate_authorities[0].data
            system_ready: list[pulumi.Resource] = []
        else:
            subnet_ids = self._default_subnets(deployment, invoke)
            cluster = self._cluster(subnet_ids)
            cluster_name, endpoint, ca = cluster.name, cluster.endpoint, cluster.certificate_authority.data
            system_ready = [self._system_nodes(cluster_name, subnet_ids, node_role)]
            system_ready.append(aws.eks.Addon(f"{name}-ebs-csi", cluster_name=cluster_name,
                                              addon_name="aws-ebs-csi-driver",
                                              opts=pulumi.ResourceOptions(parent=self, depends_on=system_ready)))
        gpu_nodes = self._gpu_nodes(deployment, cluster_name, subnet_ids, node_role)

        self.cluster_name = cluster_name
        self.node_selector = dict(GPU_NODE_LABEL)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=pulumi.Output.all(cluster_name, endpoint, ca, region).apply(lambda v: _kubeconfig(*v)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[gpu_nodes, *system_ready]),
        )
        # gp3 with provisioned throughput: EKS has no default StorageClass since 1.30, and gp2's burst credits
        # would run out halfway through the first 25 GB download.
        self.storage_class = STORAGE_CLASS
        k8s.storage.v1.StorageClass(
            f"{name}-gp3",
            metadata={"name": STORAGE_CLASS},
            provisioner="ebs.csi.aws.com",
            parameters={"type": "gp3", "throughput": str(EKS_CACHE_THROUGHPUT_MIBS), "iops": str(AWS_ROOT_IOPS),
                        "encrypted": "true"},
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider),
        )
        self.register_outputs({"cluster_name": cluster_name})

    def _default_subnets(self, deployment: Deployment, invoke: pulumi.InvokeOptions) -> pulumi.Output[list[str]]:
        vpc = deployment.aws.vpc_id or aws.ec2.get_vpc_output(default=True, opts=invoke).id
        return aws.ec2.get_subnets_output(filters=[aws.ec2.GetSubnetsFilterArgs(name="vpc-id", values=[vpc])],
                                          opts=invoke).ids

    def _role(self, suffix: str, service: str, policies: tuple[str, ...]) -> aws.iam.Role:
        role = aws.iam.Role(f"{self._name}-{suffix}", assume_role_policy=assume_role_policy(service), opts=self._child)
        for policy in policies:
            aws.iam.RolePolicyAttachment(f"{self._name}-{suffix}-{policy}", role=role.name,
                                         policy_arn=f"arn:aws:iam::aws:policy/{policy}", opts=self._child)
        return role

    def _cluster(self, subnet_ids: pulumi.Input[list[str]]) -> aws.eks.Cluster:
        role = self._role("cluster-role", "eks.amazonaws.com", ("AmazonEKSClusterPolicy",))
        return aws.eks.Cluster(
            self._name,
            role_arn=role.arn,
            version=KUBERNETES_VERSION,
            vpc_config=aws.eks.ClusterVpcConfigArgs(subnet_ids=subnet_ids, endpoint_public_access=True),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API", bootstrap_cluster_creator_admin_permissions=True),
            opts=self._child,
        )

    def _system_nodes(self, cluster_name: pulumi.Input[str], subnet_ids, role: aws.iam.Role) -> aws.eks.NodeGroup:
        return aws.eks.NodeGroup(
            f"{self._name}-system",
            cluster_name=cluster_name,
            node_role_arn=role.arn,
            subnet_ids=subnet_ids,
            instance_types=[SYSTEM_INSTANCE_TYPE],
            ami_type="AL2023_x86_64_STANDARD",
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(desired_size=2, min_size=1, max_size=3),
            opts=self._child,
        )

    def _gpu_nodes(self, deployment: Deployment, cluster_name: pulumi.Input[str], subnet_ids,
                   role: aws.iam.Role) -> aws.eks.NodeGroup:
        count = deployment.kubernetes.nodes_needed(deployment.scaling.max_replicas)
        gpu_subnets = subnets_offering([deployment.aws.instance_type],
                                       aws.ec2.GetSubnetsFilterArgs(name="subnet-id", values=subnet_ids), self)
        return aws.eks.NodeGroup(
            f"{self._name}-gpu",
            cluster_name=cluster_name,
            node_role_arn=role.arn,
            subnet_ids=gpu_subnets,
            instance_types=[deployment.aws.instance_type],
            ami_type=GPU_AMI_TYPE,
            capacity_type="SPOT" if deployment.spot else "ON_DEMAND",
            disk_size=deployment.disk_size_gb,
            labels=GPU_NODE_LABEL,
            taints=[aws.eks.NodeGroupTaintArgs(key="nvidia.com/gpu", value="true", effect="NO_SCHEDULE")],
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(desired_size=count, min_size=count, max_size=count),
            opts=self._child,
        )


def _kubeconfig(cluster_name: str, endpoint: str, ca: str, region: str) -> str:
    return exec_kubeconfig(cluster_name, endpoint, ca, {
        "command": "aws", "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region]})
