"""`aws-fleet` with a warm pool: the replica releases the group's launch hold (CompleteLifecycleAction) once vLLM
answers, and not before. A warm pool needs on-demand replicas of one type (the program refuses it otherwise)."""

import json

import pytest

from . import checks

pytestmark = pytest.mark.rehearsal
STACK = "aws-fleet"
SETTINGS = ("pixtral:warmPool=1", "pixtral:spot=false", "pixtral:onDemandBaseReplicas=0",
            'pixtral:instanceTypes=["g6e.xlarge"]')


def test_lifecycle_action_is_completed_once_the_server_answers(booted):
    completed = [json.loads(line) for line in
                 (booted.machine.edge / "lifecycle-completed.jsonl").read_text().splitlines()]
    assert len(completed) == 1, completed
    (action,) = completed
    assert action["LifecycleHookName"] == "pixtral-ready" and action["LifecycleActionResult"] == "CONTINUE"
    ready = next(e["time"] for e in checks.timeline_events(booted) if (e["phase"], e["event"]) == ("ready", "end"))
    assert ready <= action["time"], f"completed at {action['time']}, before the server answered at {ready}"
    units = booted.machine.units()
    assert units["pixtral-lifecycle.service"]["Result"] == "success"
    assert int(units["pixtral-lifecycle.service"]["InactiveExitTimestampMonotonic"]) >= int(
        units[checks.SERVER_UNIT]["ActiveEnterTimestampMonotonic"])
    checks.check_seed_request_is_answered_and_the_key_enforced(booted)
