"""The `aws-fleet` stack's user data booted for real (tests/rehearsal/checks.py says what each check shows), with a
warm pool: its replicas then also release the group's launch hold (CompleteLifecycleAction) once vLLM answers, and
not before. A warm pool needs on-demand replicas of one type (the program refuses it otherwise), so the stack boots
with those settings; the rest of its user data is the shipped stack's.

Warm starts (issue #26, tests/rehearsal/warm_starts.py) from the stack's S3 bucket (tests/rehearsal/s3.py).
"""

import json

import pytest

from .checks import EveryStack, smoke, timeline_events
from .conftest import SERVER_UNIT
from .warm_starts import WarmStarts

pytestmark = pytest.mark.rehearsal


class LaunchHold:
    """The warm pool's launch hold, checked on the first replica (before WarmStarts replaces it)."""

    def test_lifecycle_action_is_completed_once_the_server_answers(self, serving):
        # In call order; a reboot calls again (the real group then refuses: no hold is pending).
        completed = [json.loads(line) for line in
                     (serving.machine.edge / "lifecycle-completed.jsonl").read_text().splitlines()]
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


# pytest runs inherited checks base-first (reverse MRO): EveryStack's, then LaunchHold's on the first replica, then
# WarmStarts', whose `replace` boots a new replica in its place.
class TestAwsFleet(WarmStarts, LaunchHold, EveryStack):
    STACK = "aws-fleet"
    STORE = "s3"
    SETTINGS = ("pixtral:warmPool=1", "pixtral:spot=false", "pixtral:onDemandBaseReplicas=0",
                'pixtral:instanceTypes=["g6e.xlarge"]')
