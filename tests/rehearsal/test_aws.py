"""The `aws` stack's user data booted for real (tests/rehearsal/checks.py says what each check shows): every stack's
checks, SSM refusing the API key, and the faults of the server itself (the same on every stack, run here once)."""

import pytest

from .checks import EveryStack, SecretStoreRefusals, ServerFaults

pytestmark = pytest.mark.rehearsal


class TestAws(SecretStoreRefusals, ServerFaults, EveryStack):
    STACK = "aws"
