"""What scales the pods on vLLM's own load: a KEDA ScaledObject on a Prometheus query, or an autoscaling/v2
HorizontalPodAutoscaler on a Pods metric of the custom metrics API (pixtral:autoscaler).

Both follow the contract (docs/scaling.md): desired replicas = ceil(load / target per replica), clipped to
[minReplicas, maxReplicas]. The queue target reads vLLM's gauge `vllm:num_requests_waiting`, the QPS target the rate
of vLLM's counter `vllm:request_success_total` (v1/metrics/loggers.py in vLLM 0.32.0: `vllm:request_success`, which
the Prometheus client exports with `_total`) over the contract's 60 s window. KEDA's `AverageValue` and the HPA's
Pods metric both divide the load by the current replica count, which is SkyServe's per-replica rule. The contract's
delays become the HPA's stabilization windows: a scale-up happens only when every recommendation of the last
`upscaleDelaySeconds` asked for more, a scale-down only when every one of the last `downscaleDelaySeconds` asked for
fewer.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.scale_to_zero import SCALER_ADDRESS
from pixtral_deploy.scaling import QPS_WINDOW_SECONDS, Autoscale
from pixtral_deploy.spec import StackSpec

QUEUE_METRIC = "vllm:num_requests_waiting"
REQUEST_COUNTER = "vllm:request_success_total"
# The names the HPA asks the custom metrics API for; docs/kubernetes.md gives the Prometheus adapter rules that
# serve them.
HPA_METRICS = {"queue": "vllm_num_requests_waiting", "qps": "vllm_requests_per_second"}
# KEDA's Prometheus scaler reads these TriggerAuthentication parameters for its authModes (KEDA 2.20,
# pkg/scalers/authentication: BasicAuth username/password, BearerToken bearerToken).
PROMETHEUS_AUTH_PARAMETERS = {"basic": ("username", "password"), "bearer": ("bearerToken",)}
# KEDA asks Prometheus this often (its default, written down so the numbers a reviewer sees are all here).
KEDA_POLLING_SECONDS = 15


@dataclass
class PodAutoscalerArgs:
    spec: StackSpec
    namespace: pulumi.Input[str]
    workload_kind: str
    workload_name: pulumi.Input[str]
    labels: dict[str, str]
    # keda: the Prometheus query API, and (GKE) the TriggerAuthentication that signs in to it.
    prometheus_url: pulumi.Input[str] | None = None
    trigger_authentication: pulumi.Input[str] | None = None
    # keda with pixtral:prometheusBasicAuth (USER:PASSWORD) or prometheusBearerToken: the secret value, which goes
    # into a Secret that a TriggerAuthentication hands to KEDA (spec.kubernetes.prometheus_auth says which).
    prometheus_credentials: pulumi.Input[str] | None = None
    # minReplicas 0: the KEDA HTTP add-on's InterceptorRoute (components/scale_to_zero.py) whose requests wake the
    # set.
    wake_route: pulumi.Input[str] | None = None


def load_query(autoscale: Autoscale, namespace: str) -> str:
    """The whole deployment's load, summed over its pods (the namespace is the workload's own)."""
    where = f'{{namespace="{namespace}"}}'
    if autoscale.metric == "queue":
        return f"sum({QUEUE_METRIC}{where})"
    return f"sum(rate({REQUEST_COUNTER}{where}[{QPS_WINDOW_SECONDS}s]))"


def quantity(value: float) -> str:
    """A per-replica target as a Kubernetes quantity: 3 -> "3", 2.5 -> "2500m"."""
    milli = round(value * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def prometheus_secret_data(mode: str, credentials: str) -> dict[str, str]:
    """The Secret's entries, named as KEDA's parameters: basic USER:PASSWORD splits at the first colon (a user name
    has none, RFC 7617)."""
    if mode == "basic":
        username, _, password = credentials.partition(":")
        return {"username": username, "password": password}
    return {"bearerToken": credentials}


def behavior(autoscale: Autoscale) -> dict:
    return {"scaleUp": {"stabilizationWindowSeconds": autoscale.upscale_delay_seconds},
            "scaleDown": {"stabilizationWindowSeconds": autoscale.downscale_delay_seconds}}


class PodAutoscaler(pulumi.ComponentResource):
    """The ScaledObject or the HPA for the workload; `kind` says which."""

    kind: str

    def __init__(self, name: str, args: PodAutoscalerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pixtral:kubernetes:PodAutoscaler", name, None, opts)
        spec = args.spec
        autoscale = spec.scaling.autoscale
        assert autoscale is not None, "only an autoscaled spec has an autoscaler"
        metadata = {"name": name, "namespace": args.namespace, "labels": args.labels}
        target = {"apiVersion": "apps/v1", "kind": args.workload_kind, "name": args.workload_name}
        # Children do not inherit a component's dependsOn: the ScaledObject and the TriggerAuthentication wait for
        # what the caller waits for (the KEDA release the program installs, whose chart brings their CRDs).
        child = pulumi.ResourceOptions(parent=self, depends_on=opts.depends_on if opts else None)
        if spec.kubernetes.scaler == "keda":
            self.kind = "ScaledObject"
            if args.prometheus_credentials is not None:
                args.trigger_authentication = self._prometheus_sign_in(name, metadata, spec.kubernetes.prometheus_auth,
                                                                       args.prometheus_credentials, child)
            k8s.apiextensions.CustomResource(
                name, api_version="keda.sh/v1alpha1", kind="ScaledObject", metadata=metadata,
                spec=self._scaled_object(autoscale, spec.kubernetes.namespace, target, args), opts=child)
        else:
            self.kind = "HorizontalPodAutoscaler"
            k8s.autoscaling.v2.HorizontalPodAutoscaler(name, metadata=metadata, spec={
                "scaleTargetRef": target,
                "minReplicas": autoscale.min_replicas,
                "maxReplicas": autoscale.max_replicas,
                "metrics": [{"type": "Pods", "pods": {
                    "metric": {"name": HPA_METRICS[autoscale.metric]},
                    "target": {"type": "AverageValue", "averageValue": quantity(autoscale.target)}}}],
                "behavior": behavior(autoscale),
            }, opts=child)
        self.register_outputs({})

    @staticmethod
    def _prometheus_sign_in(name: str, metadata: dict, mode: str, credentials: pulumi.Input[str],
                            child: pulumi.ResourceOptions) -> pulumi.Output[str]:
        """The credentials in a Secret of the workload's namespace, and the TriggerAuthentication that hands them to
        KEDA's Prometheus scaler: never in the ScaledObject, whose serverAddress is plain."""
        secret = k8s.core.v1.Secret(
            f"{name}-prometheus", metadata={**metadata, "name": f"{name}-prometheus"}, type="Opaque",
            string_data=pulumi.Output.secret(credentials).apply(lambda value: prometheus_secret_data(mode, value)),
            opts=child)
        auth = k8s.apiextensions.CustomResource(
            f"{name}-prometheus", api_version="keda.sh/v1alpha1", kind="TriggerAuthentication",
            metadata={**metadata, "name": f"{name}-prometheus"},
            spec={"secretTargetRef": [{"parameter": parameter, "name": secret.metadata["name"], "key": parameter}
                                      for parameter in PROMETHEUS_AUTH_PARAMETERS[mode]]},
            opts=child)
        return auth.metadata["name"]

    @staticmethod
    def _scaled_object(autoscale: Autoscale, namespace: str, target: dict, args: PodAutoscalerArgs) -> dict:
        trigger = {
            "type": "prometheus",
            "metricType": "AverageValue",
            "metadata": {"serverAddress": args.prometheus_url, "query": load_query(autoscale, namespace),
                         "threshold": f"{autoscale.target:g}"},
        }
        if args.trigger_authentication is not None:
            trigger["authenticationRef"] = {"name": args.trigger_authentication}
        if args.prometheus_credentials is not None:
            trigger["metadata"]["authModes"] = args.spec.kubernetes.prometheus_auth
        triggers = [trigger]
        scale_to_zero = {}
        if args.wake_route is not None:
            # The add-on's scaler reports the route's requests in flight: KEDA wakes the set from zero as soon as one
            # arrives (activation is KEDA's own step, outside the HPA's upscale window), and keeps it while any is.
            triggers.append({"type": "external-push",
                             "metadata": {"scalerAddress": SCALER_ADDRESS, "interceptorRoute": args.wake_route}})
            # The last replica goes once no trigger has been active for this long: no request in flight at the
            # interceptor, none waiting or finished in vLLM's 60 s window.
            scale_to_zero = {"cooldownPeriod": autoscale.downscale_delay_seconds}
        return {
            "scaleTargetRef": target,
            **scale_to_zero,
            "minReplicaCount": autoscale.min_replicas,
            "maxReplicaCount": autoscale.max_replicas,
            "pollingInterval": KEDA_POLLING_SECONDS,
            # KEDA hands these to the HPA it creates.
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior(autoscale)}},
            "triggers": triggers,
        }
