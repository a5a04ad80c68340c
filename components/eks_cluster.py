"""An EKS cluster (created, or reused by name) with a managed GPU node group, and a provider to deploy into it."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws_shared import assume_role_policy, dns_record, metadata_options, subnets_offering
from components.eks_cluster_autoscaler import EksClusterAutoscaler, EksClusterAutoscalerArgs
from pixtral_deploy.kubeconfig import exec_kubeconfig
from pixtral_deploy.spec import KUBERNETES_VERSION, StackSpec
from pixtral_deploy.storage import AWS_ROOT_IOPS, EKS_CACHE_THROUGHPUT_MIBS

# Bottlerocket's NVIDIA variant ships the driver and the NVIDIA device plugin: no DaemonSet to install.
GPU_AMI_TYPE = "BOTTLEROCKET_x86_64_NVIDIA"
# CoreDNS, the EBS CSI controller and other cluster add-ons cannot run on the tainted GPU nodes.
SYSTEM_INSTANCE_TYPE = "t3.large"
GPU_NODE_LABEL = {"pixtral.dev/gpu-node": "true"}
# Cluster Autoscaler's GPU label on AWS (cloudprovider/aws GPULabel): a new node that carries it but does not yet
# advertise nvidia.com/gpu counts as still starting, so the autoscaler does not add another node for the same pod.
AUTOSCALER_GPU_LABEL = "k8s.amazonaws.com/accelerator"
# Where the cluster's own controllers the program installs (the cluster autoscaler) are steered.
SYSTEM_NODE_LABEL = {"pixtral.dev/system-node": "true"}
STORAGE_CLASS = "pixtral-gp3"
_NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly")
# Every control-plane log type: who called the API (audit), how they authenticated, and what the control plane did.
CONTROL_PLANE_LOGS = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
# The VPC CNI enforces NetworkPolicy only when asked; the workload declares one.
VPC_CNI_CONFIGURATION = json.dumps({"enableNetworkPolicy": "true"})
# Bottlerocket keeps the OS on /dev/xvda and images, containers and the model cache's node disk on /dev/xvdb.
BOTTLEROCKET_DATA_VOLUME = "/dev/xvdb"
EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"
# pixtral:domain's CNAME: a replaced Service gets a new load balancer hostname, which clients then follow within a
# minute.
DOMAIN_TTL_SECONDS = 60


@dataclass
class EksGpuClusterArgs:
    spec: StackSpec


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
        spec = args.spec
        invoke = pulumi.InvokeOptions(parent=self)
        region = aws.get_region_output(opts=invoke).region
        existing = spec.kubernetes.cluster_name
        node_role = self._role("node-role", "ec2.amazonaws.com", _NODE_POLICIES)

        if existing:
            cluster = aws.eks.get_cluster_output(name=existing, opts=invoke)
            cluster_name, subnet_ids = cluster.name, cluster.vpc_config.subnet_ids
            endpoint, ca = cluster.endpoint, cluster.certificate_authorities[0].data
            system_ready: list[pulumi.Resource] = []
        else:
            subnet_ids = self._default_subnets(spec, invoke)
            cluster = self._cluster(subnet_ids, spec.kubernetes.cluster_api_cidrs)
            cluster_name, endpoint, ca = cluster.name, cluster.endpoint, cluster.certificate_authority.data
            system_nodes = self._system_nodes(cluster_name, subnet_ids, node_role)
            addons = self._addons(cluster_name, [system_nodes])
            system_ready = [system_nodes, *addons.values()]
        gpu_nodes = self._gpu_nodes(spec, cluster_name, subnet_ids, node_role)

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
        if not existing:
            # A reused cluster may run its own autoscaler (or Karpenter): a second one would fight it.
            EksClusterAutoscaler(f"{name}-autoscaler", EksClusterAutoscalerArgs(
                cluster_name=cluster_name, region=region, provider=self.provider,
                node_selector=dict(SYSTEM_NODE_LABEL), after=[system_nodes, addons["eks-pod-identity-agent"]],
            ), opts=self._child)
        self.register_outputs({"cluster_name": cluster_name})

    def endpoint_record(self, domain: str, zone_id: str, address: pulumi.Input[str]) -> None:
        """pixtral:domain in the user's Route 53 hosted zone, for the workload's LoadBalancer Service (`address`,
        the load balancer's hostname: AWS load balancers publish no fixed IP). A CNAME rather than an alias A
        record: an alias needs the load balancer's own hosted zone id, which only a lookup of the load balancer
        Kubernetes created would give. A CNAME cannot sit at the zone's apex: the domain is a name below it."""
        dns_record(self._name, zone_id, domain, address, parent=self, record_type="CNAME", ttl=DOMAIN_TTL_SECONDS)

    def _default_subnets(self, spec: StackSpec, invoke: pulumi.InvokeOptions) -> pulumi.Output[list[str]]:
        vpc = spec.aws.vpc_id or aws.ec2.get_vpc_output(default=True, opts=invoke).id
        return aws.ec2.get_subnets_output(filters=[aws.ec2.GetSubnetsFilterArgs(name="vpc-id", values=[vpc])],
                                          opts=invoke).ids

    def _role(self, suffix: str, service: str, policies: tuple[str, ...],
              actions: tuple[str, ...] = ("sts:AssumeRole",)) -> aws.iam.Role:
        role = aws.iam.Role(f"{self._name}-{suffix}", assume_role_policy=assume_role_policy(service, actions),
                            opts=self._child)
        for policy in policies:
            aws.iam.RolePolicyAttachment(f"{self._name}-{suffix}-{policy}", role=role.name,
                                         policy_arn=f"arn:aws:iam::aws:policy/{policy}", opts=self._child)
        return role

    def _cluster(self, subnet_ids: pulumi.Input[list[str]], api_cidrs: tuple[str, ...]) -> aws.eks.Cluster:
        role = self._role("cluster-role", "eks.amazonaws.com", ("AmazonEKSClusterPolicy",))
        # Kubernetes Secrets are encrypted with a key of this stack's own, on top of EBS encryption of etcd.
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        secrets_key = aws.kms.Key(f"{self._name}-secrets", description="EKS Secrets envelope encryption (pixtral)",
                                  enable_key_rotation=True, deletion_window_in_days=7,
                                  policy=account.apply(_account_key_policy), opts=self._child)
        return aws.eks.Cluster(
            self._name,
            role_arn=role.arn,
            version=KUBERNETES_VERSION,
            # pulumi (the Kubernetes provider) and kubectl reach the API from clusterApiCidrs only; the nodes
            # reach it inside the VPC.
            vpc_config=aws.eks.ClusterVpcConfigArgs(subnet_ids=subnet_ids, endpoint_public_access=True,
                                                    public_access_cidrs=list(api_cidrs),
                                                    endpoint_private_access=True),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API", bootstrap_cluster_creator_admin_permissions=True),
            enabled_cluster_log_types=CONTROL_PLANE_LOGS,
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                resources=["secrets"], provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=secrets_key.arn)),
            opts=self._child,
        )

    def _addons(self, cluster_name: pulumi.Input[str], nodes: list[pulumi.Resource]) -> dict[str, aws.eks.Addon]:
        """The VPC CNI with NetworkPolicy enforcement, the Pod Identity agent, and the EBS CSI driver with a role of
        its own, by add-on name."""
        after_nodes = pulumi.ResourceOptions(parent=self, depends_on=nodes)
        # EKS installs the CNI unmanaged at creation; the add-on takes it over with network policy switched on.
        vpc_cni = aws.eks.Addon(f"{self._name}-vpc-cni", cluster_name=cluster_name, addon_name="vpc-cni",
                                configuration_values=VPC_CNI_CONFIGURATION, resolve_conflicts_on_create="OVERWRITE",
                                resolve_conflicts_on_update="OVERWRITE", opts=self._child)
        # Pods cannot reach the node's instance metadata (hop limit 1), so the CSI controller gets its AWS
        # credentials from EKS Pod Identity, for its own service account only.
        agent = aws.eks.Addon(f"{self._name}-pod-identity", cluster_name=cluster_name,
                              addon_name="eks-pod-identity-agent", opts=after_nodes)
        csi_role = self._role("ebs-csi-role", "pods.eks.amazonaws.com", ("AmazonEBSCSIDriverPolicy",),
                              actions=("sts:AssumeRole", "sts:TagSession"))
        ebs_csi = aws.eks.Addon(
            f"{self._name}-ebs-csi", cluster_name=cluster_name, addon_name="aws-ebs-csi-driver",
            pod_identity_associations=[aws.eks.AddonPodIdentityAssociationArgs(
                role_arn=csi_role.arn, service_account=EBS_CSI_SERVICE_ACCOUNT)],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*nodes, agent]))
        return {"vpc-cni": vpc_cni, "eks-pod-identity-agent": agent, "aws-ebs-csi-driver": ebs_csi}

    def _launch_template(self, suffix: str, data_volume_gb: int | None = None) -> aws.ec2.LaunchTemplate:
        """IMDSv2 only, one hop: the node's own processes reach instance metadata, pods (one hop further, in their
        network namespace) do not, so they cannot take the node role's credentials."""
        volumes = [aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
            device_name=BOTTLEROCKET_DATA_VOLUME,
            ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(volume_size=data_volume_gb, volume_type="gp3",
                                                                encrypted="true", delete_on_termination="true"),
        )] if data_volume_gb else None
        return aws.ec2.LaunchTemplate(
            f"{self._name}-{suffix}",
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(**metadata_options()),
            block_device_mappings=volumes,
            update_default_version=True,
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
            labels=SYSTEM_NODE_LABEL,
            launch_template=_pinned(self._launch_template("system-nodes")),
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(desired_size=2, min_size=1, max_size=3),
            opts=self._child,
        )

    def _gpu_nodes(self, spec: StackSpec, cluster_name: pulumi.Input[str], subnet_ids,
                   role: aws.iam.Role) -> aws.eks.NodeGroup:
        fewest, most = spec.gpu_node_range()
        gpu_subnets = subnets_offering([spec.aws.instance_type],
                                       aws.ec2.GetSubnetsFilterArgs(name="subnet-id", values=subnet_ids), self)
        return aws.eks.NodeGroup(
            f"{self._name}-gpu",
            cluster_name=cluster_name,
            node_role_arn=role.arn,
            subnet_ids=gpu_subnets,
            instance_types=[spec.aws.instance_type],
            ami_type=GPU_AMI_TYPE,
            capacity_type="SPOT" if spec.spot else "ON_DEMAND",
            # With a launch template the disk size lives there (EKS refuses disk_size next to one).
            launch_template=_pinned(self._launch_template("gpu-nodes", spec.disk_size_gb)),
            labels={**GPU_NODE_LABEL, AUTOSCALER_GPU_LABEL: spec.gpus.gpu_name},
            taints=[aws.eks.NodeGroupTaintArgs(key="nvidia.com/gpu", value="true", effect="NO_SCHEDULE")],
            # Bounds for the cluster autoscaler (docs/kubernetes.md: it finds the group through the tags EKS puts on
            # it); the desired size is its to change, so `pulumi up` leaves it alone.
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(desired_size=fewest, min_size=fewest, max_size=most),
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["scalingConfig.desiredSize"]),
        )


def _account_key_policy(account_id: str) -> str:
    """KMS's default key policy, written out: the account's IAM policies decide who uses the key (the cluster
    role through EKS), no principal outside the account."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "AccountIamPolicies", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
        "Action": "kms:*", "Resource": "*"}]})


def _pinned(template: aws.ec2.LaunchTemplate) -> aws.eks.NodeGroupLaunchTemplateArgs:
    """A node group on the template's latest version: a template change rolls the nodes."""
    return aws.eks.NodeGroupLaunchTemplateArgs(id=template.id, version=template.latest_version.apply(str))


def _kubeconfig(cluster_name: str, endpoint: str, ca: str, region: str) -> str:
    return exec_kubeconfig(cluster_name, endpoint, ca, {
        "command": "aws", "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region]})
