"""The `aws-fleet` stack's user data booted for real (tests/rehearsal/checks.py says what each check shows), with a
warm pool: its replicas then also release the group's launch hold (CompleteLifecycleAction) once vLLM answers, and
not before. A warm pool needs on-demand replicas of one type (the program refuses it otherwise), so the stack boots
with those settings; the rest of its user data is the shipped stack's.
"""

import json

import pytest

from . import checks

pytestmark = pytest.mark.rehearsal
STACK = "aws-fleet"
SETTINGS = ("pixtral:warmPool=1", "pixtral:spot=false", "pixtral:onDemandBaseReplicas=0",
            'pixtral:instanceTypes=["g6e.xlarge"]')


def test_units_reach_their_final_state_in_declared_order(booted):
    checks.check_units_reach_their_final_state_in_declared_order(booted)


def test_seed_request_is_answered_and_the_key_enforced(booted):
    checks.check_seed_request_is_answered_and_the_key_enforced(booted)


def test_plain_http_and_bad_keys_get_no_answer(booted):
    checks.check_plain_http_and_bad_keys_get_no_answer(booted)


def test_timeline_holds_every_phase_in_order(booted):
    checks.check_timeline_holds_every_phase_in_order(booted)


def test_reboot_serves_again_without_install_or_download(booted):
    checks.check_reboot_serves_again_without_install_or_download(booted)


def test_lifecycle_action_is_completed_once_the_server_answers(booted):
    # In call order; a reboot calls again (the real group then refuses: no hold is pending).
    completed = [json.loads(line) for line in
                 (booted.machine.edge / "lifecycle-completed.jsonl").read_text().splitlines()]
    assert completed, "the replica never released the launch hold"
    first = completed[0]
    assert (first["LifecycleHookName"], first["LifecycleActionResult"]) == ("pixtral-ready", "CONTINUE"), first
    ready = next(e["time"] for e in checks.timeline_events(booted) if (e["phase"], e["event"]) == ("ready", "end"))
    assert ready <= first["time"], f"completed at {first['time']}, before the server answered at {ready}"
    units = booted.machine.units()
    assert units["pixtral-lifecycle.service"]["Result"] == "success"
    assert int(units["pixtral-lifecycle.service"]["InactiveExitTimestampMonotonic"]) >= int(
        units[checks.SERVER_UNIT]["ActiveEnterTimestampMonotonic"])
    checks.check_seed_request_is_answered_and_the_key_enforced(booted)
