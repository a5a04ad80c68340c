"""The rehearsal tier's fixtures: a machine booted by the rehearsal's own command line, stopped after the module."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from .machine import SERVER_UNIT, Machine, cache_missing
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
        rehearsal("discard", str(folder))
        pytest.fail(f"the {stack} machine did not come up:\n{done.stderr[-9000:]}")
    return Booted.from_line(Machine(folder), done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="class")
def booted(request, tmp_path_factory):
    """The test class's STACK (and SETTINGS), booted once; stopped with every stand-in when the class ends."""
    stack = request.cls.STACK
    folder = tmp_path_factory.mktemp(f"rehearsal-{stack}")
    machine = boot(stack, folder, *request.cls.SETTINGS)
    # The first boot's phase durations, kept beside the machine's folder for the README's measured column.
    (folder / "durations.json").write_text(rehearsal("durations", str(folder)).stdout)
    yield machine
    # Our units' journal, kept beside the durations: the disk that holds it goes below, and a check that passed may
    # still have seen a unit retry (a cold CI run's vLLM restart failed once, its cause lost with the disk).
    with contextlib.suppress(Exception):
        (folder / "journal.txt").write_text(machine.machine.run(
            "journalctl", "--no-pager", "-o", "short-precise", "--unit=pixtral-*", timeout=60).stdout)
    started = time.monotonic()
    rehearsal("stop", str(folder))
    stopped = time.monotonic()
    # The machine's disks hold a vLLM install (about 7 GB), its store a venv.tar (about 6 GB): not kept with pytest's
    # last runs (it keeps three), which filled a CI machine's disk.
    rehearsal("discard", str(folder))
    # How long the end took, beside the boot's durations (docs/development.md's measured tier).
    (folder / "teardown.json").write_text(json.dumps({"stop": round(stopped - started, 1),
                                                      "remove_disk": round(time.monotonic() - stopped, 1)}))


def wait_for_units(booted: Booted, what: str, predicate: Callable[[dict], bool], timeout: float = 600) -> dict:
    """The pixtral-* units' properties once `predicate` holds for them; fails saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        units = booted.machine.units()
        if predicate(units):
            return units
        time.sleep(2)
    units = booted.machine.units()
    # The journal of each unit not active, and of vLLM: what went wrong is seldom in the states alone.
    journals = "\n".join(f"--- {name}:\n{booted.machine.journal(name, lines=40)}" for name, unit in units.items()
                         if unit["ActiveState"] != "active" or name == SERVER_UNIT)
    raise AssertionError(f"{what} within {timeout:.0f} s; units: "
                         f"{ {n: (u['ActiveState'], u['SubState']) for n, u in units.items()} }\n{journals}")


def serving_units(units: dict) -> bool:
    return all(u["ActiveState"] == "active" for u in units.values())


@pytest.fixture
def serving(booted: Booted) -> Booted:
    """The booted machine, serving: a fault before may have left vLLM stopped (its cause mended), which an operator
    starts again."""
    if not serving_units(booted.machine.units()):
        booted.machine.run("systemctl", "reset-failed")
        booted.machine.run("systemctl", "start", "--no-block", SERVER_UNIT)
        wait_for_units(booted, "serving again", serving_units)
    return booted
