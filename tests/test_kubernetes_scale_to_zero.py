"""Scale to zero on Kubernetes (`autoscale.minReplicas: 0`, docs/scaling.md): the KEDA HTTP add-on's interceptor
is what the user reaches, it holds a request while the set wakes, and its scaler wakes the set at once; with
minReplicas 1 or more nothing of it is declared."""

from __future__ import annotations

import json
import socket
import ssl
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from chart_values import values_the_chart_ignores, vendored_values
from conftest import pem_body, pod_controller, resources_of, run_stack, stacks_of, target_of
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from manifest_schemas import validate

from components.keda import KEDA_CHART_VERSION
from components.scale_to_zero import HTTP_ADD_ON_CHART_VERSION
from pixtral_deploy.fleet_plan import FIRST_BYTE_MARGIN_SECONDS
from pixtralctl.resource_summary import key_settings

K8S_STACKS = [s for s in stacks_of("kubernetes", "eks", "gke")]
PROMETHEUS = "http://prometheus.monitoring.svc:9090"
ROUTE = "kubernetes:http.keda.sh/v1beta1:InterceptorRoute"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
SERVICE = "kubernetes:core/v1:Service"
RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
# The chart's interceptor pods (kedacore/charts http-add-on 0.15.0, templates/interceptor/deployment.yaml), installed
# as release http-add-on.
INTERCEPTOR = {"app.kubernetes.io/component": "interceptor", "app.kubernetes.io/name": "http-add-on",
               "app.kubernetes.io/instance": "http-add-on"}
# Where the program installs KEDA and so the add-on: every gke cluster, and an eks cluster it creates. A reused eks
# cluster (pixtral:clusterName) and any `kubernetes` cluster run their own.
REUSED_EKS = {"pixtral:clusterName": "theirs"}
INSTALLED_HERE = ["gke", "eks"]
INSTALLED_BY_THE_CLUSTER = [pytest.param("k8s", {}, id="kubernetes"),
                            pytest.param("eks", REUSED_EKS, id="eks-reused")]
# The Route 53 hosted zone id (eks) or Cloud DNS managed zone (gke) pixtral:domain's record goes in.
DNS_ZONES = {"eks": "Z0123456789ABC", "gke": "example-com"}


def settings(stack: str, minimum: int, **extra: str) -> dict[str, str]:
    """Autoscale from `minimum` to 3 on vLLM's queue, plain HTTP (what scale to zero accepts on Kubernetes)."""
    chosen = {"pixtral:autoscale": json.dumps({"minReplicas": minimum, "maxReplicas": 3, "targetQueuePerReplica": 2,
                                               "downscaleDelaySeconds": 900}),
              "pixtral:tls": "false", **extra}
    if target_of(stack) != "gke":
        chosen["pixtral:prometheusUrl"] = PROMETHEUS
    return chosen


def ok(stack: str, chosen: dict[str, str]) -> dict:
    run = run_stack(stack, chosen)
    assert run["error"] is None, run["error"]
    return run


def manifest(resource: dict) -> dict:
    inputs = resource["inputs"]
    return {key: inputs[key] for key in ("apiVersion", "kind", "metadata", "spec") if key in inputs}


def services(run: dict) -> dict[str, dict]:
    return {s["inputs"]["metadata"]["name"]: s for s in resources_of(run, SERVICE)}


def release_of(run: dict, chart: str) -> dict:
    (release,) = [r for r in resources_of(run, RELEASE) if r["inputs"]["chart"] == chart]
    return release


def add_on_release(run: dict) -> dict:
    return release_of(run, "keda-add-ons-http")


def charts(run: dict) -> set[str]:
    return {r["inputs"]["chart"] for r in resources_of(run, RELEASE)}


def load_balancer_address(service: dict) -> str:
    """What a LoadBalancer Service's status publishes: an IP on GCP, a hostname on AWS."""
    (ingress,) = service["outputs"]["status"]["loadBalancer"]["ingress"]
    return ingress.get("ip") or ingress["hostname"]


def tls_secret(run: dict, namespace: str) -> dict:
    """The kubernetes.io/tls Secret in `namespace`: the pods' (the workload's namespace) or the interceptor's
    (keda)."""
    (secret,) = [s for s in resources_of(run, SECRET) if s["inputs"]["type"] == "kubernetes.io/tls"
                 and s["inputs"]["metadata"]["namespace"] == namespace]
    return secret


def pem_blocks(bundle: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(bundle.encode())


def sans(certificate: x509.Certificate) -> list[str]:
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] + names.get_values_for_type(x509.DNSName)


def https(stack: str, **extra: str) -> dict[str, str]:
    return settings(stack, 0, **{"pixtral:tls": "true", **extra})


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_a_set_at_zero_wakes_on_the_interceptors_requests(stack):
    run = ok(stack, settings(stack, 0))
    (route,) = resources_of(run, ROUTE)
    (scaled,) = resources_of(run, SCALED_OBJECT)
    for resource in (route, scaled):
        validate(manifest(resource))
    route_spec, spec = route["inputs"]["spec"], scaled["inputs"]["spec"]
    # The interceptor forwards to the workload's own Service, on its API port.
    workload_service = services(run)["pixtral"]
    assert route_spec["target"] == {"service": "pixtral", "portName": "http"}
    assert workload_service["inputs"]["spec"]["ports"][0]["name"] == "http"
    assert spec["minReplicaCount"] == 0 and spec["maxReplicaCount"] == 3
    assert spec["scaleTargetRef"]["name"] == pod_controller(run)["inputs"]["metadata"]["name"]
    by_type = {trigger["type"]: trigger for trigger in spec["triggers"]}
    # The Prometheus trigger still sizes the set on the user's target; the add-on's wakes it.
    assert by_type["prometheus"]["metadata"]["threshold"] == "2"
    assert by_type["external-push"]["metadata"] == {
        "scalerAddress": "keda-add-ons-http-external-scaler.keda:9090",
        "interceptorRoute": route["inputs"]["metadata"]["name"]}
    # The last replica goes after downscaleDelaySeconds with no request (KEDA's cooldown, not the HPA's window).
    assert spec["cooldownPeriod"] == 900


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_the_add_ons_metric_never_asks_for_more_than_one_replica(stack):
    """The concurrency target is beyond any replica's in-flight requests, so the HPA's share of the add-on is one
    replica while any request is in flight: the user's queue target alone sizes the set above one."""
    run = ok(stack, settings(stack, 0))
    (route,) = resources_of(run, ROUTE)
    target = route["inputs"]["spec"]["scalingMetric"]["concurrency"]["targetValue"]
    assert target == 2**31 - 1, "the CRD's int32 maximum"
    assert "requestRate" not in route["inputs"]["spec"]["scalingMetric"]


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_the_user_reaches_the_interceptor_only_when_the_set_scales_to_zero(stack):
    at_zero = ok(stack, settings(stack, 0))
    entry = services(at_zero)["pixtral-pixtral-wake"]
    assert entry["inputs"]["metadata"]["namespace"] == "keda"
    assert entry["inputs"]["spec"]["selector"] == INTERCEPTOR
    assert entry["inputs"]["spec"]["type"] == "LoadBalancer"
    assert entry["inputs"]["spec"]["ports"][0]["targetPort"] == "proxy"
    validate(manifest(entry) | {"apiVersion": "v1", "kind": "Service"})
    # The workload's own Service stays in the cluster: the interceptor is the only way in.
    assert services(at_zero)["pixtral"]["inputs"]["spec"]["type"] == "ClusterIP"
    assert at_zero["outputs"]["endpoint"].startswith("http://")

    from_one = ok(stack, settings(stack, 1))
    assert resources_of(from_one, ROUTE) == []
    assert set(services(from_one)) == {"pixtral"}
    assert services(from_one)["pixtral"]["inputs"]["spec"]["type"] == "LoadBalancer"
    (scaled,) = resources_of(from_one, SCALED_OBJECT)
    assert [t["type"] for t in scaled["inputs"]["spec"]["triggers"]] == ["prometheus"]
    assert "cooldownPeriod" not in scaled["inputs"]["spec"]

    # In-cluster (the mock clouds give every load balancer one address), the endpoint names the entry Service.
    in_cluster = {"pixtral:serviceType": "ClusterIP"}
    assert ok(stack, settings(stack, 0, **in_cluster))["outputs"]["endpoint"] == \
        "http://pixtral-pixtral-wake.keda.svc.cluster.local:8081"
    assert ok(stack, settings(stack, 1, **in_cluster))["outputs"]["endpoint"] == \
        "http://pixtral.pixtral.svc.cluster.local:8081"


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_a_held_request_waits_as_long_as_a_pod_may_take_to_start(stack):
    """The interceptor holds a request at zero for the pods' startup budget (the fleet plan's health grace, which the
    startup probe allows too), and waits for a non-streamed answer as long as the balancers do."""
    run = ok(stack, settings(stack, 0))
    (route,) = resources_of(run, ROUTE)
    timeouts = route["inputs"]["spec"]["timeouts"]
    container = pod_controller(run)["inputs"]["spec"]["template"]["spec"]["containers"][0]
    probe = container["startupProbe"]
    assert timeouts["readiness"] == f"{int(probe['periodSeconds'] * probe['failureThreshold'])}s"
    args = container["args"]
    drain = int(args[args.index("--shutdown-timeout") + 1])
    assert timeouts["responseHeader"] == f"{drain + FIRST_BYTE_MARGIN_SECONDS}s"
    assert timeouts["request"] == "0s", "a streamed answer has no total deadline"


@pytest.mark.parametrize("stack", INSTALLED_HERE)
def test_the_program_installs_the_pinned_add_on_beside_its_own_keda(stack):
    run = ok(stack, settings(stack, 0))
    keda = release_of(run, "keda")
    assert keda["inputs"]["version"] == KEDA_CHART_VERSION == "2.20.2"
    assert (keda["inputs"]["name"], keda["inputs"]["namespace"]) == ("keda", "keda")
    add_on = add_on_release(run)
    assert add_on["inputs"]["version"] == HTTP_ADD_ON_CHART_VERSION == "0.15.0"
    assert (add_on["inputs"]["name"], add_on["inputs"]["namespace"]) == ("http-add-on", "keda")
    assert f"{RELEASE}::{keda['name']}" in add_on["depends_on"]
    (route,) = resources_of(run, ROUTE)
    assert f"{RELEASE}::{add_on['name']}" in route["depends_on"], "the route's CRD comes with the add-on"
    (scaled,) = resources_of(run, SCALED_OBJECT)
    assert f"{RELEASE}::{keda['name']}" in scaled["depends_on"], "the ScaledObject's CRD comes with KEDA"
    assert charts(ok(stack, settings(stack, 1))) & {"keda", "keda-add-ons-http"} == {"keda"}
    # Plain HTTP: the chart's own values, no TLS listener, and no certificate in the add-on's namespace.
    assert "interceptor" not in add_on["inputs"].get("values", {})
    assert not [s for s in resources_of(run, SECRET) if s["inputs"]["metadata"]["namespace"] == "keda"]


@pytest.mark.parametrize("stack", INSTALLED_HERE)
def test_https_ends_at_the_interceptor_with_a_certificate_from_the_stack_ca(stack):
    run = ok(stack, https(stack))
    endpoint = urlsplit(run["outputs"]["endpoint"])
    assert endpoint.scheme == "https"
    secret = tls_secret(run, "keda")
    # Generated name: a renewed certificate is a new Secret, so the chart's values change and the interceptor,
    # which reads its certificate only at start, rolls onto it.
    assert "name" not in secret["inputs"]["metadata"]
    assert add_on_release(run)["inputs"]["values"] == {"interceptor": {"tls": {
        "enabled": True, "certSecret": secret["outputs"]["metadata"]["name"], "port": 8443, "skipVerify": False,
        "certPath": "/certs/tls.crt", "keyPath": "/certs/tls.key"}}}
    served, *_ = pem_blocks(secret["inputs"]["stringData"]["tls.crt"])
    ca = x509.load_pem_x509_certificate(run["outputs"]["caCertificate"].encode())
    served.verify_directly_issued_by(ca)
    assert ExtendedKeyUsageOID.SERVER_AUTH in served.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert endpoint.hostname in sans(served), "the address the user calls is not in the interceptor's certificate"
    # The user's Service reaches the interceptor's TLS listener, never its plain one.
    entry = services(run)["pixtral-pixtral-wake"]
    assert [p["targetPort"] for p in entry["inputs"]["spec"]["ports"]] == ["proxy-tls"]

    with_domain = ok(stack, https(stack, **{"pixtral:domain": "pixtral.example.com",
                                            "pixtral:dnsZone": DNS_ZONES[stack]}))
    assert with_domain["outputs"]["endpoint"] == "https://pixtral.example.com:8081"
    served, *_ = pem_blocks(tls_secret(with_domain, "keda")["inputs"]["stringData"]["tls.crt"])
    assert "pixtral.example.com" in sans(served)
    (record,) = resources_of(with_domain, "gcp:dns/recordSet:RecordSet") + \
        resources_of(with_domain, "aws:route53/record:Record")
    entry_address = load_balancer_address(services(with_domain)["pixtral-pixtral-wake"])
    assert record["inputs"].get("rrdatas", record["inputs"].get("records")) == [entry_address], \
        "the domain points at the interceptor's Service"


def test_on_eks_the_interceptors_certificate_names_the_load_balancers_hostname():
    """AWS load balancers publish a DNS name, not an IP: the certificate carries it as a DNS name (an IP SAN
    would not parse, and a client checking the hostname would fail)."""
    run = ok("eks", https("eks"))
    hostname = load_balancer_address(services(run)["pixtral-pixtral-wake"])
    assert urlsplit(run["outputs"]["endpoint"]).hostname == hostname
    (request,) = [r for r in resources_of(run, "tls:index/certRequest:CertRequest") if "interceptor" in r["name"]]
    assert hostname in request["inputs"]["dnsNames"]
    assert hostname not in request["inputs"].get("ipAddresses", [])


def _handshake(server_pem: str, server_key: str, trusted: str, hostname: str) -> None:
    """A TLS handshake on 127.0.0.1: a server with `server_pem` and its key, a client that trusts only the
    certificates in `trusted` (as the interceptor's upstream transport trusts its tls.crt) and checks `hostname`."""
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = Path(folder, "tls.crt"), Path(folder, "tls.key")
        cert_file.write_text(server_pem)
        key_file.write_text(server_key)
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.load_cert_chain(cert_file, key_file)
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.load_verify_locations(cadata=trusted)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def serve() -> None:
            connection, _ = listener.accept()
            try:
                with server_context.wrap_socket(connection, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass
        server = threading.Thread(target=serve, daemon=True)
        server.start()
        try:
            with socket.create_connection(listener.getsockname(), timeout=10) as raw, \
                    client_context.wrap_socket(raw, server_hostname=hostname):
                pass
        finally:
            server.join(timeout=10)


@pytest.mark.parametrize("stack", INSTALLED_HERE)
def test_the_interceptor_speaks_https_to_the_pods_and_verifies_them_with_the_stack_ca(stack):
    """With its TLS listener on, the interceptor sends that listener's requests to
    https://<route's Service>.<route's namespace>:<port> and trusts the certificates in its tls.crt (add-on v0.15.0):
    the pods' certificate must verify against that bundle for that name."""
    run = ok(stack, https(stack))
    (route,) = resources_of(run, ROUTE)
    upstream = f"{route['inputs']['spec']['target']['service']}.{route['inputs']['metadata']['namespace']}"
    interceptor_bundle = tls_secret(run, "keda")["inputs"]["stringData"]["tls.crt"]
    # The bundle carries the stack CA after the server certificate: what the upstream transport trusts.
    assert pem_blocks(interceptor_bundle)[1] == x509.load_pem_x509_certificate(run["outputs"]["caCertificate"].encode())
    pods = tls_secret(run, "pixtral")["inputs"]["stringData"]
    _handshake(pods["tls.crt"], pods["tls.key"], interceptor_bundle, upstream)
    # The same check fails for a name the pods' certificate does not carry, and without the stack CA.
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(pods["tls.crt"], pods["tls.key"], interceptor_bundle, "pixtral.elsewhere")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(pods["tls.crt"], pods["tls.key"], pem_blocks(interceptor_bundle)[0].public_bytes(
            serialization.Encoding.PEM).decode(), upstream)


@pytest.mark.parametrize("stack", INSTALLED_HERE)
def test_the_interceptors_key_is_its_own_and_only_in_its_secret(stack):
    run = ok(stack, https(stack))
    interceptor_key = pem_body(tls_secret(run, "keda")["inputs"]["stringData"]["tls.key"])
    assert interceptor_key != pem_body(tls_secret(run, "pixtral")["inputs"]["stringData"]["tls.key"]), \
        "the add-on's namespace must not hold the pods' key"
    for resource in run["resources"]:
        if resource["type"].startswith("tls:"):
            continue  # the key's own provider resources: it is made there, as a Pulumi secret
        inputs = {k: v for k, v in resource["inputs"].items() if not (resource["type"] == SECRET and k == "stringData")}
        assert interceptor_key[:64] not in json.dumps(inputs), f"{resource['name']} carries the interceptor's key"
    assert interceptor_key[:64] not in json.dumps(run["outputs"]) + "\n".join(run["log"])


@pytest.mark.parametrize("stack", INSTALLED_HERE)
def test_the_certificate_comes_before_the_chart_that_mounts_it_without_a_cycle(stack):
    """The entry Service (whose address the certificate names) -> the Secret -> the add-on's chart -> the route:
    the entry Service must not wait for the chart."""
    run = ok(stack, https(stack))
    release = add_on_release(run)
    secret = tls_secret(run, "keda")
    entry = services(run)["pixtral-pixtral-wake"]
    (route,) = resources_of(run, ROUTE)
    assert f"{SECRET}::{secret['name']}" in release["depends_on"]
    assert f"{RELEASE}::{release['name']}" in route["depends_on"]
    assert f"{RELEASE}::{release['name']}" not in entry["depends_on"]
    (request,) = [r for r in resources_of(run, "tls:index/certRequest:CertRequest") if "interceptor" in r["name"]]
    address = load_balancer_address(entry)
    assert address in request["inputs"].get("ipAddresses", []) + request["inputs"]["dnsNames"]


@pytest.mark.parametrize("stack", INSTALLED_HERE)
def test_every_value_set_in_keda_and_the_add_on_is_one_their_pinned_charts_read(stack):
    keda_chart = vendored_values("keda", KEDA_CHART_VERSION)
    add_on_chart = vendored_values("keda-add-ons-http", HTTP_ADD_ON_CHART_VERSION)
    assert keda_chart["serviceAccount"]["operator"]["name"] == "keda-operator", "gke's Workload Identity names it"
    run = ok(stack, https(stack))
    assert values_the_chart_ignores(release_of(run, "keda")["inputs"]["values"], keda_chart) == []
    assert values_the_chart_ignores(add_on_release(run)["inputs"]["values"], add_on_chart) == []
    # The check itself: a misspelt key is caught.
    assert values_the_chart_ignores({"interceptor": {"tls": {"skipVerfy": False}}}, add_on_chart) == [
        "interceptor.tls.skipVerfy"]


@pytest.mark.parametrize(("stack", "cluster"), INSTALLED_BY_THE_CLUSTER)
def test_where_the_program_installs_no_keda_it_says_keda_and_the_add_on_are_needed(stack, cluster):
    run = ok(stack, settings(stack, 0, **cluster))
    assert charts(run) & {"keda", "keda-add-ons-http"} == set(), "a second release would collide with the cluster's"
    assert any("KEDA HTTP add-on (chart keda-add-ons-http 0.15.0, release http-add-on in namespace keda"
               in line for line in run["log"])
    assert any("the cluster must run KEDA (chart keda 2.20.2, release keda in namespace keda)" in line
               for line in run["log"])
    assert not any("HTTP add-on" in line for line in ok(stack, settings(stack, 1, **cluster))["log"])


@pytest.mark.parametrize(("stack", "cluster", "instead"), [
    pytest.param("k8s", {}, ("target eks (without pixtral:clusterName) or gke",), id="kubernetes"),
    pytest.param("eks", REUSED_EKS, ("remove pixtral:clusterName", "target gke"), id="eks-reused")])
def test_https_at_an_interceptor_the_program_does_not_install_is_refused_with_the_chart_values(stack, cluster,
                                                                                              instead):
    """The user's own add-on release decides what its interceptor speaks: the refusal names the key and the chart
    values that would have to change, and points at where the program sets them."""
    run = run_stack(stack, https(stack, **cluster))
    with_tls = run["error"]
    assert with_tls.startswith("pixtral:tls: true is not allowed"), with_tls
    for needed in ("interceptor.tls.enabled", "interceptor.tls.certSecret", "interceptor.tls.skipVerify false",
                   "stack CA", "pixtral:tls false", "minReplicas 1", *instead):
        assert needed in with_tls, needed
    assert not [r for r in run["resources"] if not r["type"].startswith("pixtral:")], "declared before the error"


@pytest.mark.parametrize("stack", stacks_of("kubernetes"))
def test_scale_to_zero_refuses_an_autoscaler_that_cannot_hold_the_first_request(stack):
    chosen = {**settings(stack, 0), "pixtral:autoscaler": "hpa"}
    del chosen["pixtral:prometheusUrl"]
    with_hpa = run_stack(stack, chosen)["error"]
    assert "pixtral:autoscaler" in with_hpa and "minReplicas 0" in with_hpa


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_render_shows_the_wake_wiring(stack):
    # `pixtralctl render`'s review table: the route's timeouts and the ScaledObject's cooldown are on it.
    run = ok(stack, settings(stack, 0))
    (route,) = resources_of(run, ROUTE)
    (scaled,) = resources_of(run, SCALED_OBJECT)
    assert route["inputs"]["spec"]["timeouts"]["readiness"] in str(key_settings(ROUTE, route["inputs"]))
    assert "900" in str(key_settings(SCALED_OBJECT, scaled["inputs"]))
