"""The README's install (`pip install -e .`, no [test] extra) is enough for `pixtralctl render`, the first command it
offers without a cloud account: render runs with every module outside the base install's packages hidden."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from conftest import PROJECT_DIR
from packaging.requirements import Requirement

# One stack per provider mix: together they import every provider and component package render reaches.
STACKS = ("aws", "gcp-fleet", "eks", "gke")

# Runs render with a finder in front of the import system that refuses any top-level module the base install does
# not bring, as a venv with only the base install would (ModuleNotFoundError, the traceback a user would see).
_GUARDED_RENDER = """
import importlib.abc, importlib.machinery, json, os, sys, sysconfig
allowed = set(json.loads(os.environ["PIXTRAL_BASE_MODULES"]))
site = (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])
def in_stdlib(name):
    # The standard library's private modules (_sysconfigdata_*) are not in sys.stdlib_module_names.
    spec = importlib.machinery.PathFinder.find_spec(name)
    origin = (spec and spec.origin) or ""
    return origin.startswith(sys.base_prefix) and not origin.startswith(site) and "-packages" not in origin
class BaseInstallOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top not in allowed and top not in sys.builtin_module_names and not in_stdlib(top):
            raise ModuleNotFoundError(f"No module named {top!r} (not in the base install)", name=top)
        return None
sys.meta_path.insert(0, BaseInstallOnly())
from pixtralctl.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def _base_requirements() -> list[Requirement]:
    project = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"]]


def _distribution_closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution the base requirements pull in, as installed here, markers evaluated (no extras)."""
    seen: set[str] = set()
    pending = list(requirements)
    while pending:
        requirement = pending.pop()
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if name in seen or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        pending += [Requirement(line) for line in importlib.metadata.requires(requirement.name) or []]
    return seen


def _base_modules() -> set[str]:
    """Top-level modules importable after the base install: the standard library, the project's own packages and
    those of every distribution in the base closure."""
    distributions = _distribution_closure(_base_requirements())
    provided = {module for module, owners in importlib.metadata.packages_distributions().items()
                if any(re.sub(r"[-_.]+", "-", owner).lower() in distributions for owner in owners)}
    project = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    return provided | set(sys.stdlib_module_names) | set(project) | {"__main__"}


def test_every_base_dependency_is_pinned():
    for requirement in _base_requirements():
        assert len(requirement.specifier) == 1 and next(iter(requirement.specifier)).operator == "==", \
            f"{requirement} is not pinned (==)"


def test_the_guard_hides_what_only_the_test_extra_brings():
    # The guard must bite: pytest and jsonschema come only with [test].
    assert not {"pytest", "jsonschema", "hypothesis"} & _base_modules()


@pytest.mark.parametrize("stack", STACKS)
def test_render_runs_on_the_base_install(stack, tmp_path):
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path),
           "PIXTRAL_BASE_MODULES": json.dumps(sorted(_base_modules()))}
    done = subprocess.run([sys.executable, "-c", _GUARDED_RENDER, "render", "--stack", stack, "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, cwd=PROJECT_DIR, env=env,
                          timeout=300)
    assert done.returncode == 0, f"render of {stack} needs more than the base install:\n{done.stdout}{done.stderr}"
    assert (tmp_path / "out" / "resources.md").exists()
