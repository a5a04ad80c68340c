"""`pixtralctl render` for every shipped stack: the cloud-init the program declares, valid manifests, no secret."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from conftest import PROJECT_DIR, run_stack

from pixtral_deploy.cloudinit import declared_user_data
from pixtral_deploy.spec import KUBERNETES_VERSION


def _render(stack: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    # No Pulumi CLI and no credentials: PATH holds only the venv.
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(out.parent)}
    return subprocess.run([sys.executable, "-m", "pixtralctl", "render", "--stack", stack, "--out", str(out), *extra],
                          capture_output=True, text=True, cwd=PROJECT_DIR, env=env, timeout=300)


@pytest.fixture
def rendered(stack, tmp_path) -> Path:
    done = _render(stack, tmp_path / "out")
    assert done.returncode == 0, done.stdout + done.stderr
    # A review step that ends in a traceback (even an "ignored" one from the SDK's event loops) reads as a crash.
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    return tmp_path / "out"


def test_render_writes_the_cloud_init_the_program_declares(stack, rendered):
    run = run_stack(stack)
    declared = {r["name"]: declared_user_data(r) for r in run["resources"] if declared_user_data(r)}
    files = {p.stem: p.read_text() for p in (rendered / "cloud-init").glob("*.yaml")}
    assert files == declared


def test_render_writes_valid_manifests_for_every_kubernetes_object(stack, rendered):
    run = run_stack(stack)
    kubernetes_objects = [r for r in run["resources"] if r["type"].startswith("kubernetes:")]
    manifests = sorted((rendered / "manifests").glob("*.yaml")) if (rendered / "manifests").exists() else []
    assert len(manifests) == len(kubernetes_objects)
    for path in manifests:
        kubernetes_validate.validate(yaml.safe_load(path.read_text()), f"{KUBERNETES_VERSION}.0", strict=True)


def test_render_lists_every_resource_and_no_secret(stack, rendered):
    run = run_stack(stack)
    table = (rendered / "resources.md").read_text()
    for resource in run["resources"]:
        head = f"| `{resource['type']}` | {resource['name']} |"
        (row,) = [line for line in table.splitlines() if line.startswith(head)]
        for option in resource["options"]:
            assert f"{option}=" in row, f"{resource['name']}: option {option} not shown"
    api_key = run["outputs"]["apiKey"]
    for path in rendered.rglob("*"):
        if path.is_file():
            assert api_key not in path.read_text(), f"{path.name} contains the API key"
    assert json.loads((rendered / "outputs.json").read_text())["apiKey"] == "<secret>"


def test_render_reports_bad_config_and_writes_nothing(tmp_path):
    done = _render("aws", tmp_path / "out", "--set", "port=0")
    assert done.returncode == 1
    assert "pixtral:port" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "out").exists()


def test_render_names_the_shipped_stacks_for_an_unknown_one(tmp_path):
    done = _render("azure", tmp_path / "out")
    assert done.returncode == 2 and "aws" in done.stdout
