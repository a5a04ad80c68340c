"""Warm starts (issue #26), rehearsed on a fleet stack: its first replica uploads the weights to the stack's artefact
store before its vLLM starts, streams them from there, and publishes its vLLM install once it serves; a new replica on
a blank disk (`replace`) boots from them without one request to the PyPI or Hugging Face stand-ins, its vLLM
streaming the weights from the store (Run:ai's streamer), and one whose weights in the store are damaged falls back
to the origin and says so. The store is the disk-backed object store of
tests/rehearsal/s3.py, reached as S3 by the AWS CLI and the streamer, or as GCS through the gcloud stand-in and the
streamer's GCS clients (tests/rehearsal/machine.py); `STORE` is the name its requests are logged under.
"""

import json
import time
import urllib.parse

from .checks import (
    first_boot,
    requests_since,
    restart_takes_the_weights_again_once_they_left_the_store,
    smoke,
    timeline_events,
)
from .conftest import rehearsal
from .machine import artefact_file

# The stand-ins of the internet a warm start must not touch.
ORIGINS = ("index", "astral", "hub")


class WarmStarts:
    """Runs after the stack's other checks: name it first among a class's bases (pytest collects inherited tests in
    reverse MRO), since `replace` takes the first replica away."""

    STORE: str

    def test_the_first_replica_uploads_the_weights_before_its_load_and_streams_them(self, booted):
        events = first_boot(timeline_events(booted))
        at = {(e["phase"], e["event"]): e["time"] for e in events}
        sources = {e["phase"]: e.get("source") for e in events if e["event"] == "start"}
        assert (sources["download"], sources["load"]) == ("hub", "stream"), sources
        assert at["download", "end"] <= at["publish-weights", "start"] <= at["publish-weights", "end"] <= \
            at["load", "start"], events
        log = booted.machine.edge / "requests.jsonl"
        uploads = [r for r in map(json.loads, filter(str.strip, log.read_text().splitlines()))
                   if r["service"] == self.STORE and r["method"] in ("PUT", "POST")
                   and "/weights/" in urllib.parse.unquote(r["path"])]
        assert uploads and all(r["time"] <= at["load", "start"] for r in uploads), uploads[-3:]

    def test_a_new_replica_boots_from_the_artefacts_without_pypi_or_hugging_face(self, booted):
        for key in ("vllm", "model"):
            manifests = list(artefact_file(booted.machine, key).glob("**/manifest.json"))
            assert manifests, f"the first replica published no {key} artefact"
        requests = _replace(booted, "durations-warm.json")
        asked = [r for r in requests if r["service"] in ORIGINS]
        assert asked == [], f"the new replica went to the origin: {asked[:5]}"
        streamed = [r for r in requests if r["service"] == self.STORE and r["method"] == "GET"
                    and urllib.parse.unquote(r["path"].split("?")[0]).endswith("/weights/consolidated.safetensors")]
        assert streamed, "vLLM did not read the weights from the store"
        sources = _sources(booted)
        assert (sources["install"], sources["download"], sources["load"]) == ("artefacts", "artefacts", "stream"), \
            sources
        assert booted.machine.run("cat", "/run/pixtral-weights").stdout.strip() == "stream"
        done = smoke(booted)
        assert done.returncode == 0, done.stdout + done.stderr

    def test_damaged_weights_in_the_store_are_refused_and_the_download_takes_the_hub_saying_so(self, booted):
        (weights,) = artefact_file(booted.machine, "model").glob("*/weights/consolidated.safetensors")
        # Cut short, as by a publisher stopped half-way: the manifest's size no longer holds.
        with weights.open("r+b") as data:
            data.truncate(weights.stat().st_size // 2)
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
        assert "consolidated.safetensors has" in journal and "the manifest says" in journal, journal
        assert any(r["service"] == "hub" for r in requests_since(booted, started)), "the download did not take the hub"
        downloads = [e for e in timeline_events(booted) if (e["phase"], e["event"]) == ("download", "start")]
        assert downloads[-1]["source"] == "hub", downloads
        # The next start of vLLM reads the weights from the disk, with the first boot's arguments.
        assert booted.machine.run("cat", "/run/pixtral-weights").stdout.strip() == "hub"

    def test_a_restart_after_the_streamed_weights_left_the_store_takes_them_again(self, serving):
        restart_takes_the_weights_again_once_they_left_the_store(serving)


def _replace(booted, durations: str) -> list[dict]:
    """A new replica of the stack on a blank disk, serving; the requests the stand-ins saw since."""
    started = time.time()
    done = rehearsal("replace", str(booted.machine.dir))
    assert done.returncode == 0, done.stderr[-6000:]
    # The later boot's phase durations, for the measured column beside the first boot's.
    measured = rehearsal("durations", str(booted.machine.dir))
    assert measured.returncode == 0, measured.stderr[-3000:]
    (booted.machine.dir / durations).write_text(measured.stdout)
    return requests_since(booted, started)


def _sources(booted) -> dict[str, str | None]:
    return {e["phase"]: e.get("source") for e in timeline_events(booted) if e["event"] == "start"}
