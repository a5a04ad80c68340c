"""Any stack configuration either deploys or is refused with a ConfigError naming a `pixtral:` key: never a crash.

Hypothesis draws configurations for every target from each key's plausible values, values of other keys, and
hostile text (nan, inf, control characters, huge numbers, JSON of the wrong shape). The validation layer takes many
examples in-process; the whole program under the mock engine takes a few (each is a process of its own), so the
suite stays within CI's time. Both are derandomized: a failure is the same failure on every run.
"""

from __future__ import annotations

import json

from conftest import STACKS, run_stack, target_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixtral_deploy.catalog import GPUS, MACHINE_TYPES
from pixtral_deploy.keys import CONFIG_KEYS, TARGETS
from pixtral_deploy.spec import ConfigError, load_deployment

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
        deployment = load_deployment(raw)
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
