"""Shared fixtures: the real program run under the Pulumi mock engine, once per stack file and config."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from pixtral_deploy.cloudinit import declared_user_data
from pixtral_deploy.mockrun import stack_files
from pixtral_deploy.spec import VM_TARGETS

PROJECT_DIR = Path(__file__).resolve().parent.parent
STACKS = sorted(stack_files(PROJECT_DIR))


@cache
def _run(stack: str, settings: tuple[tuple[str, str], ...], secrets: tuple[tuple[str, str], ...]) -> dict:
    # One process per program run: the Pulumi SDK keeps its runtime in globals (see pixtral_deploy.mockrun).
    command = [sys.executable, "-m", "pixtral_deploy.mockrun", "--stack", stack]
    command += [f"--set={k}={v}" for k, v in settings] + [f"--secret={k}={v}" for k, v in secrets]
    done = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_DIR, timeout=300)
    if not done.stdout:
        raise AssertionError(f"mockrun crashed for stack {stack}:\n{done.stderr}")
    return json.loads(done.stdout)


def run_stack(stack: str, settings: dict[str, str] | None = None, secrets: dict[str, str] | None = None) -> dict:
    """The program's record for `stack`: resources (type, name, inputs, outputs), outputs, secret outputs, log."""
    return _run(stack, tuple(sorted((settings or {}).items())), tuple(sorted((secrets or {}).items())))


@pytest.fixture(params=STACKS)
def stack(request) -> str:
    return request.param


@pytest.fixture
def deployed(stack) -> dict:
    run = run_stack(stack)
    assert run["error"] is None, f"stack {stack} failed: {run['error']}"
    return run


def resources_of(run: dict, type_: str) -> list[dict]:
    return [r for r in run["resources"] if r["type"] == type_]


def vm_user_data(run: dict) -> str:
    """The plain cloud-config of the one VM a program run declares, or the one every template of a fleet shares
    (a fleet's standard and Spot templates boot the same document)."""
    (document,) = {declared_user_data(r) for r in run["resources"] if declared_user_data(r)}
    return document


def vm_files(run: dict) -> dict[str, str]:
    """What that cloud-config writes: path -> content."""
    return {entry["path"]: entry["content"] for entry in yaml.safe_load(vm_user_data(run))["write_files"]}


def environment_file(files: dict[str, str]) -> dict[str, str]:
    """The VM's /etc/pixtral/pixtral.env as a mapping."""
    return dict(line.split("=", 1) for line in files["/etc/pixtral/pixtral.env"].splitlines() if line)


def replicas_serve_tls(run: dict) -> bool:
    """Whether the VMs' vLLM serves HTTPS itself (and so reads a TLS key from the secret store): pixtral:tls on,
    except on the AWS fleet, whose load balancer ends TLS and forwards plain HTTP inside the VPC."""
    tls = run["config"].get("pixtral:tls", "true") != "false"
    return tls and not resources_of(run, "aws:lb/listener:Listener")


def target_of(stack: str) -> str:
    return run_stack(stack)["config"]["pixtral:target"]


def stacks_of(*targets: str) -> list[str]:
    """The shipped stacks of these targets."""
    return [stack for stack in STACKS if target_of(stack) in targets]


# The shipped stacks that run on VMs (spec.VM_TARGETS).
VM_STACKS = stacks_of(*VM_TARGETS)


def required_tool(name: str, install: str, candidates: tuple[str, ...] = ()) -> str:
    """Path of a checker the tests run. Missing on a developer's machine: skip with how to install it.
    Missing in CI (.ci/run sets PIXTRAL_REQUIRE_TOOLS=1): fail, since CI installs every tool."""
    for path in (*candidates, shutil.which(name)):
        if path and os.access(path, os.X_OK):
            return path
    message = f"{name} is not installed ({install})"
    if os.environ.get("PIXTRAL_REQUIRE_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def e2e_python() -> str:
    """The e2e venv's Python (built by .ci/install-e2e): a missing venv fails in CI and skips elsewhere."""
    python = os.environ.get("PIXTRAL_E2E_PYTHON", str(PROJECT_DIR / ".venv-e2e/bin/python"))
    if not Path(python).exists():
        message = f"no e2e venv at {python}: build it with `bash .ci/install-e2e .venv-e2e`"
        if os.environ.get("PIXTRAL_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return python
