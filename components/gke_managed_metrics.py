"""GKE: what `autoscale` needs on a new cluster, with no manual step: vLLM's metrics in Google Cloud Managed Service
for Prometheus, and KEDA reading them.

- A PodMonitoring makes GKE's managed collectors scrape the pods' /metrics with the API key from the workload's
  Secret (the key guard protects /metrics), and a Role lets exactly those collectors read exactly that Secret.
- KEDA (the maintained Helm chart, components/keda.py) runs on the system nodes; its operator signs in to Managed
  Prometheus's query API as a Google service account through Workload Identity, with `roles/monitoring.viewer` and
  nothing else.
- A TriggerAuthentication tells the ScaledObject's Prometheus trigger to use that identity.

Why KEDA rather than an HPA on GKE's custom-metrics adapter: the adapter ships as a manifest, not a maintained chart,
and KEDA is the same ScaledObject the `kubernetes` and `eks` targets declare.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from components.gcp_shared import service_account_id
from components.keda import KEDA_NAMESPACE, KEDA_OPERATOR_ACCOUNT, keda_release

# Managed Prometheus's collectors run as this service account (GKE's managed collection).
GMP_COLLECTOR = {"kind": "ServiceAccount", "name": "collector", "namespace": "gmp-system"}
# Often enough for a rate over the contract's 60 s window to have four samples.
SCRAPE_INTERVAL = "15s"


def query_api(project: str) -> str:
    """Managed Prometheus's Prometheus-compatible query API for the project."""
    return f"https://monitoring.googleapis.com/v1/projects/{project}/location/global/prometheus"


@dataclass
class GkeManagedMetricsArgs:
    project: str
    namespace: pulumi.Input[str]
    secret_name: pulumi.Input[str]
    selector: dict[str, str]
    labels: dict[str, str]
    instance: str = "pixtral"


class GkeManagedMetrics(pulumi.ComponentResource):
    """`prometheus_url` and `trigger_authentication` are what the ScaledObject's trigger needs; `ready` what it
    waits for (KEDA's CRDs)."""

    prometheus_url: str
    trigger_authentication: pulumi.Output[str]
    ready: list[pulumi.Resource]

    def __init__(self, name: str, args: GkeManagedMetricsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pixtral:gcp:GkeManagedMetrics", name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        self._scrape(args)
        keda = self._keda(args, self._reader(args))
        auth = k8s.apiextensions.CustomResource(
            f"{name}-gcp-identity", api_version="keda.sh/v1alpha1", kind="TriggerAuthentication",
            metadata={"name": f"{name}-gcp-identity", "namespace": args.namespace, "labels": args.labels},
            spec={"podIdentity": {"provider": "gcp"}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[keda]))
        self.prometheus_url = query_api(args.project)
        self.trigger_authentication = auth.metadata["name"]
        self.ready = [keda, auth]
        self.register_outputs({})

    def _scrape(self, args: GkeManagedMetricsArgs) -> None:
        metadata = {"namespace": args.namespace, "labels": args.labels}
        k8s.apiextensions.CustomResource(
            f"{self._name}-vllm", api_version="monitoring.googleapis.com/v1", kind="PodMonitoring",
            metadata={**metadata, "name": f"{self._name}-vllm"},
            spec={
                "selector": {"matchLabels": args.selector},
                "endpoints": [{"port": "http", "path": "/metrics", "interval": SCRAPE_INTERVAL, "authorization": {
                    "type": "Bearer",
                    "credentials": {"secret": {"name": args.secret_name, "key": "VLLM_API_KEY"}}}}],
            },
            opts=self._child)
        # The collectors read a Secret only where a Role lets them: this one Secret, read-only.
        role = k8s.rbac.v1.Role(
            f"{self._name}-read-key", metadata={**metadata, "name": f"{self._name}-read-key"},
            rules=[{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [args.secret_name],
                    "verbs": ["get", "list", "watch"]}],
            opts=self._child)
        k8s.rbac.v1.RoleBinding(
            f"{self._name}-read-key", metadata={**metadata, "name": f"{self._name}-read-key"},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role.metadata["name"]},
            subjects=[GMP_COLLECTOR], opts=self._child)

    def _reader(self, args: GkeManagedMetricsArgs) -> gcp.serviceaccount.Account:
        account = gcp.serviceaccount.Account(
            f"{self._name}-keda", project=args.project, account_id=service_account_id(args.instance, "keda"),
            display_name="KEDA reading vLLM's metrics from Managed Prometheus", opts=self._child)
        gcp.projects.IAMMember(f"{self._name}-keda-monitoring-viewer", project=args.project,
                               role="roles/monitoring.viewer",
                               member=pulumi.Output.concat("serviceAccount:", account.email), opts=self._child)
        gcp.serviceaccount.IAMMember(
            f"{self._name}-keda-workload-identity", service_account_id=account.name,
            role="roles/iam.workloadIdentityUser",
            member=f"serviceAccount:{args.project}.svc.id.goog[{KEDA_NAMESPACE}/{KEDA_OPERATOR_ACCOUNT}]",
            opts=self._child)
        return account

    def _keda(self, args: GkeManagedMetricsArgs, reader: gcp.serviceaccount.Account) -> k8s.helm.v3.Release:
        return keda_release(f"{self._name}-keda", self._child,
                            operator_annotations={"iam.gke.io/gcp-service-account": reader.email})
