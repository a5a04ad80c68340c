"""One fleet plan (docs/scaling.md): for the same server, the AWS fleet's balancer, the GCP fleet's balancer, the
VMs' vLLM and the pods drain a leaving replica for the same time and wait for a response for the same time."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import pod_controller, resources_of, run_stack, vm_files


def _flag(args: list[str], flag: str) -> int:
    return int(args[args.index(flag) + 1])


def _numbers(context: str) -> dict[str, dict[str, int]]:
    asked = {"pixtral:maxModelLen": context}
    aws = run_stack("aws-fleet", asked)
    (balancer,) = resources_of(aws, "aws:lb/loadBalancer:LoadBalancer")
    (target_group,) = resources_of(aws, "aws:lb/targetGroup:TargetGroup")
    gcp = run_stack("gcp-fleet", asked)
    (backend,) = resources_of(gcp, "gcp:compute/backendService:BackendService")
    pod = pod_controller(run_stack("k8s", asked))["inputs"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    pod_drain = (pod["spec"]["terminationGracePeriodSeconds"]
                 - container["lifecycle"]["preStop"]["sleep"]["seconds"])
    vm_args = vm_files(gcp)["/etc/pixtral/vllm.args"].split("\n")
    return {
        "drain": {"aws balancer": target_group["inputs"]["deregistrationDelay"],
                  "gcp balancer": backend["inputs"]["connectionDrainingTimeoutSec"],
                  "vm vLLM": _flag(vm_args, "--shutdown-timeout"),
                  "pod vLLM": _flag(container["args"], "--shutdown-timeout")},
        "pod grace over drain": {"pod": pod_drain - _flag(container["args"], "--shutdown-timeout")},
        "response timeout": {"aws balancer": balancer["inputs"]["idleTimeout"],
                             "gcp balancer": backend["inputs"]["timeoutSec"]},
    }


# The whole context at 10 tokens/s rounded up to a minute, within [5 minutes, the balancers' hour].
@pytest.mark.parametrize(("context", "expected_drain"), [("2048", 300), ("4096", 420), ("32768", 3300),
                                                         ("131072", 3600)])
def test_every_platform_drains_and_times_out_a_long_answer_alike(context, expected_drain):
    numbers = _numbers(context)
    for what in ("drain", "response timeout"):
        assert len(set(numbers[what].values())) == 1, f"maxModelLen {context}: {what} differs: {numbers[what]}"
    (drain,) = set(numbers["drain"].values())
    (timeout,) = set(numbers["response timeout"].values())
    assert drain == expected_drain
    assert timeout > drain, "a response that takes the whole drain would be cut by the balancer"
    assert numbers["pod grace over drain"]["pod"] > 0, "the kubelet would kill vLLM mid-drain"


def _readme_value(name: str) -> str:
    text = (Path(__file__).parent.parent / "docs" / "fleets.md").read_text()
    (value,) = re.findall(rf"<!-- plan:{name} -->(.*?)<!-- /plan -->", text)
    return value


def test_the_docs_plan_table_holds_the_numbers_the_program_uses():
    numbers = _numbers("32768")
    (drain,) = set(numbers["drain"].values())
    (timeout,) = set(numbers["response timeout"].values())
    (group,) = resources_of(run_stack("aws-fleet"), "aws:autoscaling/group:Group")
    assert _readme_value("drain") == f"{drain} s"
    assert _readme_value("response") == f"{timeout} s"
    assert _readme_value("grace") == f"{group['inputs']['healthCheckGracePeriod']} s (`aws-fleet`)"
