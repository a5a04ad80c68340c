"""The `gcp` stack's user data booted for real (tests/rehearsal/checks.py says what each check shows): every stack's
checks, and Secret Manager (behind `gcloud`) refusing the API key."""

import pytest

from .checks import EveryStack, SecretStoreRefusals

pytestmark = pytest.mark.rehearsal


class TestGcp(SecretStoreRefusals, EveryStack):
    STACK = "gcp"
