"""Scale to zero on Kubernetes (`autoscale.minReplicas: 0`, docs/scaling.md): the KEDA HTTP add-on's interceptor
stands in front of the pods, holds a request that finds none ready, and its external scaler tells KEDA to wake the
set (pixtral:kubernetes:WakeOnRequest).

Declared here: an InterceptorRoute (http.keda.sh/v1beta1, the add-on's routing object since v0.14; its older
HTTPScaledObject is deprecated there) that sends the interceptor's requests to the workload's Service, with the
wait for a cold start and the wait for a response from the fleet plan; and the Service the user reaches, in the
add-on's namespace, selecting the interceptor's pods. The ScaledObject (components/pod_autoscaler.py) gets the
add-on's `external-push` trigger beside its Prometheus one.

Names and ports are the add-on chart's (kedacore/charts, http-add-on/ at keda-add-ons-http 0.15.0: templates/
interceptor/service-proxy.yaml, templates/scaler/service.yaml, values.yaml), installed as the chart's README does:
release `http-add-on` in namespace `keda`, beside KEDA.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from pixtral_deploy.fleet_plan import fleet_plan
from pixtral_deploy.spec import StackSpec

HTTP_ADD_ON_CHART = "keda-add-ons-http"
# Chart 0.15.0 runs add-on v0.15.0, whose end-to-end tests run against KEDA 2.20.0 (its Makefile's KEDA_VERSION):
# the minor of the KEDA chart the program pins (components/gke_managed_metrics.py).
HTTP_ADD_ON_CHART_VERSION = "0.15.0"
HTTP_ADD_ON_RELEASE = "http-add-on"
HTTP_ADD_ON_NAMESPACE = "keda"
# The chart's external scaler Service (`<chart>-<scaler.service>`, gRPC port 9090), which KEDA's trigger calls.
SCALER_ADDRESS = f"{HTTP_ADD_ON_CHART}-external-scaler.{HTTP_ADD_ON_NAMESPACE}:9090"
# The interceptor's pods (the chart's proxy Service selects them by these labels) and their proxy port's name.
INTERCEPTOR_SELECTOR = {"app.kubernetes.io/component": "interceptor", "app.kubernetes.io/name": "http-add-on",
                        "app.kubernetes.io/instance": HTTP_ADD_ON_RELEASE}
INTERCEPTOR_PROXY_PORT = "proxy"
# The add-on's concurrency metric, as a wake signal only: no replica ever holds this many requests in flight (the
# CRD's targetValue is an int32), so its share of KEDA's HPA asks for one replica while any request is in flight
# and never more. The Prometheus trigger keeps sizing the set on the user's target, with the same meaning as for
# minReplicas 1 or more.
WAKE_ONLY_CONCURRENCY = 2**31 - 1


def scales_to_zero(spec: StackSpec) -> bool:
    autoscale = spec.scaling.autoscale
    return autoscale is not None and autoscale.min_replicas == 0


def interceptor_timeouts(spec: StackSpec) -> dict[str, str]:
    """The route's timeouts (InterceptorRoute spec.timeouts), from the fleet plan: a request that finds no ready
    pod waits up to the plan's health grace (twice the cold-start estimate; 30 minutes where the cluster's node,
    image and download are unknown); a ready pod has the plan's response timeout to send its headers (a
    non-streamed answer comes after the whole generation; the add-on's default, 300 s, would cut the longest); no
    total deadline, so a streamed answer runs as long as it generates."""
    plan = fleet_plan(spec)
    return {"readiness": f"{plan.health_grace_seconds}s", "responseHeader": f"{plan.response_timeout_seconds}s",
            "request": "0s"}


def route_hosts(spec: StackSpec) -> list[str]:
    """The Host headers the route answers: pixtral:domain, else any (the interceptor's catch-all: a client calls the
    load balancer's address, which is known only once it exists)."""
    return [spec.tls.domain] if spec.tls.domain else ["*"]


@dataclass
class WakeOnRequestArgs:
    spec: StackSpec
    namespace: pulumi.Input[str]
    service_name: pulumi.Input[str]
    labels: dict[str, str]


class WakeOnRequest(pulumi.ComponentResource):
    """`route` names the InterceptorRoute (the ScaledObject's trigger reads it); `service` is what the user
    reaches."""

    route: pulumi.Output[str]
    service: k8s.core.v1.Service

    def __init__(self, name: str, args: WakeOnRequestArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pixtral:kubernetes:WakeOnRequest", name, None, opts)
        # Children do not inherit a component's dependsOn: the route waits for the add-on's CRD (gke's install).
        child = pulumi.ResourceOptions(parent=self, depends_on=opts.depends_on if opts else None)
        spec = args.spec
        route = k8s.apiextensions.CustomResource(
            name, api_version="http.keda.sh/v1beta1", kind="InterceptorRoute",
            metadata={"name": name, "namespace": args.namespace, "labels": args.labels},
            spec={
                "target": {"service": args.service_name, "portName": "http"},
                "rules": [{"hosts": route_hosts(spec)}],
                "scalingMetric": {"concurrency": {"targetValue": WAKE_ONLY_CONCURRENCY}},
                "timeouts": interceptor_timeouts(spec),
            },
            opts=child)
        self.route = route.metadata["name"]
        self.service = self._entry(name, spec, args.labels, child)
        self.register_outputs({"route": self.route})

    @staticmethod
    def _entry(name: str, spec: StackSpec, labels: dict[str, str],
               child: pulumi.ResourceOptions) -> k8s.core.v1.Service:
        """The user's Service, where the interceptor runs: the API port to the interceptor's proxy port, with the
        workload Service's type and sources. It does not wait for a selected pod (the default await): at zero
        replicas the interceptor is what answers."""
        pods = spec.kubernetes
        body = {"type": pods.service_type, "selector": INTERCEPTOR_SELECTOR,
                "ports": [{"name": "http", "port": spec.server.port, "targetPort": INTERCEPTOR_PROXY_PORT,
                           "protocol": "TCP"}]}
        annotations = {"pulumi.com/skipAwait": "true"}
        if pods.service_type == "LoadBalancer":
            body["loadBalancerSourceRanges"] = list(spec.allowed_cidrs)
            annotations = {"pulumi.com/waitFor": "jsonpath={.status.loadBalancer.ingress}"}
        metadata = {"name": f"{pods.namespace}-{name}", "namespace": HTTP_ADD_ON_NAMESPACE, "labels": labels,
                    "annotations": annotations}
        return k8s.core.v1.Service(f"{name}-entry", metadata=metadata, spec=body, opts=child)
