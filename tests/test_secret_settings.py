"""A secret setting is refused, before any resource, when it is plain configuration or a value the VM would
mangle; the message names the key and never shows the value."""

from __future__ import annotations

import pytest
from conftest import STACKS, run_stack

from pixtral_deploy.secret_values import value_problem

GOOD_KEY = "sk-a-perfectly-good-key-8f2c"
# (the value, words of the rule it breaks)
BAD_VALUES = [
    ("", "is empty"),
    ("sk-short-7f3", "12 characters long"),
    ("sk-has a-space-inside-it", "a space"),
    ("sk-first-line-xxxxxx\nLD_PRELOAD=/tmp/evil.so", "control character"),
    ("sk-a-tab-inside\tthe-key-xx", "control character"),
    ("sk-key-with-\u00e9-accent-xxxx", "outside ASCII"),
]


def _assert_refused_before_any_resource(run: dict, key: str, *words: str) -> None:
    assert run["error"], "the setting was accepted"
    for word in (key, *words):
        assert word in run["error"], run["error"]
    assert "Traceback" not in run["error"]
    assert run["resources"] == [], f"resources were declared before the error: {[r['name'] for r in run['resources']]}"


@pytest.mark.parametrize("value,rule", BAD_VALUES, ids=[rule for _, rule in BAD_VALUES])
def test_each_rule_is_explained_without_the_value(value, rule):
    problem = value_problem(value)
    assert problem and rule in problem
    for part in value.split():
        assert len(part) < 6 or part not in problem


@pytest.mark.parametrize("key", ["apiKey", "hfToken"])
@pytest.mark.parametrize("value,rule", [BAD_VALUES[1], BAD_VALUES[3]], ids=["short", "newline"])
def test_malformed_secret_is_refused_without_showing_it(key, value, rule):
    run = run_stack("aws", secrets={f"pixtral:{key}": value})
    _assert_refused_before_any_resource(run, f"pixtral:{key}", rule, "printable ASCII without spaces")
    shown = run["error"] + "\n".join(run["log"])
    for part in [value, *value.split()]:
        assert part not in shown, "the error shows the secret value"


@pytest.mark.parametrize("stack", STACKS)
def test_malformed_secret_is_refused_on_every_target_before_a_cluster_or_vm(stack):
    # eks and gke declare their cluster before the workload reads its secrets: the check must come first.
    run = run_stack(stack, secrets={"pixtral:apiKey": "sk-first-line-xxxxxx\nLD_PRELOAD=/tmp/evil.so"})
    _assert_refused_before_any_resource(run, "pixtral:apiKey", "control character")


@pytest.mark.parametrize("stack,key", [(stack, "apiKey") for stack in STACKS] + [("aws", "hfToken")])
def test_plain_secret_setting_is_refused_with_the_command_to_set_it(stack, key):
    run = run_stack(stack, settings={f"pixtral:{key}": GOOD_KEY})
    _assert_refused_before_any_resource(run, f"pixtral:{key}", f"pulumi config set --secret pixtral:{key} VALUE")
    assert GOOD_KEY not in run["error"]


def test_a_well_formed_secret_key_is_used_as_given():
    run = run_stack("aws", secrets={"pixtral:apiKey": GOOD_KEY, "pixtral:hfToken": "hf_" + "x" * 34})
    assert run["error"] is None, run["error"]
    assert run["outputs"]["apiKey"] == GOOD_KEY
