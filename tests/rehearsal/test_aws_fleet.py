"""The `aws-fleet` stack's user data booted for real (tests/rehearsal/checks.py says what each check shows), with a
warm pool: its replicas then also release the group's launch hold (CompleteLifecycleAction) once vLLM answers, and
not before. A warm pool needs on-demand replicas of one type (the program refuses it otherwise), so the stack boots
with those settings; the rest of its user data is the shipped stack's.

Warm starts (issue #26, tests/rehearsal/warm_starts.py) from the stack's S3 bucket (tests/rehearsal/s3.py).
"""

import json
import time

import pytest

from .checks import EveryStack, journal_since, machine_time, smoke, timeline_events
from .conftest import SERVER_UNIT, serving_units, wait_for_units
from .warm_starts import WarmStarts

pytestmark = pytest.mark.rehearsal


class LaunchHold:
    """The warm pool's launch hold, checked on the first replica (before WarmStarts replaces it)."""

    def test_lifecycle_action_is_completed_once_the_server_answers(self, serving):
        # In call order; a reboot calls again (the real group then refuses: no hold is pending).
        completed = _completed(serving.machine)
        assert completed, "the replica never released the launch hold"
        first = completed[0]
        assert (first["LifecycleHookName"], first["LifecycleActionResult"]) == ("pixtral-ready", "CONTINUE"), first
        ready = next(e["time"] for e in timeline_events(serving) if (e["phase"], e["event"]) == ("ready", "end"))
        assert ready <= first["time"], f"completed at {first['time']}, before the server answered at {ready}"
        units = serving.machine.units()
        assert units["pixtral-lifecycle.service"]["Result"] == "success"
        assert int(units["pixtral-lifecycle.service"]["InactiveExitTimestampMonotonic"]) >= int(
            units[SERVER_UNIT]["ActiveEnterTimestampMonotonic"])
        done = smoke(serving)
        assert done.returncode == 0, done.stdout + done.stderr

    def test_a_start_of_vllm_that_fails_once_still_releases_the_hold_and_publishes_once_it_serves(self, serving):
        """As at boot, the units that run once vLLM answers are started, and vLLM's start fails once (no GPU found):
        Restart= brings it up on the next try, and they run then. systemd fails for good the start of a unit that
        Requires= vLLM when one start of vLLM fails, which a cold CI run hit after a restart."""
        machine = serving.machine
        calls = len(_completed(machine))
        nvidia_smi = machine.root / "usr/local/bin/nvidia-smi"
        machine.run("systemctl", "stop", SERVER_UNIT, *AFTER_THE_SERVER)
        nvidia_smi.rename(nvidia_smi.with_suffix(".aside"))
        try:
            since = machine_time(serving)
            machine.run("systemctl", "start", "--no-block", *AFTER_THE_SERVER)
            deadline = time.monotonic() + 300
            while "no NVIDIA GPU found" not in journal_since(serving, since, SERVER_UNIT) \
                    and time.monotonic() < deadline:
                time.sleep(1)
        finally:
            # Back before vLLM's next try (RestartSec=10).
            nvidia_smi.with_suffix(".aside").rename(nvidia_smi)
        assert "no NVIDIA GPU found" in journal_since(serving, since, SERVER_UNIT)
        # vLLM's next try loads in about a minute here.
        units = wait_for_units(serving, "serving with every unit active after one failed start", serving_units,
                               timeout=300)
        for name in AFTER_THE_SERVER:
            assert units[name]["Result"] == "success", f"{name}: {units[name]}"
        ready = [e["time"] for e in timeline_events(serving) if (e["phase"], e["event"]) == ("ready", "end")][-1]
        assert [c for c in _completed(machine)[calls:] if c["time"] >= ready], "the hold was not released again"


# What runs once vLLM answers, on this stack.
AFTER_THE_SERVER = ("pixtral-publish.service", "pixtral-lifecycle.service")


def _completed(machine) -> list[dict]:
    """The CompleteLifecycleAction calls the Auto Scaling stand-in answered, in order."""
    return [json.loads(line) for line in (machine.edge / "lifecycle-completed.jsonl").read_text().splitlines()]


# pytest runs inherited checks base-first (reverse MRO): EveryStack's, then LaunchHold's on the first replica, then
# WarmStarts', whose `replace` boots a new replica in its place.
class TestAwsFleet(WarmStarts, LaunchHold, EveryStack):
    STACK = "aws-fleet"
    STORE = "s3"
    SETTINGS = ("pixtral:warmPool=1", "pixtral:spot=false", "pixtral:onDemandBaseReplicas=0",
                'pixtral:instanceTypes=["g6e.xlarge"]')
