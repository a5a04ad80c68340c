"""Scale to zero on Kubernetes (`autoscale.minReplicas: 0`, docs/scaling.md): the KEDA HTTP add-on's interceptor
stands in front of the pods, holds a request that finds none ready, and its external scaler tells KEDA to wake the
set (pixtral:kubernetes:WakeOnRequest).

Declared here: an InterceptorRoute (http.keda.sh/v1beta1, the add-on's routing object since v0.14; its older
HTTPScaledObject is deprecated there) that sends the interceptor's requests to the workload's Service, with the
wait for a cold start and the wait for a response from the fleet plan; and the Service the user reaches, in the
add-on's namespace, selecting the interceptor's pods. The ScaledObject (components/pod_autoscaler.py) gets the
add-on's `external-push` trigger beside its Prometheus one. Where the program installs KEDA (gke, a cluster eks
creates), the add-on's chart is declared here too, and with pixtral:tls the interceptor's TLS listener: see
`interceptor_tls_values`.

Names and ports are the add-on chart's (kedacore/charts, http-add-on/ at keda-add-ons-http 0.15.0: templates/
interceptor/service-proxy.yaml, templates/scaler/service.yaml, values.yaml), installed as the chart's README does:
release `http-add-on` in namespace `keda`, beside KEDA.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.keda import KEDA_NAMESPACE, KEDACORE_CHART_REPO
from components.stack_ca import StackCa
from pixtral_deploy.fleet_plan import fleet_plan
from pixtral_deploy.network import is_ip_address
from pixtral_deploy.server import TLS_CERT_FILE, TLS_KEY_FILE
from pixtral_deploy.spec import StackSpec

HTTP_ADD_ON_CHART = "keda-add-ons-http"
# Chart 0.15.0 runs add-on v0.15.0, whose end-to-end tests run against KEDA 2.20.0 (its Makefile's KEDA_VERSION):
# the minor of the KEDA chart the program pins (components/keda.py).
HTTP_ADD_ON_CHART_VERSION = "0.15.0"
HTTP_ADD_ON_RELEASE = "http-add-on"
HTTP_ADD_ON_NAMESPACE = KEDA_NAMESPACE
# The chart's external scaler Service (`<chart>-<scaler.service>`, gRPC port 9090), which KEDA's trigger calls.
SCALER_ADDRESS = f"{HTTP_ADD_ON_CHART}-external-scaler.{HTTP_ADD_ON_NAMESPACE}:9090"
# The interceptor's pods (the chart's proxy Service selects them by these labels) and their proxy port's name.
INTERCEPTOR_SELECTOR = {"app.kubernetes.io/component": "interceptor", "app.kubernetes.io/name": "http-add-on",
                        "app.kubernetes.io/instance": HTTP_ADD_ON_RELEASE}
INTERCEPTOR_PROXY_PORT = "proxy"
# With interceptor.tls.enabled the chart adds the TLS listener's container port under this name, on
# interceptor.tls.port (templates/interceptor/deployment.yaml:121-123), and mounts interceptor.tls.certSecret at
# /certs (:126, :147-151), where certPath and keyPath point the interceptor (:80-90: KEDA_HTTP_PROXY_TLS_*).
INTERCEPTOR_TLS_PORT_NAME = "proxy-tls"
INTERCEPTOR_TLS_PORT = 8443
INTERCEPTOR_CERT_MOUNT = "/certs"
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


def interceptor_tls_values(secret_name: pulumi.Input[str]) -> dict:
    """The add-on chart's values that end the user's HTTPS at the interceptor and make it speak HTTPS, verified,
    to the pods (chart keda-add-ons-http 0.15.0, values.yaml:224-246; add-on v0.15.0):
    - the interceptor then runs a second listener, TLS, on `port`, with the certificate and key at certPath and
      keyPath (interceptor/main.go:239-256, config/serving.go:27-37); its plain listener stays, unused here;
    - a request that came in on the TLS listener goes to its route's Service as https://<service>.<namespace>:<port>
      (middleware/routing.go:124-131, proxy.go:91): the name the pods' certificate carries;
    - the upstream connection trusts the system roots plus every certificate in certPath's file
      (tls_config.go:32, :77; proxy.go:54-63), so the Secret's tls.crt carries the stack CA after the server
      certificate, and skipVerify stays false: the pods are verified against the stack CA;
    - with no SNI (a client calling an IP address) or an unknown one, the certificate at certPath is served
      (tls_config.go:86-93)."""
    return {"interceptor": {"tls": {
        "enabled": True, "certSecret": secret_name, "port": INTERCEPTOR_TLS_PORT, "skipVerify": False,
        "certPath": f"{INTERCEPTOR_CERT_MOUNT}/{TLS_CERT_FILE}", "keyPath": f"{INTERCEPTOR_CERT_MOUNT}/{TLS_KEY_FILE}",
    }}}


def entry_names(service_name: str) -> list[str]:
    """The entry Service's in-cluster names (in the add-on's namespace), for the interceptor's certificate."""
    base = f"{service_name}.{HTTP_ADD_ON_NAMESPACE}"
    return [f"{base}.svc.cluster.local", f"{base}.svc", base, service_name]


def full_chain(pems: list[str]) -> str:
    """PEM blocks one after another, each ending its line."""
    return "".join(pem if pem.endswith("\n") else f"{pem}\n" for pem in pems)


@dataclass
class WakeOnRequestArgs:
    spec: StackSpec
    namespace: pulumi.Input[str]
    service_name: pulumi.Input[str]
    labels: dict[str, str]
    # Where the program installs KEDA (KubernetesTarget.installs_keda): the add-on's chart, declared here so that its
    # values can name the interceptor's certificate, which names the entry Service's address (an IP on gke, a
    # hostname on eks). Elsewhere the cluster runs it already.
    install_add_on: bool = False
    # pixtral:tls: the stack CA, which signs the interceptor's certificate and the pods' (only with install_add_on:
    # the program configures no interceptor it does not install; KubernetesTarget._check_scale_to_zero refuses).
    ca: StackCa | None = None


class WakeOnRequest(pulumi.ComponentResource):
    """`route` names the InterceptorRoute (the ScaledObject's trigger reads it); `service` is what the user
    reaches, at `address` (its load balancer's address, else its in-cluster name)."""

    route: pulumi.Output[str]
    service: k8s.core.v1.Service
    address: pulumi.Output[str]

    def __init__(self, name: str, args: WakeOnRequestArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pixtral:kubernetes:WakeOnRequest", name, None, opts)
        assert args.ca is None or args.install_add_on, "TLS at an interceptor the program does not configure"
        # Children do not inherit a component's dependsOn: everything here waits for KEDA (its namespace, and the
        # ScaledObject the add-on's operator writes).
        child = pulumi.ResourceOptions(parent=self, depends_on=opts.depends_on if opts else None)
        spec = args.spec
        # The order: the entry Service (its address) -> the interceptor's certificate and Secret -> the add-on's
        # chart, which mounts the Secret -> the route, whose CRD comes with the chart. The entry Service does not
        # wait for the chart, or the chain would close on itself.
        self.service = self._entry(name, spec, args.labels, tls=args.ca is not None, child=child)
        self.address = _entry_address(self.service, spec)
        route_opts = child
        if args.install_add_on:
            values = {}
            if args.ca is not None:
                secret = self._interceptor_tls(name, spec, args.ca, args.labels, child)
                values = interceptor_tls_values(secret.metadata["name"])
            add_on = self._add_on(name, values, child)
            route_opts = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[add_on]))
        route = k8s.apiextensions.CustomResource(
            name, api_version="http.keda.sh/v1beta1", kind="InterceptorRoute",
            metadata={"name": name, "namespace": args.namespace, "labels": args.labels},
            spec={
                "target": {"service": args.service_name, "portName": "http"},
                "rules": [{"hosts": route_hosts(spec)}],
                "scalingMetric": {"concurrency": {"targetValue": WAKE_ONLY_CONCURRENCY}},
                "timeouts": interceptor_timeouts(spec),
            },
            opts=route_opts)
        self.route = route.metadata["name"]
        self.register_outputs({"route": self.route})

    def _add_on(self, name: str, values: dict, child: pulumi.ResourceOptions) -> k8s.helm.v3.Release:
        """The add-on's chart (its CRDs, operator, interceptor and external scaler), as its README installs it:
        next to KEDA, in KEDA's namespace, after KEDA (its operator writes ScaledObjects)."""
        return k8s.helm.v3.Release(
            f"{name}-http-add-on",
            name=HTTP_ADD_ON_RELEASE,
            chart=HTTP_ADD_ON_CHART,
            version=HTTP_ADD_ON_CHART_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=KEDACORE_CHART_REPO),
            namespace=HTTP_ADD_ON_NAMESPACE,
            values=values,
            opts=child)

    def _interceptor_tls(self, name: str, spec: StackSpec, ca: StackCa, labels: dict[str, str],
                         child: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
        """The interceptor's certificate, from the stack CA, for what the user reaches: pixtral:domain, the entry
        Service's address and its in-cluster names. Its own key, not the pods': the add-on's namespace never holds
        the pods' key. The Secret's name is generated: a renewed certificate is a new Secret, so the chart's
        values change and the interceptor, which reads its certificate only at start, rolls onto it."""
        names = ([spec.tls.domain] if spec.tls.domain else []) + entry_names(self._entry_name(name, spec))
        ip_addresses = self.address.apply(lambda a: [a] if is_ip_address(a) else [])
        dns_names = self.address.apply(lambda a: list(dict.fromkeys(names + ([] if is_ip_address(a) else [a]))))
        certificate = ca.issue(f"{name}-interceptor", ip_addresses=ip_addresses, dns_names=dns_names, parent=self)
        chain = pulumi.Output.all(certificate.cert_pem, ca.cert_pem).apply(full_chain)
        return k8s.core.v1.Secret(
            f"{name}-interceptor-tls", metadata={"namespace": HTTP_ADD_ON_NAMESPACE, "labels": labels},
            type="kubernetes.io/tls",
            string_data={TLS_CERT_FILE: chain, TLS_KEY_FILE: certificate.private_key_pem},
            opts=child)

    @staticmethod
    def _entry_name(name: str, spec: StackSpec) -> str:
        return f"{spec.kubernetes.namespace}-{name}"

    def _entry(self, name: str, spec: StackSpec, labels: dict[str, str], tls: bool,
               child: pulumi.ResourceOptions) -> k8s.core.v1.Service:
        """The user's Service, where the interceptor runs: the API port to the interceptor's proxy port (its TLS
        listener's with pixtral:tls), with the workload Service's type and sources. It does not wait for a
        selected pod (the default await): at zero replicas the interceptor is what answers."""
        pods = spec.kubernetes
        body = {"type": pods.service_type, "selector": INTERCEPTOR_SELECTOR,
                "ports": [{"name": "http", "port": spec.server.port,
                           "targetPort": INTERCEPTOR_TLS_PORT_NAME if tls else INTERCEPTOR_PROXY_PORT,
                           "protocol": "TCP"}]}
        annotations = {"pulumi.com/skipAwait": "true"}
        if pods.service_type == "LoadBalancer":
            body["loadBalancerSourceRanges"] = list(spec.allowed_cidrs)
            annotations = {"pulumi.com/waitFor": "jsonpath={.status.loadBalancer.ingress}"}
        metadata = {"name": self._entry_name(name, spec), "namespace": HTTP_ADD_ON_NAMESPACE, "labels": labels,
                    "annotations": annotations}
        return k8s.core.v1.Service(f"{name}-entry", metadata=metadata, spec=body, opts=child)


def _entry_address(service: k8s.core.v1.Service, spec: StackSpec) -> pulumi.Output[str]:
    """Where clients reach the entry Service: its load balancer's address, else its in-cluster name."""
    # Imported here: the workload's module imports this one (scales_to_zero).
    from components.vllm_workload import service_host

    return service_host(service, spec.kubernetes.service_type, HTTP_ADD_ON_NAMESPACE)
