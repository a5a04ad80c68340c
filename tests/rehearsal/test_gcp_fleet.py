"""The `gcp-fleet` stack's user data booted for real (tests/rehearsal/checks.py says what each check shows)."""

import pytest

from .checks import EveryStack

pytestmark = pytest.mark.rehearsal


class TestGcpFleet(EveryStack):
    STACK = "gcp-fleet"
