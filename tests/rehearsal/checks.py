"""What the rehearsal shows on a booted stack (issue #21), as test classes each test_<stack>.py composes on its own
machine: `EveryStack` (items 1-4) on every stack; `SecretStoreRefusals` (item 5's secret store) on one stack per
cloud, since each cloud reads its own store (SSM through the aws CLI, Secret Manager through `gcloud`);
`ServerFaults` (item 5's SIGKILL, full disk and missing GPU) on one stack only, since every stack runs the same
unit, launcher and download script for them (only pixtral.env differs); the warm pool's lifecycle (item 6) in
test_aws_fleet.py. Each check reads the machine as an operator would: systemd's own record, the server over the
forwarded port, the timeline through `pixtralctl`.

pytest runs a class's inherited tests last base first: a stack lists `EveryStack` last, so its checks see the
first boot and its reboot comes before any fault. A fault leaves its cause mended but vLLM stopped, and the
`serving` fixture starts it again only for a test that needs it, so a fault at the end costs no vLLM load (a few
minutes on 2 cores). Any order still passes, only slower."""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from solid_png import solid_png

from .conftest import SERVER_UNIT, Booted, rehearsal, serving_units, wait_for_units
from .machine import artefact_file
from .program import PROJECT_DIR

CLOUD_CLI = Path(__file__).resolve().parent / "cloud_cli"
# Units outside ours that may leave `systemctl is-system-running` short of `running` in the container, each with
# why; none is ours.
OUTSIDE_UNITS_ALLOWED_TO_FAIL: dict[str, str] = {}


def pixtralctl(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pixtralctl", *args], capture_output=True, text=True,
                          cwd=PROJECT_DIR, timeout=timeout, env={**os.environ, **(env or {})})


def smoke(booted: Booted) -> subprocess.CompletedProcess:
    """`pixtralctl smoke`: the seed's request with two images (local ones: this network reaches no image URL),
    and a missing and a wrong key refused with 401."""
    tls = ["--ca-cert", booted.ca_certificate] if booted.ca_certificate else []
    images = []
    for index, color in enumerate(((200, 40, 40), (40, 90, 200))):
        path = booted.machine.dir / f"image-{index}.png"
        path.write_bytes(solid_png(color))
        images += ["--image", str(path)]
    return pixtralctl("smoke", "--endpoint", booted.endpoint, "--api-key", booted.api_key, *tls, *images,
                      "--expect-tokens", "--max-tokens", "8", "--timeout", "300")


def _request(url: str, key: str | None, context: ssl.SSLContext | None) -> tuple[int | str, str]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    body = json.dumps({"model": "pixtral", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    request = urllib.request.Request(url, data=body.encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60, context=context) as answer:
            return answer.status, answer.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        return "no answer", str(error)



def first_boot(events: list[dict]) -> list[dict]:
    """The events up to the first `ready end` (a later reboot appends its own)."""
    ready = next(i for i, e in enumerate(events) if (e["phase"], e["event"]) == ("ready", "end"))
    return events[:ready + 1]


def timeline_events(booted: Booted) -> list[dict]:
    return [json.loads(line) for line in booted.timeline.read_text().splitlines() if line.strip()]


def machine_time(booted: Booted) -> str:
    """The machine's clock, for `journalctl --since`."""
    return booted.machine.run("date", "+%s.%N").stdout.strip()


def journal_since(booted: Booted, since: str, *units: str) -> str:
    return booted.machine.run("journalctl", "--no-pager", "-o", "cat", f"--since=@{since}",
                              *(f"--unit={u}" for u in units)).stdout


@contextlib.contextmanager
def _fast_retries(booted: Booted, *units: str) -> Iterator[None]:
    """Retries a second apart instead of 10 s, for one fault (a runtime drop-in, gone at the end)."""
    for unit in units:
        booted.machine.run("sh", "-c", f"mkdir -p /run/systemd/system/{unit}.d && printf '[Service]\\n"
                                       f"Environment=PIXTRAL_RETRY_SECONDS=1\\n' "
                                       f">/run/systemd/system/{unit}.d/fast-retry.conf")
    booted.machine.run("systemctl", "daemon-reload")
    try:
        yield
    finally:
        booted.machine.run("sh", "-c", "rm -rf /run/systemd/system/pixtral-*.d && systemctl daemon-reload")


class EveryStack:
    """Items 1-4 of issue #21, on the stack's own machine (the class's STACK with its SETTINGS, booted once by
    `booted`)."""

    STACK: str
    SETTINGS: tuple[str, ...] = ()

    def test_units_reach_their_final_state_in_declared_order(self, serving):
        units = serving.machine.units()
        assert set(units) == set(serving.machine.state.units), units.keys()
        for name, unit in units.items():
            final = "running" if name == SERVER_UNIT else "exited"
            assert (unit["ActiveState"], unit["SubState"], unit["Result"]) == ("active", final, "success"), \
                f"{name}: {unit['ActiveState']}/{unit['SubState']} ({unit['Result']})\n{serving.machine.journal(name)}"
            started = int(unit["InactiveExitTimestampMonotonic"])
            for before in unit["After"].split():
                if before in units:
                    assert int(units[before]["ActiveEnterTimestampMonotonic"]) <= started, \
                        f"{name} started before {before}, which it is ordered after"
        # cloud-init ran the whole document: no module failed, none left a recoverable error (exit 2).
        cloud_init = serving.machine.run("cloud-init", "status", "--long")
        assert cloud_init.returncode == 0, cloud_init.stdout + cloud_init.stderr
        state = serving.machine.run("systemctl", "is-system-running").stdout.strip()
        if state != "running":
            failed = serving.machine.run("systemctl", "list-units", "--failed", "--plain", "--no-legend").stdout
            names = {line.split()[0] for line in failed.splitlines() if line.strip()}
            assert not any(name.startswith("pixtral-") for name in names), failed
            assert names <= OUTSIDE_UNITS_ALLOWED_TO_FAIL.keys(), f"system is {state}; failed units:\n{failed}"

    def test_seed_request_is_answered_and_the_key_enforced(self, serving):
        done = smoke(serving)
        assert done.returncode == 0, done.stdout + done.stderr

    def test_plain_http_and_bad_keys_get_no_answer(self, serving):
        url = serving.endpoint + "/v1/chat/completions"
        context = ssl.create_default_context(cafile=serving.ca_certificate) if serving.ca_certificate else None
        for key in (None, "sk-wrong-key"):
            status, body = _request(url, key, context)
            assert status == 401 and "choices" not in body, (key, status, body)
        if serving.ca_certificate:
            status, body = _request(url.replace("https://", "http://"), serving.api_key, None)
            assert status != 200 and "choices" not in body, (status, body)

    def test_timeline_holds_every_phase_in_order(self, booted):
        events = first_boot(timeline_events(booted))
        at = {(e["phase"], e["event"]): e["time"] for e in events}
        expected = [("boot", "start"), ("boot", "end"), ("install", "start"), ("install", "end"),
                    ("download", "start"), ("download", "end"), ("secrets", "end"), ("load", "start"),
                    ("load", "end"), ("graphs", "start"), ("graphs", "end"), ("ready", "end")]
        assert [k for k in expected if k not in at] == [], events
        # pixtral-secrets runs beside pixtral-storage (which records `boot`): only install and download wait for it.
        assert at["boot", "start"] <= at["boot", "end"] <= min(at["install", "start"], at["download", "start"])
        assert at["boot", "start"] <= at["secrets", "end"]
        # The download needs the secrets (an HF token); the server needs all three.
        assert at["secrets", "end"] <= at["download", "start"] <= at["download", "end"]
        assert max(at["install", "end"], at["download", "end"]) <= at["load", "start"] <= at["load", "end"]
        # With a store, the weights go there after the download and before vLLM starts.
        if ("publish-weights", "start") in at:
            assert at["download", "end"] <= at["publish-weights", "start"] <= at["publish-weights", "end"] <= \
                at["load", "start"], events
        assert at["load", "end"] <= at["graphs", "start"] <= at["graphs", "end"] <= at["ready", "end"]
        env = {"PATH": f"{CLOUD_CLI}:{os.environ['PATH']}", "PIXTRAL_REHEARSAL_DIR": str(booted.machine.dir),
               "PIXTRAL_REHEARSAL_PYTHON": sys.executable}
        vm = (["--instance-id", "i-rehearsal", "--region", "us-east-1"] if booted.machine.state.cloud == "aws"
              else ["--instance-name", "rehearsal", "--zone", "us-central1-a"])
        printed = pixtralctl("timeline", *vm, env=env, timeout=120)
        assert printed.returncode == 0, printed.stderr
        for phase in ("boot", "install", "download", "secrets", "load", "graphs", "ready"):
            assert phase in printed.stdout, printed.stdout

    def test_reboot_serves_again_without_install_or_download(self, booted):
        before = len(timeline_events(booted))
        started = time.time()
        done = rehearsal("reboot", str(booted.machine.dir))
        assert done.returncode == 0, done.stderr[-6000:]
        assert json.loads(done.stdout.strip().splitlines()[-1])["endpoint"] == booted.endpoint
        install = booted.machine.run("journalctl", "-b", "--no-pager", "-u", "pixtral-install.service").stdout
        download = booted.machine.run("journalctl", "-b", "--no-pager", "-u", "pixtral-download.service").stdout
        assert "is already installed" in install, install
        events = timeline_events(booted)[before:]
        phases = [(e["phase"], e["event"]) for e in events]
        assert ("ready", "end") in phases and ("boot", "start") in phases, phases
        assert ("install", "start") not in phases and ("publish-weights", "start") not in phases, phases
        # With a store the reboot streams the weights from it, as every boot of the stack does (docs/vms.md): a
        # `download` from the artefacts that fetches nothing. Without one it finds them on its disk and has none.
        downloads = [e.get("source") for e in events if (e["phase"], e["event"]) == ("download", "start")]
        if "nothing to download" in download:
            assert downloads == ["artefacts"], events
        else:
            assert "is already in" in download and downloads == [], download
        log = booted.machine.edge / "requests.jsonl"
        asked = [r for r in map(json.loads, filter(str.strip, log.read_text().splitlines()))
                 if r["time"] >= started and r["service"] == "hub"] if log.exists() else []
        assert asked == [], f"the reboot went to Hugging Face: {asked[:5]}"
        done = smoke(booted)
        assert done.returncode == 0, done.stdout + done.stderr


def _api_key_secret(booted: Booted) -> dict:
    return next(s for s in booted.machine.state.secrets if "api-key" in s["name"])


def _secrets_unit_fails_naming_the_secret(booted: Booted, refuse: Callable[[], None], mend: Callable[[], None]) -> None:
    """With the store refusing (`refuse`), starting vLLM fails the secrets unit with a line naming the API key's
    secret and version, and vLLM is never started; then `mend`."""
    machine = booted.machine
    secret = _api_key_secret(booted)
    store = "aws-ssm" if machine.state.cloud == "aws" else "gcp-secret-manager"
    with _fast_retries(booted, "pixtral-secrets.service"):
        machine.run("systemctl", "stop", SERVER_UNIT, "pixtral-secrets.service")
        since = machine_time(booted)
        refuse()
        try:
            machine.run("systemctl", "start", "--no-block", SERVER_UNIT)
            wait_for_units(booted, "the secrets unit failed",
                      lambda u: u["pixtral-secrets.service"]["ActiveState"] == "failed", timeout=300)
            journal = journal_since(booted, since, "pixtral-secrets.service", SERVER_UNIT)
            server = machine.units()[SERVER_UNIT]
        finally:
            mend()
    assert f"cannot read secret {secret['name']} (version {secret['version']}) from {store}" in journal, journal
    assert "phase=load event=start" not in journal, journal
    assert server["ActiveState"] != "active", server


class SecretStoreRefusals:
    """Item 5's secret store: the store refuses the API key, and the secrets unit fails naming it; vLLM never
    starts without its key."""

    def test_store_without_the_named_version_fails_the_secrets_unit_naming_it(self, booted):
        _secrets_unit_fails_naming_the_secret(
            booted, lambda: booted.machine.store_lacks_version(_api_key_secret(booted)["name"]),
            booted.machine.store_restored)

    def test_unreachable_store_fails_the_secrets_unit_naming_the_secret(self, booted):
        _secrets_unit_fails_naming_the_secret(booted, booted.machine.store_unreachable,
                                              booted.machine.store_reachable)


class ServerFaults:
    """Item 5's faults of the server itself: the same unit, launcher and download script on every stack."""

    def test_vllm_killed_is_restarted_and_serves_again(self, serving):
        before = int(serving.machine.units()[SERVER_UNIT]["NRestarts"])
        # vLLM's API server: the launcher's child (the launcher pipes its log through watch_phases).
        killed = serving.machine.run("pkill", "-KILL", "-f", "vllm[.]entrypoints[.]openai[.]api_server")
        assert killed.returncode == 0, killed.stderr
        wait_for_units(serving, "vLLM restarted", lambda units: int(units[SERVER_UNIT]["NRestarts"]) > before)
        wait_for_units(serving, "serving again after the restart", serving_units)
        done = smoke(serving)
        assert done.returncode == 0, done.stdout + done.stderr

    def test_full_disk_fails_the_download_with_a_line_that_says_so(self, booted):
        machine = booted.machine
        env = machine.run("cat", "/etc/pixtral/pixtral.env").stdout
        hf_home = next(line.split("=", 1)[1] for line in env.splitlines() if line.startswith("HF_HOME="))
        model = next(line.split("=", 1)[1] for line in env.splitlines() if line.startswith("PIXTRAL_MODEL="))
        # The marker moved aside, so the download runs again, onto a full disk.
        marker = f"{hf_home}/.pixtral-downloaded-{model.replace('/', '--')}"
        with _fast_retries(booted, "pixtral-download.service"):
            machine.run("systemctl", "stop", SERVER_UNIT, "pixtral-download.service")
            machine.run("mv", marker, f"{marker}.aside")
            machine.run("mount", "-t", "tmpfs", "-o", "size=256k", "full-disk", hf_home)
            try:
                since = machine_time(booted)
                machine.run("systemctl", "start", "--no-block", "pixtral-download.service")
                wait_for_units(booted, "the download failed",
                          lambda u: u["pixtral-download.service"]["ActiveState"] == "failed", timeout=300)
                journal = journal_since(booted, since, "pixtral-download.service")
            finally:
                machine.run("umount", hf_home)
                machine.run("mv", f"{marker}.aside", marker)
        assert "No space left on device" in journal, journal[-3000:]

    def test_missing_gpu_fails_the_launcher_with_a_line_that_says_so(self, booted):
        machine = booted.machine
        nvidia_smi = machine.root / "usr/local/bin/nvidia-smi"
        machine.run("systemctl", "stop", SERVER_UNIT)
        # The stand-in for the driver's tool gone, as on a VM whose GPU or driver is missing.
        nvidia_smi.rename(nvidia_smi.with_suffix(".aside"))
        try:
            since = machine_time(booted)
            machine.run("systemctl", "reset-failed")
            machine.run("systemctl", "start", "--no-block", SERVER_UNIT)
            deadline = time.monotonic() + 300
            while "no NVIDIA GPU found" not in journal_since(booted, since, SERVER_UNIT) \
                    and time.monotonic() < deadline:
                time.sleep(2)
            journal = journal_since(booted, since, SERVER_UNIT)
        finally:
            # Stopped before the restart that would find the GPU again: the next test that needs it starts vLLM.
            machine.run("systemctl", "stop", SERVER_UNIT)
            nvidia_smi.with_suffix(".aside").rename(nvidia_smi)
        assert "no NVIDIA GPU found" in journal, journal[-3000:]
        assert "phase=load event=start" not in journal, journal


def requests_since(booted: Booted, started: float) -> list[dict]:
    """What the stand-ins were asked since `started` (their shared log)."""
    log = booted.machine.edge / "requests.jsonl"
    return [r for r in map(json.loads, filter(str.strip, log.read_text().splitlines())) if r["time"] >= started]


def restart_takes_the_weights_again_once_they_left_the_store(serving: Booted) -> None:
    """A server that streams its weights restarts after they left the store: it takes them again
    (recheck-weights.sh)."""
    # The store's lifecycle rules expire the weights 30 days after their upload (their claim after a day) while
    # the server runs; a server that streamed them has no copy on disk, so its next start must take them again.
    machine = serving.machine
    # As on a replica that streamed them: no copy on disk, whatever an earlier check left there.
    machine.run("sh", "-c", '. /etc/pixtral/pixtral.env && rm -rf "$HF_HOME"/hub "$HF_HOME"/.pixtral-* '
                            "&& echo stream >/run/pixtral-weights")
    (weights,) = artefact_file(machine, "model").glob("*/weights")
    (claim,) = artefact_file(machine, "claims/model").glob("*/weights")
    for path in (*weights.iterdir(), claim):
        path.unlink()
    before = int(machine.units()[SERVER_UNIT]["NRestarts"])
    started, since = time.time(), machine_time(serving)
    killed = machine.run("pkill", "-KILL", "-f", "vllm[.]entrypoints[.]openai[.]api_server")
    assert killed.returncode == 0, killed.stderr
    wait_for_units(serving, "vLLM restarted", lambda units: int(units[SERVER_UNIT]["NRestarts"]) > before)
    wait_for_units(serving, "serving again after the restart", serving_units)
    done = smoke(serving)
    assert done.returncode == 0, done.stdout + done.stderr
    journal = journal_since(serving, since, SERVER_UNIT)
    assert "vLLM restarts without the weights it streamed: taking them again" in journal, journal[-3000:]
    assert any(r["service"] == "hub" for r in requests_since(serving, started)), "the hub was not asked"
    assert (weights / "manifest.json").exists(), "the weights were not published again"
    assert machine.run("cat", "/run/pixtral-weights").stdout.strip() == "stream"
