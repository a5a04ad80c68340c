"""The rehearsal tier's fixtures: a machine booted by the rehearsal's own command line, stopped after the module."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .machine import Machine, cache_missing
from .program import PROJECT_DIR


def _unavailable(message: str) -> None:
    if os.environ.get("PIXTRAL_REQUIRE_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Booted:
    machine: Machine
    endpoint: str
    ca_certificate: str | None
    api_key: str
    timeline: Path

    @classmethod
    def from_line(cls, machine: Machine, line: str) -> Booted:
        summary = json.loads(line)
        return cls(machine, summary["endpoint"], summary["ca_certificate"], summary["api_key"],
                   Path(summary["timeline"]))


def rehearsal(*args: str, timeout: float = 1500) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.rehearsal", *args], capture_output=True, text=True,
                          cwd=PROJECT_DIR, timeout=timeout)


def boot(stack: str, folder: Path, *settings: str) -> Booted:
    """`python -m tests.rehearsal boot`, failing the test with the failed unit's journal."""
    if os.geteuid() != 0:
        _unavailable("the boot rehearsal needs root (debootstrap's root, systemd-nspawn, network namespaces)")
    missing = cache_missing()
    if missing:
        _unavailable(missing)
    done = rehearsal("boot", "--stack", stack, *(f"--set={s}" for s in settings), str(folder))
    if done.returncode != 0:
        rehearsal("stop", str(folder))
        pytest.fail(f"the {stack} machine did not come up:\n{done.stderr[-6000:]}")
    return Booted.from_line(Machine(folder), done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def booted(request, tmp_path_factory):
    """The module's STACK (and SETTINGS), booted once; stopped with every stand-in when the module ends."""
    stack = request.module.STACK
    folder = tmp_path_factory.mktemp(f"rehearsal-{stack}")
    machine = boot(stack, folder, *getattr(request.module, "SETTINGS", ()))
    # The first boot's phase durations, kept beside the machine's folder for the README's measured column.
    (folder / "durations.json").write_text(rehearsal("durations", str(folder)).stdout)
    yield machine
    rehearsal("stop", str(folder))
    # The machine's disk holds a vLLM install (about 7 GB): not kept with pytest's last runs.
    shutil.rmtree(folder / "upper", ignore_errors=True)
