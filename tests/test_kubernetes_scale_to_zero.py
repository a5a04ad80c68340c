"""Scale to zero on Kubernetes (`autoscale.minReplicas: 0`, docs/scaling.md): the KEDA HTTP add-on's interceptor
is what the user reaches, it holds a request while the set wakes, and its scaler wakes the set at once; with
minReplicas 1 or more nothing of it is declared."""

from __future__ import annotations

import json

import pytest
from conftest import pod_controller, resources_of, run_stack, stacks_of, target_of
from manifest_schemas import validate

from components.scale_to_zero import HTTP_ADD_ON_CHART_VERSION
from pixtral_deploy.fleet_plan import FIRST_BYTE_MARGIN_SECONDS
from pixtralctl.resource_summary import key_settings

K8S_STACKS = [s for s in stacks_of("kubernetes", "eks", "gke")]
PROMETHEUS = "http://prometheus.monitoring.svc:9090"
ROUTE = "kubernetes:http.keda.sh/v1beta1:InterceptorRoute"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
SERVICE = "kubernetes:core/v1:Service"
RELEASE = "kubernetes:helm.sh/v3:Release"
# The chart's interceptor pods (kedacore/charts http-add-on 0.15.0, templates/interceptor/deployment.yaml), installed
# as release http-add-on.
INTERCEPTOR = {"app.kubernetes.io/component": "interceptor", "app.kubernetes.io/name": "http-add-on",
               "app.kubernetes.io/instance": "http-add-on"}


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


def test_gke_installs_the_pinned_add_on_beside_keda():
    run = ok("gke", settings("gke", 0))
    releases = {r["inputs"]["chart"]: r for r in resources_of(run, RELEASE)}
    add_on = releases["keda-add-ons-http"]
    assert add_on["inputs"]["version"] == HTTP_ADD_ON_CHART_VERSION == "0.15.0"
    assert (add_on["inputs"]["name"], add_on["inputs"]["namespace"]) == ("http-add-on", "keda")
    assert f"{RELEASE}::{releases['keda']['name']}" in add_on["depends_on"]
    (route,) = resources_of(run, ROUTE)
    assert f"{RELEASE}::{add_on['name']}" in route["depends_on"], "the route's CRD comes with the add-on"
    assert "keda-add-ons-http" not in {r["inputs"]["chart"] for r in resources_of(ok("gke", settings("gke", 1)),
                                                                                  RELEASE)}


@pytest.mark.parametrize("stack", stacks_of("kubernetes", "eks"))
def test_where_the_program_installs_no_keda_it_says_the_add_on_is_needed(stack):
    run = ok(stack, settings(stack, 0))
    assert not any(r["inputs"].get("chart") == "keda-add-ons-http" for r in resources_of(run, RELEASE))
    assert any("KEDA HTTP add-on (chart keda-add-ons-http 0.15.0, release http-add-on in namespace keda"
               in line for line in run["log"])
    assert not any("HTTP add-on" in line for line in ok(stack, settings(stack, 1))["log"])


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_scale_to_zero_refuses_what_the_interceptor_cannot_carry(stack):
    with_tls = run_stack(stack, {**settings(stack, 0), "pixtral:tls": "true"})["error"]
    assert "pixtral:tls" in with_tls and "interceptor" in with_tls and "minReplicas 1" in with_tls
    if target_of(stack) == "kubernetes":
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
