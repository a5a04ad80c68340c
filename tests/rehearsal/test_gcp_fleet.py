"""The `gcp-fleet` stack's user data booted for real (tests/rehearsal/checks.py says what each check shows), with
warm starts (issue #26, tests/rehearsal/warm_starts.py) from the stack's GCS bucket, behind the gcloud stand-in."""

import pytest

from .checks import EveryStack
from .warm_starts import WarmStarts

pytestmark = pytest.mark.rehearsal


# WarmStarts last (pytest runs inherited checks base-first): its `replace` boots a new replica in the first one's place.
class TestGcpFleet(WarmStarts, EveryStack):
    STACK = "gcp-fleet"
    STORE = "gcs"
