"""The `aws-fleet` stack's user data booted for real (tests/rehearsal/checks.py says what each check shows), with a
warm pool: its replicas then also release the group's launch hold (CompleteLifecycleAction) once vLLM answers, and
not before. A warm pool needs on-demand replicas of one type (the program refuses it otherwise), so the stack boots
with those settings; the rest of its user data is the shipped stack's.

Warm starts (issue #26): the first replica publishes its vLLM install and the weights to the stack's artefact store
(S3, tests/rehearsal/s3.py); a new replica on a blank disk (`replace`) boots from them without one request to the
PyPI or Hugging Face stand-ins, and one whose artefact is corrupt falls back to the origin and says so.
"""

import json
import time

import pytest

from .checks import EveryStack, smoke, timeline_events
from .conftest import SERVER_UNIT, rehearsal
from .machine import artefact_file

# The stand-ins of the internet a warm start must not touch.
ORIGINS = ("index", "astral", "hub")

pytestmark = pytest.mark.rehearsal


class TestAwsFleet(EveryStack):
    STACK = "aws-fleet"
    SETTINGS = ("pixtral:warmPool=1", "pixtral:spot=false", "pixtral:onDemandBaseReplicas=0",
                'pixtral:instanceTypes=["g6e.xlarge"]')

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

    def test_a_new_replica_boots_from_the_artefacts_without_pypi_or_hugging_face(self, booted):
        for key in ("vllm", "model"):
            manifests = list(artefact_file(booted.machine, key).glob("**/manifest.json"))
            assert manifests, f"the first replica published no {key} artefact"
        replaced = _replace(booted, "durations-warm.json")
        asked = [r for r in replaced["requests"] if r["service"] in ORIGINS]
        assert asked == [], f"the new replica went to the origin: {asked[:5]}"
        assert any(r["service"] == "s3" and r["method"] == "GET" for r in replaced["requests"])
        sources = _sources(booted)
        assert (sources["install"], sources["download"]) == ("artefacts", "artefacts"), sources
        done = smoke(booted)
        assert done.returncode == 0, done.stdout + done.stderr

    def test_a_corrupt_artefact_is_refused_and_the_boot_takes_the_origin_saying_so(self, booted):
        (weights,) = artefact_file(booted.machine, "model").glob("*/hub.tar")
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
        replaced = _replace(booted)
        download = booted.machine.journal("pixtral-download.service", lines=200)
        assert "does not match its manifest" in download, download
        assert any(r["service"] == "hub" for r in replaced["requests"]), "the download did not fall back to the hub"
        assert not any(r["service"] in ("index", "astral") for r in replaced["requests"]), \
            "the sound vLLM artefact was not used"
        sources = _sources(booted)
        assert (sources["install"], sources["download"]) == ("artefacts", "hub"), sources
        done = smoke(booted)
        assert done.returncode == 0, done.stdout + done.stderr


def _replace(booted, durations: str | None = None) -> dict:
    """A new replica of the stack on a blank disk, serving; the requests the stand-ins saw since."""
    started = time.time()
    done = rehearsal("replace", str(booted.machine.dir))
    assert done.returncode == 0, done.stderr[-6000:]
    if durations:
        # The later boot's phase durations, for the README's measured column beside the first boot's.
        (booted.machine.dir / durations).write_text(rehearsal("durations", str(booted.machine.dir)).stdout)
    log = booted.machine.edge / "requests.jsonl"
    requests = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return {"requests": [r for r in requests if r["time"] >= started]}


def _sources(booted) -> dict[str, str | None]:
    return {e["phase"]: e.get("source") for e in timeline_events(booted) if e["event"] == "start"}
