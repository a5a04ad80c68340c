"""A GKE cluster (created, or reused by name) with a GPU node pool, and a provider to deploy into it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from pixtral_deploy.kubeconfig import exec_kubeconfig
from pixtral_deploy.spec import KUBERNETES_VERSION, Deployment
from pixtral_deploy.storage import GCP_BOOT_DISK_TYPE

# kube-dns, metrics and other system pods cannot run on the tainted GPU nodes.
SYSTEM_MACHINE_TYPE = "e2-standard-4"
# GKE's built-in pd-ssd class: the 25 GB cache is read on every pod start.
STORAGE_CLASS = "premium-rwo"


@dataclass
class GkeGpuClusterArgs:
    deployment: Deployment
    project: str
    zone: str


class GkeGpuCluster(pulumi.ComponentResource):
    """`provider` deploys into the cluster; `node_selector` steers pods onto the GPU node pool."""

    provider: k8s.Provider
    cluster_name: pulumi.Output[str]
    node_selector: dict[str, str]
    storage_class: str

    def __init__(self, name: str, args: GkeGpuClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pixtral:gcp:GkeGpuCluster", name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        deployment = args.deployment
        existing = deployment.kubernetes.cluster_name

        if existing:
            cluster = gcp.container.get_cluster_output(name=existing, location=args.zone, project=args.project,
                                                       opts=pulumi.InvokeOptions(parent=self))
            cluster_name, endpoint = cluster.name, cluster.endpoint
            ca = cluster.master_auths[0].cluster_ca_certificate
            ready: list[pulumi.Resource] = []
        else:
            created = self._cluster(args)
            cluster_name, endpoint = created.name, created.endpoint
            ca = created.master_auth.cluster_ca_certificate
            ready = [self._system_pool(created.name, args)]
        gpu_pool = self._gpu_pool(deployment, cluster_name, args)

        self.cluster_name = cluster_name
        # GKE labels GPU nodes with their accelerator; selecting on it keeps pods off other GPU pools.
        self.node_selector = {"cloud.google.com/gke-accelerator": deployment.gcp.accelerator_type}
        self.storage_class = STORAGE_CLASS
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=pulumi.Output.all(cluster_name, endpoint, ca).apply(lambda v: _kubeconfig(*v)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[gpu_pool, *ready]),
        )
        self.register_outputs({"cluster_name": cluster_name})

    def _cluster(self, args: GkeGpuClusterArgs) -> gcp.container.Cluster:
        return gcp.container.Cluster(
            self._name,
            project=args.project,
            location=args.zone,
            min_master_version=KUBERNETES_VERSION,
            # Node pools are declared separately, so they can change without recreating the cluster.
            remove_default_node_pool=True,
            initial_node_count=1,
            deletion_protection=False,
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel="REGULAR"),
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=f"{args.project}.svc.id.goog"),
            opts=self._child,
        )

    def _system_pool(self, cluster_name: pulumi.Input[str], args: GkeGpuClusterArgs) -> gcp.container.NodePool:
        return gcp.container.NodePool(
            f"{self._name}-system",
            cluster=cluster_name,
            project=args.project,
            location=args.zone,
            node_count=1,
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=SYSTEM_MACHINE_TYPE,
                oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
                workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"),
            ),
            opts=self._child,
        )

    def _gpu_pool(self, deployment: Deployment, cluster_name: pulumi.Input[str],
                  args: GkeGpuClusterArgs) -> gcp.container.NodePool:
        settings = deployment.gcp
        return gcp.container.NodePool(
            f"{self._name}-gpu",
            cluster=cluster_name,
            project=args.project,
            location=args.zone,
            node_count=deployment.kubernetes.nodes_needed(deployment.scaling.max_replicas),
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=settings.machine_type,
                spot=deployment.spot,
                disk_size_gb=deployment.disk_size_gb,
                disk_type=GCP_BOOT_DISK_TYPE,
                guest_accelerators=[gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
                    type=settings.accelerator_type,
                    count=settings.accelerator_count,
                    # GKE installs and updates the NVIDIA driver itself: no driver DaemonSet to manage.
                    gpu_driver_installation_config=gcp.container
                    .NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(gpu_driver_version="LATEST"),
                )],
                taints=[gcp.container.NodePoolNodeConfigTaintArgs(key="nvidia.com/gpu", value="present",
                                                                  effect="NO_SCHEDULE")],
                oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
                workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"),
            ),
            opts=self._child,
        )


def _kubeconfig(cluster_name: str, endpoint: str, ca: str) -> str:
    return exec_kubeconfig(cluster_name, f"https://{endpoint}", ca,
                           {"command": "gke-gcloud-auth-plugin", "provideClusterInfo": True})
