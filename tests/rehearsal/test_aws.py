"""The `aws` stack's user data booted for real (tests/rehearsal/checks.py says what each check shows)."""

import pytest

from . import checks

pytestmark = pytest.mark.rehearsal
STACK = "aws"


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


def test_vllm_killed_is_restarted_and_serves_again(booted):
    checks.check_vllm_killed_is_restarted_and_serves_again(booted)


def test_faults_fail_with_a_line_that_says_so(booted):
    checks.check_faults_fail_with_a_line_that_says_so(booted)
