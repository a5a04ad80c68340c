"""A GKE cluster (created, or reused by name) with a GPU node pool, and a provider to deploy into it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from components.gcp_shared import dns_record, service_account_id, stack_labels
from pixtral_deploy.kubeconfig import exec_kubeconfig
from pixtral_deploy.spec import KUBERNETES_VERSION, StackSpec
from pixtral_deploy.storage import GCP_BOOT_DISK_TYPE

# kube-dns, metrics and other system pods cannot run on the tainted GPU nodes.
SYSTEM_MACHINE_TYPE = "e2-standard-4"
# GKE's built-in pd-ssd class: the 25 GB cache is read on every pod start.
STORAGE_CLASS = "premium-rwo"
# Google's least-privilege role for a node service account (logs, metrics, resource metadata, autoscaling
# metrics). Nothing more: the images come from public registries and the pods reach Google APIs, if ever, through
# Workload Identity, not through the node.
NODE_ROLES = ("roles/container.defaultNodeServiceAccount",)
# With a dedicated, IAM-limited service account the access scope is not the limit; Google recommends cloud-platform.
NODE_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
# pixtral:domain's record: the Service's IP is not reserved, and a replaced Service gets a new one, which clients
# then follow within a minute.
DOMAIN_TTL_SECONDS = 60


@dataclass
class GkeGpuClusterArgs:
    spec: StackSpec
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
        self._project = args.project
        self._child = pulumi.ResourceOptions(parent=self)
        spec = args.spec
        existing = spec.kubernetes.cluster_name
        node_account = self._node_service_account(args)

        if existing:
            cluster = gcp.container.get_cluster_output(name=existing, location=args.zone, project=args.project,
                                                       opts=pulumi.InvokeOptions(parent=self))
            cluster_name, endpoint = cluster.name, cluster.endpoint
            ca = cluster.master_auths[0].cluster_ca_certificate
            ready: list[pulumi.Resource] = []
        else:
            created = self._cluster(args, node_account)
            cluster_name, endpoint = created.name, created.endpoint
            ca = created.master_auth.cluster_ca_certificate
            ready = [self._system_pool(created.name, args, node_account)]
        gpu_pool = self._gpu_pool(spec, cluster_name, args, node_account)

        self.cluster_name = cluster_name
        # GKE labels GPU nodes with their accelerator; selecting on it keeps pods off other GPU pools.
        self.node_selector = {"cloud.google.com/gke-accelerator": spec.gcp.accelerator_type}
        self.storage_class = STORAGE_CLASS
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=pulumi.Output.all(cluster_name, endpoint, ca).apply(lambda v: _kubeconfig(*v)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[gpu_pool, *ready]),
        )
        self.register_outputs({"cluster_name": cluster_name})

    def endpoint_record(self, domain: str, zone: str, address: pulumi.Input[str]) -> None:
        """pixtral:domain in the user's Cloud DNS managed zone: an A record to the workload's LoadBalancer Service
        (`address`, the IP of the network load balancer GKE makes for it)."""
        dns_record(self._name, self._project, zone, domain, address, parent=self, ttl=DOMAIN_TTL_SECONDS)

    def _node_service_account(self, args: GkeGpuClusterArgs) -> gcp.serviceaccount.Account:
        """The nodes' own identity, instead of the Compute Engine default account (Editor on the project)."""
        account = gcp.serviceaccount.Account(
            f"{self._name}-nodes", project=args.project,
            account_id=service_account_id(pulumi.get_stack(), f"{self._name}-nodes"),
            display_name=f"Pixtral GKE nodes ({pulumi.get_stack()})", opts=self._child)
        for role in NODE_ROLES:
            gcp.projects.IAMMember(f"{self._name}-nodes-{role.split('/')[-1]}", project=args.project, role=role,
                                   member=account.email.apply(lambda email: f"serviceAccount:{email}"),
                                   opts=self._child)
        return account

    def _cluster(self, args: GkeGpuClusterArgs, node_account: gcp.serviceaccount.Account) -> gcp.container.Cluster:
        cidrs = args.spec.kubernetes.cluster_api_cidrs
        return gcp.container.Cluster(
            self._name,
            project=args.project,
            location=args.zone,
            min_master_version=KUBERNETES_VERSION,
            # Node pools are declared separately, so they can change without recreating the cluster.
            remove_default_node_pool=True,
            initial_node_count=1,
            # The default pool lives only until the first apply removes it, but it runs meanwhile: as hardened
            # as the pools that replace it. GKE later reports a remaining pool's settings here, so only settings
            # that every pool shares are set, or the next preview would want to replace the cluster.
            node_config=gcp.container.ClusterNodeConfigArgs(
                service_account=node_account.email,
                oauth_scopes=NODE_SCOPES,
                workload_metadata_config=gcp.container.ClusterNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"),
                shielded_instance_config=gcp.container.ClusterNodeConfigShieldedInstanceConfigArgs(
                    enable_secure_boot=True, enable_integrity_monitoring=True),
            ),
            deletion_protection=False,
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel="REGULAR"),
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=f"{args.project}.svc.id.goog"),
            # Dataplane V2 enforces the workload's NetworkPolicy; the Calico add-on must then stay off.
            datapath_provider="ADVANCED_DATAPATH",
            network_policy=gcp.container.ClusterNetworkPolicyArgs(enabled=False),
            # VPC-native (alias IP) pod addressing, which Dataplane V2 requires; GKE picks the ranges.
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(stack_type="IPV4"),
            master_authorized_networks_config=gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
                cidr_blocks=[gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                    cidr_block=cidr, display_name="pixtral:clusterApiCidrs") for cidr in cidrs]),
            # Only IAM identities reach the API: no static client certificate that would never expire.
            master_auth=gcp.container.ClusterMasterAuthArgs(
                client_certificate_config=gcp.container.ClusterMasterAuthClientCertificateConfigArgs(
                    issue_client_certificate=False)),
            enable_shielded_nodes=True,
            resource_labels=stack_labels(),
            # Managed Prometheus collects vLLM's metrics for `autoscale` (GKE's default since 1.27; stated here).
            monitoring_config=gcp.container.ClusterMonitoringConfigArgs(
                enable_components=["SYSTEM_COMPONENTS"],
                managed_prometheus=gcp.container.ClusterMonitoringConfigManagedPrometheusArgs(enabled=True)),
            opts=self._child,
        )

    def _system_pool(self, cluster_name: pulumi.Input[str], args: GkeGpuClusterArgs,
                     node_account: gcp.serviceaccount.Account) -> gcp.container.NodePool:
        return gcp.container.NodePool(
            f"{self._name}-system",
            cluster=cluster_name,
            project=args.project,
            location=args.zone,
            node_count=1,
            management=_MANAGEMENT,
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=SYSTEM_MACHINE_TYPE,
                service_account=node_account.email,
                oauth_scopes=NODE_SCOPES,
                workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"),
                shielded_instance_config=_SHIELDED,
            ),
            opts=self._child,
        )

    def _gpu_pool(self, spec: StackSpec, cluster_name: pulumi.Input[str], args: GkeGpuClusterArgs,
                  node_account: gcp.serviceaccount.Account) -> gcp.container.NodePool:
        machines = spec.gcp
        fewest, most = spec.gpu_node_range()
        return gcp.container.NodePool(
            f"{self._name}-gpu",
            cluster=cluster_name,
            project=args.project,
            location=args.zone,
            # The cluster autoscaler keeps the pool between the nodes the fewest and the most replicas need.
            node_count=fewest,
            autoscaling=gcp.container.NodePoolAutoscalingArgs(min_node_count=fewest, max_node_count=most),
            management=_MANAGEMENT,
            node_config=gcp.container.NodePoolNodeConfigArgs(
                machine_type=machines.machine_type,
                spot=spec.spot,
                disk_size_gb=spec.disk_size_gb,
                disk_type=GCP_BOOT_DISK_TYPE,
                guest_accelerators=[gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
                    type=machines.accelerator_type,
                    count=machines.accelerator_count,
                    # GKE installs and updates the NVIDIA driver itself: no driver DaemonSet to manage.
                    gpu_driver_installation_config=gcp.container
                    .NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(gpu_driver_version="LATEST"),
                )],
                taints=[gcp.container.NodePoolNodeConfigTaintArgs(key="nvidia.com/gpu", value="present",
                                                                  effect="NO_SCHEDULE")],
                service_account=node_account.email,
                oauth_scopes=NODE_SCOPES,
                workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"),
                # COS GPU nodes load the NVIDIA driver GKE installs, which is signed: Secure Boot keeps it working.
                shielded_instance_config=_SHIELDED,
            ),
            # The node count is the cluster autoscaler's from creation on; the program sets its bounds.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["nodeCount"]),
        )


_MANAGEMENT = gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True)
_SHIELDED = gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(enable_secure_boot=True,
                                                                       enable_integrity_monitoring=True)


def _kubeconfig(cluster_name: str, endpoint: str, ca: str) -> str:
    return exec_kubeconfig(cluster_name, f"https://{endpoint}", ca,
                           {"command": "gke-gcloud-auth-plugin", "provideClusterInfo": True})
