"""Every setting is applied exactly as asked or refused by name before any resource (issue #22): the settings that
were accepted and then not applied, values the cloud would reject only at `pulumi up`, and inputs that raised a
traceback instead of naming the key."""

from __future__ import annotations

import json

import pytest
from conftest import pod_controller, resources_of, run_stack
from kubelet_expansion import expand
from manifest_schemas import validate

from components.pod_autoscaler import quantity
from pixtral_deploy.manifests import manifests
from pixtral_deploy.server import vllm_args
from pixtral_deploy.spec import ConfigError, load_spec

AUTOSCALE = {"minReplicas": 1, "maxReplicas": 4, "targetQpsPerReplica": 2}
K8S = {"target": "kubernetes", "gpuType": "nvidia-l40s"}


def _autoscale(**fields) -> str:
    return json.dumps({**AUTOSCALE, **fields})


def _cidrs(count: int, version: int = 4) -> str:
    return json.dumps([f"10.{i // 250}.{i % 250}.0/24" if version == 4 else f"2001:db8:{i:x}::/48"
                       for i in range(count)])


def _hpa(**fields) -> dict[str, str]:
    autoscale = {"minReplicas": 1, "maxReplicas": 4, **fields}
    return {**K8S, "autoscaler": "hpa", "autoscale": json.dumps(autoscale)}


REFUSED = [
    # Accepted and not applied before: a single VM kept its public address, spot its on-demand base.
    ({"target": "aws", "internal": "true"}, "internal", "false for one VM"),
    ({"target": "gcp", "internal": "true"}, "internal", "false for one VM"),
    ({"target": "aws", "spot": "true", "onDemandBaseReplicas": "1"}, "onDemandBaseReplicas", "0 for one VM"),
    ({"target": "gcp", "spot": "true", "onDemandBaseReplicas": "1"}, "onDemandBaseReplicas", "0 for one VM"),
    ({"target": "gcp", "spot": "true", "onDemandBaseReplicas": "4", "autoscale": _autoscale(minReplicas=4)},
     "onDemandBaseReplicas", "fewer than the fleet's 4"),
    ({"target": "aws", "spot": "true", "onDemandBaseReplicas": "3", "replicas": "3"},
     "onDemandBaseReplicas", "fewer than the fleet's 3"),
    # What the cloud would refuse at `pulumi up`.
    ({"target": "aws", "allowedCidrs": '["2001:db8::/32", "2001:0db8::/32"]'}, "allowedCidrs", "each item once"),
    ({"target": "gcp", "allowedCidrs": '["10.0.0.0/8", "10.0.0.0/8"]'}, "allowedCidrs", "each item once"),
    ({"target": "aws", "replicas": "2", "instanceTypes": '["g6e.xlarge", "g6e.xlarge"]'}, "instanceTypes",
     "each item once"),
    ({"target": "gcp", "replicas": "2", "machineTypes": '["g2-standard-24", "g2-standard-24"]'}, "machineTypes",
     "each item once"),
    ({"target": "gcp", "replicas": "2", "zones": '["us-central1-a", "us-central1-a"]'}, "zones", "each item once"),
    ({"target": "aws", "allowedCidrs": _cidrs(61)}, "allowedCidrs", "at most 60 IPv4 CIDRs"),
    ({"target": "aws", "allowedCidrs": _cidrs(61, 6)}, "allowedCidrs", "at most 60 IPv6 CIDRs"),
    ({"target": "eks", "allowedCidrs": _cidrs(61)}, "allowedCidrs", "at most 60 IPv4 CIDRs"),
    ({"target": "gcp", "allowedCidrs": _cidrs(5001)}, "allowedCidrs", "at most 5000 IPv4 CIDRs"),
    (_hpa(targetQueuePerReplica=0.0004), "autoscale", "from 0.001"),
    (_hpa(targetQueuePerReplica=1e308), "autoscale", "to 1,000,000"),
    ({"target": "aws", "autoscale": _autoscale(targetQpsPerReplica=1e308)}, "autoscale", "to 1,000,000"),
    # Tracebacks before: int() of a Unicode digit, float() of a huge integer, json.loads past 4300 digits.
    ({"target": "aws", "autoscale": _autoscale(minReplicas="²")}, "autoscale", "autoscale.minReplicas"),
    ({"target": "aws", "autoscale": _autoscale(maxReplicas="٤")}, "autoscale", "autoscale.maxReplicas"),
    ({"target": "aws", "autoscale": _autoscale(targetQpsPerReplica=10 ** 400)}, "autoscale",
     "autoscale.targetQpsPerReplica"),
    ({"target": "aws", "autoscale": '{"minReplicas": 1, "maxReplicas": 4, "targetQpsPerReplica": ' + "9" * 5000 + "}"},
     "autoscale", "a map"),
    ({"target": "aws", "allowedCidrs": "[" + "9" * 5000 + "]"}, "allowedCidrs", "a list of strings"),
    ({"target": "aws", "extraArgs": "[" * 100_000}, "extraArgs", "a list of strings"),
    # One strict number rule: Python's int() would read "1_0" as 10 and "٢" as 2.
    ({"target": "aws", "port": "9_000"}, "port", "a whole number"),
    ({"target": "aws", "maxImagesPerPrompt": "٢"}, "maxImagesPerPrompt", "a whole number"),
    ({"target": "aws", "gpuMemoryUtilization": "0.9_0"}, "gpuMemoryUtilization", "a number in (0, 1]"),
    ({"target": "aws", "diskSizeGb": " 300"}, "diskSizeGb", "a whole number"),
    # Credentials never in plain settings.
    ({**K8S, "prometheusUrl": "http://reader:hunter2-password@prom.monitoring:9090", "autoscale": _autoscale()},
     "prometheusUrl", "without user:password"),
    ({**K8S, "prometheusUrl": "http://prom.monitoring:9090/?token=x", "autoscale": _autoscale()}, "prometheusUrl",
     "without ?query"),
    ({"target": "aws", "prometheusBearerToken": "(secret)"}, "prometheusBearerToken", "only applies to target"),
    ({**K8S, "prometheusUrl": "http://prom:9090", "autoscale": _autoscale(), "prometheusBasicAuth": "(secret)",
      "prometheusBearerToken": "(secret)"}, "prometheusBearerToken", "not both"),
    ({**_hpa(targetQpsPerReplica=2), "prometheusBasicAuth": "(secret)"}, "prometheusBasicAuth",
     "unless KEDA queries"),
    ({**K8S, "prometheusBasicAuth": "(secret)"}, "prometheusBasicAuth", "without pixtral:autoscale"),
    # An on-demand base above minReplicas would keep replicas the range lets go (and a fleet at zero has none).
    ({"target": "aws", "spot": "true", "onDemandBaseReplicas": "1", "autoscale": _autoscale(minReplicas=0)},
     "onDemandBaseReplicas", "at most autoscale.minReplicas (0)"),
    ({"target": "gcp", "spot": "true", "onDemandBaseReplicas": "2", "autoscale": _autoscale(minReplicas=1)},
     "onDemandBaseReplicas", "at most autoscale.minReplicas (1)"),
]


@pytest.mark.parametrize(("raw", "key", "allowed"), REFUSED, ids=[f"{i}-{case[1]}" for i, case in enumerate(REFUSED)])
def test_a_setting_that_would_not_be_applied_is_refused_by_name(raw, key, allowed):
    with pytest.raises(ConfigError) as refused:
        load_spec(raw)
    message = str(refused.value)
    assert f"pixtral:{key}" in message and allowed in message, message
    assert "hunter2" not in message, "a credential in a URL must not be printed"


@pytest.mark.parametrize("raw", [
    {"target": "aws", "allowedCidrs": json.dumps(json.loads(_cidrs(60)) + json.loads(_cidrs(60, 6)))},
    {"target": "gcp", "replicas": "3", "spot": "true", "onDemandBaseReplicas": "2"},
    {"target": "aws", "replicas": "2", "internal": "true"},
    {"target": "aws", "port": "9000", "maxImagesPerPrompt": "2", "gpuMemoryUtilization": "0.5"},
    _hpa(targetQueuePerReplica=0.001),
    _hpa(targetQpsPerReplica=1_000_000),
], ids=["60-per-family", "base-below-max", "internal-fleet", "plain-numbers", "smallest-target", "largest-target"])
def test_the_limits_themselves_are_accepted(raw):
    load_spec(raw)


def test_the_smallest_target_is_not_rounded_to_nothing():
    autoscale = load_spec(_hpa(targetQueuePerReplica=0.001)).scaling.autoscale
    assert quantity(autoscale.target) == "1m"


# -- Scale to zero (docs/scaling.md): accepted exactly where the target can wake a fleet, refused by name elsewhere --

# The least each target needs besides autoscale (a pod target's autoscaler reads its own metrics source).
AUTOSCALED = {"aws": {"target": "aws"}, "gcp": {"target": "gcp"}, "kubernetes": {**K8S, "autoscaler": "hpa"},
              "eks": {"target": "eks", "autoscaler": "hpa"}, "gke": {"target": "gke"}}
# What a platform needs beside minReplicas 0 (each refused by name otherwise, in test_kubernetes_scale_to_zero.py):
# on Kubernetes, KEDA with its HTTP add-on, whose interceptor the program connects to the pods over plain HTTP.
_KEDA_AT_ZERO = {"autoscaler": "keda", "prometheusUrl": "http://prometheus.monitoring.svc:9090", "tls": "false"}
AT_ZERO = {"kubernetes": _KEDA_AT_ZERO, "eks": _KEDA_AT_ZERO, "gke": {"tls": "false"}}


@pytest.mark.parametrize("name", sorted(AUTOSCALED))
def test_min_replicas_zero_is_accepted_exactly_where_the_target_declares_it_can_wake_a_fleet(name):
    from pixtral_deploy import targets

    raw = AUTOSCALED[name]
    assert load_spec({**raw, "autoscale": _autoscale()}).scaling.min_replicas == 1
    reason = targets.get(name).cannot_scale_to_zero
    if reason is None:
        zero = {**raw, **AT_ZERO.get(name, {}), "autoscale": _autoscale(minReplicas=0)}
        assert load_spec(zero).scaling.min_replicas == 0
        return
    with pytest.raises(ConfigError) as refused:
        load_spec({**raw, "autoscale": _autoscale(minReplicas=0)})
    message = str(refused.value)
    assert "pixtral:autoscale" in message and "minReplicas=0" in message and f"target {name}" in message, message
    assert "1 or more" in message and reason in message, message


def test_a_negative_minimum_is_still_refused_naming_the_field():
    with pytest.raises(ConfigError) as refused:
        load_spec({"target": "aws", "autoscale": _autoscale(minReplicas=-1)})
    assert "autoscale.minReplicas" in str(refused.value) and "from 0" in str(refused.value)


# -- Cloud Armor on the GCP fleet ---------------------------------------------------------------------------------

POLICY_TYPES = {False: "gcp:compute/securityPolicy:SecurityPolicy",
                True: "gcp:compute/regionSecurityPolicy:RegionSecurityPolicy"}
BACKEND_TYPES = {False: "gcp:compute/backendService:BackendService",
                 True: "gcp:compute/regionBackendService:RegionBackendService"}


@pytest.mark.parametrize("internal", [False, True], ids=["external", "internal"])
def test_a_wholly_open_ipv6_family_leaves_ipv4_clients_filtered(internal):
    cidrs = ["10.0.0.0/8", "::/0"]
    run = run_stack("gcp-fleet", {"pixtral:allowedCidrs": json.dumps(cidrs), "pixtral:internal": str(internal).lower()})
    assert run["error"] is None, run["error"]
    (policy,) = resources_of(run, POLICY_TYPES[internal])
    rules = policy["inputs"]["rules"]
    allowed = [r["match"]["config"]["srcIpRanges"] for r in rules if r["action"] == "allow"]
    assert "10.0.0.0/8" in [cidr for ranges in allowed for cidr in ranges]
    assert [r["match"]["config"]["srcIpRanges"] for r in rules if r["action"].startswith("deny")] == [["*"]]
    (backend,) = resources_of(run, BACKEND_TYPES[internal])
    assert backend["inputs"]["securityPolicy"] == policy["outputs"]["selfLink"]


def test_no_policy_only_when_every_ipv4_address_is_admitted():
    run = run_stack("gcp-fleet", {"pixtral:allowedCidrs": '["0.0.0.0/1", "128.0.0.0/1", "2001:db8::/32"]'})
    assert run["error"] is None and not resources_of(run, POLICY_TYPES[False])


# -- Kubernetes' $(VAR) expansion -----------------------------------------------------------------------------------

TEMPLATE = "$(VLLM_API_KEY)-$$(HF_TOKEN)-$(HOME)-$é-{{ x }}$"


def test_the_pod_runs_exactly_the_arguments_the_program_passes_after_the_kubelet_expands_them():
    key, token = "sk-expansion-test-key-0123456789", "hf_expansion_test_token_0123456789"
    run = run_stack("k8s", {"pixtral:extraArgs": json.dumps(["--chat-template", TEMPLATE])},
                    secrets={"pixtral:apiKey": key, "pixtral:hfToken": token})
    assert run["error"] is None, run["error"]
    (container,) = pod_controller(run)["inputs"]["spec"]["template"]["spec"]["containers"]
    environment = {"VLLM_API_KEY": key, "HF_TOKEN": token}
    for variable in container["env"]:
        if "value" in variable:
            environment[variable["name"]] = expand(variable["value"], environment)
    server = load_spec({k.split(":", 1)[1]: v for k, v in run["config"].items()
                              if k.startswith("pixtral:") and k != "pixtral:hfToken" and k != "pixtral:apiKey"}).server
    received = [expand(arg, environment) for arg in container["args"]]
    assert received == vllm_args(server) and received[-1] == TEMPLATE
    assert not any(key in arg or token in arg for arg in received), "the key reached vLLM's command line"
    assert environment["HOME"] == next(v["value"] for v in container["env"] if v["name"] == "HOME")


# -- credentials ----------------------------------------------------------------------------------------------------

def test_a_plain_kubeconfig_that_holds_a_token_is_refused_without_showing_it():
    kubeconfig = "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: sk-plain-kubeconfig-token\n"
    run = run_stack("k8s", {"pixtral:kubeconfig": kubeconfig})
    assert run["error"] and "pixtral:kubeconfig" in run["error"] and "secret" in run["error"]
    assert "sk-plain-kubeconfig-token" not in run["error"] and run["resources"] == []


def test_a_plain_kubeconfig_that_signs_in_through_an_exec_plugin_is_accepted():
    kubeconfig = json.dumps({"apiVersion": "v1", "kind": "Config", "users": [{"name": "u", "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws", "args": ["eks", "get-token"]}}}]})
    run = run_stack("k8s", {"pixtral:kubeconfig": kubeconfig})
    assert run["error"] is None, run["error"]


@pytest.mark.parametrize(("key", "value", "entries"), [
    ("prometheusBasicAuth", "reader:pa:ss-word-1", {"username": "reader", "password": "pa:ss-word-1"}),
    ("prometheusBearerToken", "prom-bearer-token-1", {"bearerToken": "prom-bearer-token-1"}),
], ids=["basic", "bearer"])
def test_prometheus_credentials_reach_keda_through_a_secret_and_a_trigger_authentication(key, value, entries):
    run = run_stack("k8s-autoscale", secrets={f"pixtral:{key}": value})
    assert run["error"] is None, run["error"]
    documents = {(d["kind"], d["metadata"]["name"]): d for d in manifests(run["resources"], redact_secrets=False)}
    (scaled,) = [d for (kind, _), d in documents.items() if kind == "ScaledObject"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["metadata"]["authModes"] == {"prometheusBasicAuth": "basic"}.get(key, "bearer")
    auth = documents[("TriggerAuthentication", trigger["authenticationRef"]["name"])]
    (secret_name,) = {ref["name"] for ref in auth["spec"]["secretTargetRef"]}
    secret = documents[("Secret", secret_name)]
    assert secret["stringData"] == entries
    assert {ref["parameter"]: secret["stringData"][ref["key"]] for ref in auth["spec"]["secretTargetRef"]} == entries
    for document in (scaled, auth, secret):
        validate(document)
    assert value not in json.dumps(scaled) + json.dumps(auth) + json.dumps(run["outputs"])


@pytest.mark.parametrize(("stack", "key"), [("aws", "kubeconfig"), ("gcp", "prometheusBasicAuth")])
def test_a_secret_set_for_another_target_is_refused_not_ignored(stack, key):
    run = run_stack(stack, secrets={f"pixtral:{key}": "reader:secret-never-used"})
    assert run["error"] and f"pixtral:{key} only applies to target" in run["error"], run["error"]
    assert "secret-never-used" not in run["error"] and run["resources"] == []


def test_prometheus_credentials_set_in_plain_are_refused():
    run = run_stack("k8s-autoscale", {"pixtral:prometheusBearerToken": "prom-bearer-token-1"})
    assert run["error"] and "pixtral:prometheusBearerToken is set as plain configuration" in run["error"]
    assert run["resources"] == []


@pytest.mark.parametrize(("stack", "length", "limit"), [("aws", 4097, "4096"), ("gcp", 65537, "65536"),
                                                         ("k8s", 131059, "131058")])
def test_an_api_key_longer_than_the_targets_store_holds_is_refused(stack, length, limit):
    run = run_stack(stack, secrets={"pixtral:apiKey": "k" * length})
    assert run["error"] and f"pixtral:apiKey is {length} characters long" in run["error"] and limit in run["error"]
    assert "k" * 64 not in run["error"] and run["resources"] == []


def test_an_api_key_as_long_as_ssm_holds_is_stored():
    run = run_stack("aws", secrets={"pixtral:apiKey": "k" * 4096})
    assert run["error"] is None, run["error"]
