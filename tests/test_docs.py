"""The example CI workflow stays runnable: every pixtralctl command in it parses with the real CLI."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from pixtralctl.__main__ import parser

WORKFLOW = Path(__file__).resolve().parent.parent / "docs/ci-deploy-and-smoke.yml"


def _steps() -> list[dict]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_example_workflow_deploys_waits_smokes_and_always_tears_down():
    runs = [step.get("run", "") for step in _steps()]
    order = [next(i for i, run in enumerate(runs) if marker in run)
             for marker in ("pulumi up", "pixtralctl wait", "pixtralctl smoke", "pulumi destroy")]
    assert order == sorted(order)
    (teardown,) = [step for step in _steps() if "pulumi destroy" in step.get("run", "")]
    assert teardown["if"] == "always()"


def test_every_pixtralctl_command_in_the_workflow_parses():
    commands = [step["run"] for step in _steps() if "pixtralctl " in step.get("run", "")]
    assert len(commands) >= 4
    for command in commands:
        words = shlex.split(command.replace('"$STACK"', "aws"))
        parser().parse_args(words[words.index(next(w for w in words if w.endswith("pixtralctl"))) + 1:])
