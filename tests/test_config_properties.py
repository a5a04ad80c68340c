"""Any stack configuration either deploys or is refused with a ConfigError naming a `pixtral:` key: never a crash.

Hypothesis draws configurations for every target from each key's plausible values, values of other keys, and
hostile text (nan, inf, control characters, huge numbers, JSON of the wrong shape). The validation layer takes many
examples in-process; the whole program under the mock engine takes a few (each is a process of its own), so the
suite stays within CI's time. Both are derandomized: a failure is the same failure on every run.
"""

from __future__ import annotations

import ipaddress
import json
import re

import pytest
from conftest import STACKS, resources_of, run_stack, target_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.pod_autoscaler import quantity
from pixtral_deploy import targets
from pixtral_deploy.catalog import GPUS, MACHINE_TYPES
from pixtral_deploy.cloudinit import declared_user_data
from pixtral_deploy.keys import CONFIG_KEYS, KEYS
from pixtral_deploy.network import wholly_open_families
from pixtral_deploy.scaling import MAX_TARGET, MIN_TARGET
from pixtral_deploy.spec import ConfigError, load_spec

TARGETS, VM_TARGETS = targets.names(), targets.of_platform("vm")

HOSTILE_NUMBERS = ["nan", "inf", "-inf", "1e309", "-1", "0", "0.0", "1.5", "99999999999999999999"]
HOSTILE_TEXT = ["", " ", "true", "yes", "null", "[]", "{}", '["a"]', '{"a": 1}', "[1, 2]", '"x"', "a\nb", "x\x00",
                "\u2028", "é", "../etc", "--port", "0.0.0.0/0", "::/0", "10.0.0.0/8"]
PLAUSIBLE: dict[str, list[str]] = {
    "instanceType": [m for m in MACHINE_TYPES if "." in m] + ["t3.large", "p6-b200.48xlarge"],
    "instanceTypes": ['["g6e.xlarge", "g6e.2xlarge"]', '["g6e.xlarge", "g6e.12xlarge"]', '["g6.xlarge"]'],
    "machineType": [m for m in MACHINE_TYPES if "." not in m],
    "machineTypes": ['["g2-standard-24", "g2-standard-48"]', '["g2-standard-8"]'],
    "acceleratorType": sorted(GPUS) + ["nvidia-b300"],
    "gpuType": sorted(GPUS),
    "gpuCount": ["1", "2", "8", "17"],
    "gpuMemoryGb": ["16", "24", "80", "180"],
    "quantization": ["none", "fp8", "int4"],
    "maxModelLen": ["4096", "32768", "131072", "1048576"],
    "gpusPerReplica": ["1", "2", "4"],
    "tensorParallelSize": ["1", "2", "3", "8"],
    "autoscale": ['{"minReplicas": 1, "maxReplicas": 4, "targetQpsPerReplica": 1.5}',
                  '{"minReplicas": 2, "maxReplicas": 1, "targetQueuePerReplica": 3}',
                  '{"minReplicas": 1, "maxReplicas": 2}'],
    "extraArgs": ['["--enable-prefix-caching"]', '["--api_key", "x"]', '["-tp", "8"]', '["--max-num-seqs", "64"]'],
    "allowedCidrs": ['["203.0.113.0/24"]', '["0.0.0.0/1", "128.0.0.0/1"]', '["2001:db8::/32"]', "[]"],
    "nodeSelector": ['{"pool": "gpu"}', '{"a": 1}'],
    "serviceType": ["LoadBalancer", "ClusterIP", "NodePort"],
    "namespace": ["pixtral", "default", "team-a"],
    "tls": ["true", "false"],
    "domain": ["pixtral.example.com", "pixtral.example.com.", "Pixtral.Example.com", "localhost"],
    "dnsZone": ["Z0123456789ABCDEFGHIJ", "example-com"],
}
SECRET_KEYS = {key.name for key in CONFIG_KEYS if key.secret}


def _plausible(key) -> st.SearchStrategy[str]:
    default = [] if key.default is None else [key.default if isinstance(key.default, str) else json.dumps(
        key.default)]
    return st.sampled_from(PLAUSIBLE.get(key.name, []) + default or ["1"])


def _hostile(key) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(HOSTILE_NUMBERS), st.sampled_from(HOSTILE_TEXT), st.text(max_size=12),
                     st.integers(-5, 70000).map(str))


PLAUSIBLE_VALUES = {key.name: _plausible(key) for key in CONFIG_KEYS}
HOSTILE_VALUES = {key.name: _hostile(key) for key in CONFIG_KEYS}
ANY_TARGET = st.sampled_from(TARGETS)


@st.composite
def configurations(draw, target: st.SearchStrategy[str] = ANY_TARGET) -> dict[str, str]:
    chosen = draw(target)
    # The target's own keys, and now and then another target's (which must be refused by name).
    own = [k.name for k in CONFIG_KEYS if chosen in k.targets and k.name != "target" and k.name not in SECRET_KEYS]
    picked = draw(st.lists(st.sampled_from(own), max_size=5, unique=True))
    raw = {"target": chosen, **{name: draw(PLAUSIBLE_VALUES[name]) for name in picked}}
    # At most one hostile value, so that the others parse and the check reaches the logic behind them.
    if own and draw(st.booleans()):
        name = draw(st.sampled_from(own))
        raw[name] = draw(HOSTILE_VALUES[name])
    if draw(st.integers(0, 9)) == 0:
        raw[draw(st.sampled_from([k.name for k in CONFIG_KEYS if chosen not in k.targets]))] = "1"
    return raw


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(configurations())
def test_the_validation_accepts_or_names_a_key_for_any_configuration(raw):
    try:
        deployment = load_spec(raw)
    except ConfigError as error:
        assert "pixtral:" in str(error), f"{raw} was refused without naming a key: {error}"
        assert "Traceback" not in str(error) and "None is not allowed" not in str(error)
    else:
        assert deployment.target == raw["target"]


STACK_OF_TARGET = {target_of(stack): stack for stack in reversed(STACKS)}


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(configurations(st.sampled_from(sorted(STACK_OF_TARGET))))
def test_the_whole_program_deploys_or_refuses_by_name_under_the_mock_engine(raw):
    stack = STACK_OF_TARGET[raw["target"]]
    run = run_stack(stack, {f"pixtral:{name}": value for name, value in raw.items()})
    if run["error"] is not None:
        assert "pixtral:" in run["error"], f"{raw} failed without naming a key: {run['error']}"
        assert run["resources"] == [] or "pixtral:vpcId" in run["error"], run["error"]
    else:
        assert run["outputs"]["endpoint"] and run["outputs"]["target"] == raw["target"]


# -- The sweep of issue #22: nested autoscale maps, CIDR lists, names and secrets; "applied exactly or refused". --

# Text a careless or hostile user puts where a number goes: Unicode digits (str.isdigit() takes "²"), Python-only
# spellings ("1_0"), numbers past a float or past int()'s 4300 digits, and JSON of the wrong type.
HOSTILE_NUMBERS_IN_JSON = st.one_of(
    st.integers(-3, 1200), st.sampled_from([10 ** 400, -(10 ** 400), 2 ** 64]),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(0.0001, 2e6),
    st.sampled_from(["²", "٢", "١٠", "1_0", " 3", "+2", "0x10", "1e3", "3", "2.5", "0.0004", "1e308", ""]),
    st.booleans(), st.none(), st.just([1]), st.just({"a": 1}))
AUTOSCALE_FIELDS = ("minReplicas", "maxReplicas", "targetQpsPerReplica", "targetQueuePerReplica",
                    "upscaleDelaySeconds", "downscaleDelaySeconds")
AUTOSCALE_MAPS = st.one_of(
    st.fixed_dictionaries({"minReplicas": st.integers(0, 6), "maxReplicas": st.integers(0, 9)},
                          optional={"targetQpsPerReplica": st.one_of(st.floats(0.0001, 2e6), HOSTILE_NUMBERS_IN_JSON),
                                    "targetQueuePerReplica": st.one_of(st.floats(0.0001, 2e6),
                                                                       HOSTILE_NUMBERS_IN_JSON),
                                    "upscaleDelaySeconds": st.integers(0, 5000),
                                    "downscaleDelaySeconds": HOSTILE_NUMBERS_IN_JSON}),
    st.dictionaries(st.sampled_from((*AUTOSCALE_FIELDS, "maxReplica", "target")), HOSTILE_NUMBERS_IN_JSON,
                    max_size=6),
).map(lambda fields: json.dumps(fields))
_IPV4 = st.tuples(st.ip_addresses(v=4), st.integers(0, 32)).map(lambda a: f"{a[0]}/{a[1]}")
_IPV6 = st.tuples(st.ip_addresses(v=6), st.integers(0, 128)).map(lambda a: f"{a[0]}/{a[1]}")
NETWORKS = st.one_of(
    _IPV4.map(lambda c: str(ipaddress.ip_network(c, strict=False))),
    _IPV6.map(lambda c: str(ipaddress.ip_network(c, strict=False))),
    st.sampled_from(["0.0.0.0/0", "::/0", "0.0.0.0/1", "128.0.0.0/1", "10.0.0.0/8", "2001:db8::/32",
                     "2001:0db8::/32", "10.0.0.1/8", "300.0.0.0/8", "10.0.0.0/33", "١٠.0.0.0/8", ""]),
)
CIDR_LISTS = st.one_of(
    st.lists(NETWORKS, max_size=6),
    # Around the security group's quota of 60 rules per IP version.
    st.integers(58, 62).map(lambda n: [f"10.{i // 250}.{i % 250}.0/24" for i in range(n)]),
).map(json.dumps)
NAMES = st.one_of(st.from_regex(r"[a-z0-9][-a-z0-9.]{0,20}", fullmatch=True), st.text(max_size=20),
                  st.sampled_from(["default", "kube-system", "a" * 64, "pixtral.example.com", "x\ny", "é"]))
SWEEP_VALUES: dict[str, st.SearchStrategy[str]] = {
    "autoscale": AUTOSCALE_MAPS,
    "allowedCidrs": CIDR_LISTS,
    "clusterApiCidrs": CIDR_LISTS,
    "namespace": NAMES,
    "servedModelName": NAMES,
    "domain": NAMES,
    "prometheusUrl": st.sampled_from(["http://prom:9090", "http://u:p@prom:9090", "http://prom:9090/?t=1",
                                      "http://[::1", "https://prom.monitoring.svc:9090/prometheus"]),
    "internal": st.sampled_from(["true", "false", "True", "1"]),
    "spot": st.sampled_from(["true", "false"]),
    "onDemandBaseReplicas": st.one_of(st.integers(0, 5).map(str), st.sampled_from(["²", "1_0", "-1", " 1"])),
    "replicas": st.one_of(st.integers(1, 5).map(str), st.sampled_from(["٢", "1_0", "1" * 400, "3.0"])),
    "autoscaler": st.sampled_from(["keda", "hpa"]),
}
SWEEP_KEYS = sorted(SWEEP_VALUES)

FAMILY_MIXES = st.lists(st.sampled_from(["0.0.0.0/0", "::/0", "0.0.0.0/1", "128.0.0.0/1", "10.0.0.0/8",
                                          "2001:db8::/32", "198.51.100.0/24"]),
                        min_size=1, max_size=3, unique=True).map(json.dumps)
WELL_FORMED_AUTOSCALE = st.builds(
    lambda low, extra, metric, target: json.dumps({"minReplicas": low, "maxReplicas": low + extra, metric: target}),
    st.integers(1, 3), st.integers(0, 3), st.sampled_from(["targetQpsPerReplica", "targetQueuePerReplica"]),
    st.sampled_from([0.5, 2, 3]))


def _sweep_value(name: str) -> st.SearchStrategy[str]:
    return SWEEP_VALUES.get(name, PLAUSIBLE_VALUES[name])


@st.composite
def sweep_configurations(draw, target: st.SearchStrategy[str] = ANY_TARGET) -> dict[str, str]:
    """A configuration with several of the swept keys (and now and then others), so that they meet each other."""
    chosen = draw(target)
    own = [name for name in SWEEP_KEYS if chosen in KEYS[name].targets]
    others = [k.name for k in CONFIG_KEYS if chosen in k.targets and k.name not in SECRET_KEYS and k.name != "target"]
    picked = draw(st.lists(st.sampled_from(own), min_size=1, max_size=4, unique=True))
    picked += draw(st.lists(st.sampled_from(others), max_size=2, unique=True))
    raw = {"target": chosen, **{name: draw(_sweep_value(name)) for name in dict.fromkeys(picked)}}
    if chosen == "kubernetes" and "gpuType" not in raw:
        raw["gpuType"] = "nvidia-l40s"  # else most examples stop at the one required key
    return raw


def _named_keys(message: str) -> set[str]:
    return set(re.findall(r"pixtral:([A-Za-z]+)", message))


def assert_refused_by_name(raw: dict, message: str) -> None:
    named = _named_keys(message)
    assert named and named <= set(KEYS), f"{raw} was refused without naming a key: {message}"
    for crash in ("Traceback", "OverflowError", "invalid literal", "JSONDecodeError", "RecursionError"):
        assert crash not in message, message


def assert_applied_exactly(raw: dict, deployment) -> None:
    """What the Deployment says it will do is what was asked, and nothing the components cannot honour."""
    scaling = deployment.scaling
    if "allowedCidrs" in raw:
        assert list(deployment.allowed_cidrs) == json.loads(raw["allowedCidrs"])
    if scaling.internal:
        assert deployment.target in VM_TARGETS and scaling.is_fleet, "internal accepted where nothing applies it"
    if scaling.on_demand_base_replicas:
        assert scaling.spot and scaling.is_fleet and scaling.on_demand_base_replicas < scaling.max_replicas
    if "autoscale" in raw:
        autoscale = scaling.autoscale
        assert MIN_TARGET <= autoscale.target <= MAX_TARGET and autoscale.min_replicas <= autoscale.max_replicas
        assert quantity(autoscale.target) != "0"
        asked = json.loads(raw["autoscale"])
        assert (autoscale.min_replicas, autoscale.max_replicas) == (asked["minReplicas"], asked["maxReplicas"])
        assert scaling.on_demand_base_replicas <= autoscale.min_replicas, "an on-demand base above the floor"
        assert autoscale.min_replicas > 0 or deployment.runs_on.cannot_scale_to_zero is None, \
            "a fleet at zero accepted where nothing wakes it"
    if "replicas" in raw and "autoscale" not in raw:
        assert scaling.replicas == int(raw["replicas"])
    if "onDemandBaseReplicas" in raw:
        assert scaling.on_demand_base_replicas == int(raw["onDemandBaseReplicas"])


@st.composite
def capacity_configurations(draw) -> dict[str, str]:
    """The VM targets' capacity keys together: one VM or a fleet, spot or not, an on-demand base, internal."""
    raw = {"target": draw(st.sampled_from(VM_TARGETS)), "spot": draw(st.sampled_from(["true", "false"])),
           "onDemandBaseReplicas": str(draw(st.integers(0, 5))), "internal": draw(st.sampled_from(["true", "false"]))}
    if draw(st.booleans()):
        raw["replicas"] = str(draw(st.integers(1, 5)))
    else:
        raw["autoscale"] = draw(WELL_FORMED_AUTOSCALE)
    return raw


@settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(sweep_configurations(), capacity_configurations()))
def test_swept_settings_are_applied_exactly_or_refused_by_name(raw):
    try:
        deployment = load_spec(raw)
    except ConfigError as error:
        assert_refused_by_name(raw, str(error))
    else:
        assert_applied_exactly(raw, deployment)


# The whole program under the mock engine: what the declared resources do, for the settings a user cannot see
# applied from the outside until it is too late.
SWEPT_STACKS = ("aws", "aws-fleet", "gcp", "gcp-fleet", "k8s-autoscale")
RESOURCE_SWEEP = {"aws": ("internal", "spot", "onDemandBaseReplicas", "replicas", "autoscale"),
                  "gcp": ("internal", "spot", "onDemandBaseReplicas", "replicas", "autoscale"),
                  "kubernetes": ("autoscale", "autoscaler", "replicas", "prometheusUrl")}


# What a user plausibly sets, so that most runs reach the resources; the hostile values are the in-process sweep's.
RESOURCE_VALUES: dict[str, st.SearchStrategy[str]] = {
    "internal": st.sampled_from(["true", "false"]),
    "spot": st.sampled_from(["true", "false"]),
    "onDemandBaseReplicas": st.integers(0, 3).map(str),
    "replicas": st.integers(1, 4).map(str),
    "autoscale": WELL_FORMED_AUTOSCALE,
    "autoscaler": st.sampled_from(["keda", "hpa"]),
    "prometheusUrl": st.sampled_from(["http://prom:9090", "http://u:p@prom:9090"]),
}


@st.composite
def stack_runs(draw) -> tuple[str, dict[str, str]]:
    stack = draw(st.sampled_from(SWEPT_STACKS))
    target = target_of(stack)
    names = draw(st.lists(st.sampled_from(RESOURCE_SWEEP[target]), min_size=1, max_size=4, unique=True))
    settings_ = {f"pixtral:{name}": draw(RESOURCE_VALUES[name]) for name in names}
    # Every run sets its networks, mostly as mixes of wholly open and narrow families (where a filter can go missing).
    settings_["pixtral:allowedCidrs"] = draw(st.one_of(FAMILY_MIXES, FAMILY_MIXES, CIDR_LISTS))
    if "pixtral:replicas" in settings_ or "pixtral:autoscale" in settings_:
        # The fleet stacks ship an autoscale map: a drawn replicas count replaces it rather than meeting it.
        settings_.setdefault("pixtral:autoscale", "")
        settings_.setdefault("pixtral:replicas", "")
    return stack, settings_


def _config(run: dict, name: str, default: str) -> str:
    value = run["config"].get(f"pixtral:{name}", "")
    return value if value != "" else default


def assert_resources_apply(run: dict) -> None:
    target = run["config"]["pixtral:target"]
    types = [r["type"] for r in run["resources"]]
    spot = _config(run, "spot", "false") == "true"
    internal = _config(run, "internal", "false") == "true"
    autoscaled = _config(run, "autoscale", "") != ""
    cidrs = json.loads(_config(run, "allowedCidrs", '["0.0.0.0/0"]'))
    fleet = any(t.endswith(":GpuFleet") for t in types)
    if target == "aws":
        assert ("aws:ec2/eip:Eip" in types) == (not fleet), "a single VM has its address; a fleet's replicas none"
        rules = [r["inputs"] for r in resources_of(run, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
                 if r["inputs"].get("description") == "Pixtral OpenAI-compatible API"]
        assert sorted(r.get("cidrIpv4") or r.get("cidrIpv6") for r in rules) == sorted(cidrs)
        if fleet:
            (balancer,) = resources_of(run, "aws:lb/loadBalancer:LoadBalancer")
            assert balancer["inputs"].get("internal", False) == internal
            (template,) = resources_of(run, "aws:ec2/launchTemplate:LaunchTemplate")
            assert template["inputs"]["networkInterfaces"][0]["associatePublicIpAddress"] == str(not internal).lower()
            (group,) = resources_of(run, "aws:autoscaling/group:Group")
            distribution = group["inputs"]["mixedInstancesPolicy"]["instancesDistribution"]
            assert distribution["onDemandPercentageAboveBaseCapacity"] == (0 if spot else 100)
            assert distribution.get("onDemandBaseCapacity", 0) == int(_config(run, "onDemandBaseReplicas", "0"))
            assert bool(resources_of(run, "aws:autoscaling/policy:Policy")) == autoscaled
        else:
            (instance,) = resources_of(run, "aws:ec2/instance:Instance")
            market = (instance["inputs"].get("instanceMarketOptions") or {}).get("marketType")
            assert market == ("spot" if spot else None)
    elif target == "gcp":
        if fleet:
            assert bool(resources_of(run, "gcp:compute/globalAddress:GlobalAddress")) == (not internal)
            policies = [r for r in run["resources"] if r["type"].endswith("ecurityPolicy:SecurityPolicy")
                        or r["type"].endswith("regionSecurityPolicy:RegionSecurityPolicy")]
            assert bool(policies) == (4 not in wholly_open_families(cidrs)), "a family not wholly open went unfiltered"
            for policy in policies:
                allowed = [c for r in policy["inputs"]["rules"] if r["action"] == "allow"
                           for c in r["match"]["config"]["srcIpRanges"]]
                assert allowed == cidrs
            templates = resources_of(run, "gcp:compute/instanceTemplate:InstanceTemplate")
            assert any(t["inputs"]["scheduling"].get("provisioningModel") == "SPOT" for t in templates) == spot
            assert bool(resources_of(run, "gcp:compute/regionAutoscaler:RegionAutoscaler")) == autoscaled
        else:
            (instance,) = resources_of(run, "gcp:compute/instance:Instance")
            assert (instance["inputs"]["scheduling"].get("provisioningModel") == "SPOT") == spot
            assert instance["inputs"]["networkInterfaces"][0]["accessConfigs"], "one VM keeps its public address"
            ranges = [c for r in resources_of(run, "gcp:compute/firewall:Firewall")
                      if r["inputs"].get("description") == "Pixtral OpenAI-compatible API"
                      for c in r["inputs"]["sourceRanges"]]
            assert sorted(ranges) == sorted(cidrs)
    else:
        kinds = {r["inputs"].get("kind") for r in run["resources"]}
        assert bool(kinds & {"ScaledObject", "HorizontalPodAutoscaler"}) == autoscaled


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(stack_runs())
def test_declared_resources_apply_exactly_what_was_asked_or_nothing_is_declared(stack_and_settings):
    stack, settings_ = stack_and_settings
    run = run_stack(stack, settings_)
    if run["error"] is not None:
        assert_refused_by_name(settings_, run["error"])
        assert run["resources"] == [] or "pixtral:vpcId" in run["error"], run["error"]
    else:
        assert_resources_apply(run)


# Secrets: any value is stored only in the target's secret store, or refused naming the key and never the value.
SECRET_HOLDERS = {"aws:ssm/parameter:Parameter": "value", "gcp:secretmanager/secretVersion:SecretVersion": "secretData",
                  "kubernetes:core/v1:Secret": "stringData"}
SECRET_STACKS = {"aws": ("apiKey", "hfToken"), "gcp": ("apiKey", "hfToken"),
                 "k8s-autoscale": ("apiKey", "hfToken", "prometheusBasicAuth", "prometheusBearerToken")}
# A prefix no resource carries by chance, so that finding the value anywhere means the secret leaked.
SECRET_PREFIX = "Zq9x-"
SECRET_VALUES = st.one_of(
    st.from_regex(r"[!-~]{11,40}", fullmatch=True), st.text(min_size=0, max_size=30),
    st.sampled_from(["user:pass word", "nocolon-token-value", ":no-user-here", "tab\there-and-more-text"]),
    st.sampled_from([4096, 4097, 65537]).map(lambda n: "k" * (n - len(SECRET_PREFIX))),
).map(lambda value: SECRET_PREFIX + value)


# USER:PASSWORD as basic authentication takes it (half of the draws), or any of the values above.
BASIC_AUTH_VALUES = st.one_of(st.from_regex(r"[!-9;-~]{1,12}:[ -~]{1,20}", fullmatch=True).map(
    lambda value: SECRET_PREFIX + value), SECRET_VALUES)


def secret_settings(stack: str) -> st.SearchStrategy[dict[str, str]]:
    return st.lists(st.sampled_from(SECRET_STACKS[stack]), min_size=1, max_size=2, unique=True).flatmap(
        lambda keys: st.fixed_dictionaries({f"pixtral:{key}": BASIC_AUTH_VALUES if key == "prometheusBasicAuth"
                                            else SECRET_VALUES for key in keys}))


@pytest.mark.parametrize("stack", sorted(SECRET_STACKS))
@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_secret_is_stored_only_in_the_secret_store_or_refused_without_being_shown(stack, data):
    secrets = data.draw(secret_settings(stack))
    run = run_stack(stack, secrets=secrets)
    if run["error"] is not None:
        assert _named_keys(run["error"]) & {key.split(":", 1)[1] for key in secrets}, run["error"]
        assert not any(value in run["error"] for value in secrets.values()), "a refusal printed the secret"
        assert run["resources"] == []
        return
    for resource in run["resources"]:
        holder = SECRET_HOLDERS.get(resource["type"])
        outside = json.dumps({k: v for k, v in resource["inputs"].items() if k != holder}) + (
            declared_user_data(resource) or "")
        for value in secrets.values():
            assert json.dumps(value)[1:-1] not in outside, f"{resource['type']} carries a secret outside a store"
    plain = json.dumps({k: v for k, v in run["outputs"].items() if k not in run["secret_outputs"]})
    assert not any(json.dumps(value)[1:-1] in plain + "\n".join(run["log"]) for value in secrets.values())
