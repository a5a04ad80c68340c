"""Warm starts (issue #26), rehearsed on a fleet stack: its first replica publishes its vLLM install and the weights
to the stack's artefact store; a new replica on a blank disk (`replace`) boots from them without one request to the
PyPI or Hugging Face stand-ins, and one whose artefact is corrupt falls back to the origin and says so. The store is
the disk-backed object store of tests/rehearsal/s3.py, reached as S3 by the AWS CLI or as GCS through the gcloud
stand-in (tests/rehearsal/machine.py); `STORE` is the name its requests are logged under.
"""

import json
import time

from .checks import smoke, timeline_events
from .conftest import rehearsal
from .machine import artefact_file

# The stand-ins of the internet a warm start must not touch.
ORIGINS = ("index", "astral", "hub")


class WarmStarts:
    """Runs after the stack's other checks: name it first among a class's bases (pytest collects inherited tests in
    reverse MRO), since `replace` takes the first replica away."""

    STORE: str

    def test_a_new_replica_boots_from_the_artefacts_without_pypi_or_hugging_face(self, booted):
        for key in ("vllm", "model"):
            manifests = list(artefact_file(booted.machine, key).glob("**/manifest.json"))
            assert manifests, f"the first replica published no {key} artefact"
        requests = _replace(booted, "durations-warm.json")
        asked = [r for r in requests if r["service"] in ORIGINS]
        assert asked == [], f"the new replica went to the origin: {asked[:5]}"
        assert any(r["service"] == self.STORE and r["method"] == "GET" for r in requests)
        sources = _sources(booted)
        assert (sources["install"], sources["download"]) == ("artefacts", "artefacts"), sources
        done = smoke(booted)
        assert done.returncode == 0, done.stdout + done.stderr

    def test_a_corrupt_artefact_is_refused_and_the_download_takes_the_hub_saying_so(self, booted):
        (weights,) = artefact_file(booted.machine, "model").glob("*/hub.tar")
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
        started = time.time()
        # The model cache blank, as on a new disk (the serving vLLM holds its weights in memory), and the download
        # script run as its unit runs it: its environment files, and the drop-ins of every pixtral-* unit.
        booted.machine.run("sh", "-c", '. /etc/pixtral/pixtral.env && rm -rf "$HF_HOME"/hub "$HF_HOME"/.pixtral-*')
        done = booted.machine.run(
            "systemd-run", "--wait", "--quiet", "--unit=pixtral-refetch",
            "-p", "EnvironmentFile=/etc/pixtral/pixtral.env", "-p", "EnvironmentFile=/etc/pixtral/secrets.env",
            "/usr/local/lib/pixtral/download-weights.sh", timeout=600)
        journal = booted.machine.journal("pixtral-refetch.service", lines=200)
        assert done.returncode == 0, done.stderr + journal
        assert "does not match its manifest" in journal, journal
        assert any(r["service"] == "hub" for r in _requests_since(booted, started)), "the download did not take the hub"
        downloads = [e for e in timeline_events(booted) if (e["phase"], e["event"]) == ("download", "start")]
        assert downloads[-1]["source"] == "hub", downloads


def _replace(booted, durations: str) -> list[dict]:
    """A new replica of the stack on a blank disk, serving; the requests the stand-ins saw since."""
    started = time.time()
    done = rehearsal("replace", str(booted.machine.dir))
    assert done.returncode == 0, done.stderr[-6000:]
    # The later boot's phase durations, for the measured column beside the first boot's.
    (booted.machine.dir / durations).write_text(rehearsal("durations", str(booted.machine.dir)).stdout)
    return _requests_since(booted, started)


def _requests_since(booted, started: float) -> list[dict]:
    log = booted.machine.edge / "requests.jsonl"
    return [r for r in map(json.loads, filter(str.strip, log.read_text().splitlines())) if r["time"] >= started]


def _sources(booted) -> dict[str, str | None]:
    return {e["phase"]: e.get("source") for e in timeline_events(booted) if e["event"] == "start"}
