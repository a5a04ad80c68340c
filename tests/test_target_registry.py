"""The extension point: a target another package adds (tests/toy/toy_target.py, found through an entry point) is
taken by the keys, the program under the mock engine, `pixtralctl render` and `pixtralctl status` with no edit
outside its own module; and the program's own targets are what the registry says they are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pixtral_deploy import targets
from pixtral_deploy.errors import ConfigError
from pixtral_deploy.keys import CONFIG_KEYS, KEYS, readme_table
from pixtral_deploy.server import vllm_args
from pixtral_deploy.spec import load_spec
from pixtralctl.status import replicas_of

PROJECT_DIR = Path(__file__).resolve().parent.parent
TOY_DIR = Path(__file__).resolve().parent / "toy"


@pytest.fixture
def toy():
    """The toy registered in this process, as its import does; gone again afterwards."""
    sys.path.insert(0, str(TOY_DIR))
    try:
        import toy_target

        targets.register(toy_target.Toy())
        yield toy_target
    finally:
        targets.unregister("toy")
        sys.modules.pop("toy_target", None)
        sys.path.remove(str(TOY_DIR))


@pytest.fixture
def toy_installed(tmp_path: Path) -> dict[str, str]:
    """An environment in which the toy is an installed plugin: a distribution whose entry point names its module."""
    site = tmp_path / "site"
    dist_info = site / "toy_target-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-target\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(f"[{targets.ENTRY_POINT_GROUP}]\ntoy = toy_target\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(TOY_DIR), str(PROJECT_DIR)])}


@pytest.fixture
def toy_stack(tmp_path: Path) -> Path:
    path = tmp_path / "Pulumi.toy.yaml"
    path.write_text("config:\n  pixtral:target: toy\n  pixtral:maxModelLen: \"16384\"\n")
    return path


def _mock_run(stack: Path, env: dict[str, str]) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, "-m", "pixtral_render", "--stack", str(stack)], cwd=PROJECT_DIR,
                          env=env, capture_output=True, text=True, timeout=300)
    return done.returncode, json.loads(done.stdout)


def test_the_toy_is_a_target_its_keys_accept(toy) -> None:
    spec = load_spec({"target": "toy", "maxModelLen": "16384"})
    assert spec.runs_on.name == "toy"
    assert (spec.gpus.gpu_name, spec.gpus.tensor_parallel_size) == ("nvidia-l40s", 1)
    assert spec.server.max_model_len == 16384


def test_keys_the_toy_has_no_use_for_are_refused_by_its_traits(toy) -> None:
    # The toy runs VMs in no cloud the program knows: a Kubernetes setting, or an AWS one, is refused by name.
    for key, value in (("namespace", "pixtral"), ("instanceType", "g6e.xlarge")):
        with pytest.raises(ConfigError, match=f"pixtral:{key} only applies to target .*not to pixtral:target toy"):
            load_spec({"target": "toy", key: value})
    # A setting of machines the program makes applies: the toy makes its machine.
    assert load_spec({"target": "toy", "spot": "true"}).spot


def test_an_unknown_target_lists_the_toy_among_the_choices(toy) -> None:
    with pytest.raises(ConfigError, match=r"pixtral:target.*tooy.*one of aws, gcp, kubernetes, eks, gke, toy"):
        load_spec({"target": "tooy"})


def test_status_lists_the_toys_replicas_through_its_module(toy) -> None:
    [replica] = replicas_of({"target": "toy", "box": "pixtral"})
    assert (replica.name, replica.type, replica.health) == ("pixtral", "toy-gpu", "healthy")


def test_the_readme_table_describes_the_programs_own_targets_only(toy) -> None:
    # A plugin's target takes the "all" keys, but the README's table stays the program's (its own docs are its).
    assert "toy" not in readme_table()
    assert KEYS["port"].readme_targets() == "all"


def test_the_program_deploys_the_toy_once_installed(toy_installed, toy_stack) -> None:
    code, run = _mock_run(toy_stack, toy_installed)
    assert code == 0, run["error"]
    assert [r["name"] for r in run["resources"] if r["type"] == "toy:index:GpuBox"] == ["pixtral"]
    assert run["outputs"]["endpoint"] == "https://toy-box.example.internal:8081"
    assert run["outputs"]["target"] == "toy"
    # The one server description: the toy starts vLLM with the arguments any target derives from the same settings.
    assert run["outputs"]["toyVllmArgs"] == vllm_args(load_spec({"target": "kubernetes", "gpuType": "nvidia-l40s",
                                                                       "maxModelLen": "16384"}).server)


def test_without_its_entry_point_the_toy_is_unknown(toy_stack) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TOY_DIR), str(PROJECT_DIR)])}
    code, run = _mock_run(toy_stack, env)
    assert code == 1
    assert "pixtral:target" in run["error"] and "toy" in run["error"]


def test_render_writes_the_toys_review(toy_installed, toy_stack, tmp_path: Path) -> None:
    out = tmp_path / "render"
    done = subprocess.run([sys.executable, "-m", "pixtralctl", "render", "--stack", str(toy_stack), "--out",
                           str(out)], cwd=PROJECT_DIR, env=toy_installed, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "| `toy:index:GpuBox` | pixtral |" in (out / "resources.md").read_text()
    assert json.loads((out / "outputs.json").read_text())["endpoint"] == "https://toy-box.example.internal:8081"


def test_every_key_names_targets_that_exist() -> None:
    own = targets.built_in_targets()
    assert [t.name for t in own] == ["aws", "gcp", "kubernetes", "eks", "gke"]
    for key in CONFIG_KEYS:
        assert key.targets.names(own), f"pixtral:{key.name} applies to no target"


def test_the_target_keys_help_names_every_target() -> None:
    # The help text is prose; this keeps it true when a built-in target is added.
    for target in targets.built_in_targets():
        assert f"`{target.name}`" in KEYS["target"].help
