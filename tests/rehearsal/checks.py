"""What every rehearsal stack must show once booted (issue #21's items 1-4); each test_<stack>.py runs them on its own
machine. Each check reads the machine as an operator would: systemd's own record, the server over the forwarded
port, the timeline through `pixtralctl`."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from solid_png import solid_png

from .conftest import Booted, rehearsal
from .program import PROJECT_DIR

CLOUD_CLI = Path(__file__).resolve().parent / "cloud_cli"
# Units outside ours that may leave `systemctl is-system-running` short of `running` in the container, each with
# why; none is ours.
OUTSIDE_UNITS_ALLOWED_TO_FAIL: dict[str, str] = {}
SERVER_UNIT = "pixtral-vllm.service"


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


def check_units_reach_their_final_state_in_declared_order(booted: Booted) -> None:
    units = booted.machine.units()
    assert set(units) == set(booted.machine.state.units), units.keys()
    for name, unit in units.items():
        final = "running" if name == SERVER_UNIT else "exited"
        assert (unit["ActiveState"], unit["SubState"], unit["Result"]) == ("active", final, "success"), \
            f"{name}: {unit['ActiveState']}/{unit['SubState']} ({unit['Result']})\n{booted.machine.journal(name)}"
        started = int(unit["InactiveExitTimestampMonotonic"])
        for before in unit["After"].split():
            if before in units:
                assert int(units[before]["ActiveEnterTimestampMonotonic"]) <= started, \
                    f"{name} started before {before}, which it is ordered after"
    # cloud-init ran the whole document: no module failed, none left a recoverable error (exit 2).
    cloud_init = booted.machine.run("cloud-init", "status", "--long")
    assert cloud_init.returncode == 0, cloud_init.stdout + cloud_init.stderr
    state = booted.machine.run("systemctl", "is-system-running").stdout.strip()
    if state != "running":
        failed = booted.machine.run("systemctl", "list-units", "--failed", "--plain", "--no-legend").stdout
        names = {line.split()[0] for line in failed.splitlines() if line.strip()}
        assert not any(name.startswith("pixtral-") for name in names), failed
        assert names <= OUTSIDE_UNITS_ALLOWED_TO_FAIL.keys(), f"system is {state}; failed units:\n{failed}"


def check_seed_request_is_answered_and_the_key_enforced(booted: Booted) -> None:
    done = smoke(booted)
    assert done.returncode == 0, done.stdout + done.stderr


def check_plain_http_and_bad_keys_get_no_answer(booted: Booted) -> None:
    url = booted.endpoint + "/v1/chat/completions"
    context = ssl.create_default_context(cafile=booted.ca_certificate) if booted.ca_certificate else None
    for key in (None, "sk-wrong-key"):
        status, body = _request(url, key, context)
        assert status == 401 and "choices" not in body, (key, status, body)
    if booted.ca_certificate:
        status, body = _request(url.replace("https://", "http://"), booted.api_key, None)
        assert status != 200 and "choices" not in body, (status, body)


def first_boot(events: list[dict]) -> list[dict]:
    """The events up to the first `ready end` (a later reboot appends its own)."""
    ready = next(i for i, e in enumerate(events) if (e["phase"], e["event"]) == ("ready", "end"))
    return events[:ready + 1]


def timeline_events(booted: Booted) -> list[dict]:
    return [json.loads(line) for line in booted.timeline.read_text().splitlines() if line.strip()]


def check_timeline_holds_every_phase_in_order(booted: Booted) -> None:
    events = first_boot(timeline_events(booted))
    at = {(e["phase"], e["event"]): e["time"] for e in events}
    expected = [("boot", "start"), ("boot", "end"), ("install", "start"), ("install", "end"), ("download", "start"),
                ("download", "end"), ("secrets", "end"), ("load", "start"), ("load", "end"), ("graphs", "start"),
                ("graphs", "end"), ("ready", "end")]
    assert [k for k in expected if k not in at] == [], events
    assert at["boot", "start"] <= at["boot", "end"] <= min(at["install", "start"], at["secrets", "end"])
    # The download needs the secrets (an HF token); the server needs all three.
    assert at["secrets", "end"] <= at["download", "start"] <= at["download", "end"]
    assert max(at["install", "end"], at["download", "end"]) <= at["load", "start"] <= at["load", "end"]
    assert at["load", "end"] <= at["graphs", "start"] <= at["graphs", "end"] <= at["ready", "end"]
    env = {"PATH": f"{CLOUD_CLI}:{os.environ['PATH']}", "PIXTRAL_REHEARSAL_DIR": str(booted.machine.dir),
           "PIXTRAL_REHEARSAL_PYTHON": sys.executable}
    vm = (["--instance-id", "i-rehearsal", "--region", "us-east-1"] if booted.machine.state.cloud == "aws"
          else ["--instance-name", "rehearsal", "--zone", "us-central1-a"])
    printed = pixtralctl("timeline", *vm, env=env, timeout=120)
    assert printed.returncode == 0, printed.stderr
    for phase in ("boot", "install", "download", "secrets", "load", "graphs", "ready"):
        assert phase in printed.stdout, printed.stdout


def check_reboot_serves_again_without_install_or_download(booted: Booted) -> None:
    done = rehearsal("reboot", str(booted.machine.dir))
    assert done.returncode == 0, done.stderr[-6000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["endpoint"] == booted.endpoint
    install = booted.machine.run("journalctl", "-b", "--no-pager", "-u", "pixtral-install.service").stdout
    download = booted.machine.run("journalctl", "-b", "--no-pager", "-u", "pixtral-download.service").stdout
    assert "is already installed" in install, install
    assert "is already in" in download, download
    events = timeline_events(booted)
    after_reboot = events[len(first_boot(events)):]
    phases = [(e["phase"], e["event"]) for e in after_reboot]
    assert ("ready", "end") in phases and ("boot", "start") in phases, phases
    assert not {("install", "start"), ("download", "start")} & set(phases), phases
    check_seed_request_is_answered_and_the_key_enforced(booted)


# Faults (issue #21 item 5). Each leaves the machine serving again, so the checks can run in any order.
FAST_RETRY = "[Service]\nEnvironment=PIXTRAL_RETRY_SECONDS=1\n"


def _now(booted: Booted) -> str:
    return booted.machine.run("date", "+%s.%N").stdout.strip()


def _journal_since(booted: Booted, since: str, *units: str) -> str:
    return booted.machine.run("journalctl", "--no-pager", "-o", "cat", f"--since=@{since}",
                              *(f"--unit={u}" for u in units)).stdout


def _wait_for(booted: Booted, what: str, predicate, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        units = booted.machine.units()
        if predicate(units):
            return units
        time.sleep(2)
    raise AssertionError(f"{what} within {timeout:.0f} s; units: "
                         f"{ {n: (u['ActiveState'], u['SubState']) for n, u in booted.machine.units().items()} }")


def _serving(units: dict) -> bool:
    return all(u["ActiveState"] == "active" for u in units.values())


def check_vllm_killed_is_restarted_and_serves_again(booted: Booted) -> None:
    before = int(booted.machine.units()[SERVER_UNIT]["NRestarts"])
    # vLLM's API server: the launcher's child (the launcher pipes its log through watch_phases).
    killed = booted.machine.run("pkill", "-KILL", "-f", "vllm[.]entrypoints[.]openai[.]api_server")
    assert killed.returncode == 0, killed.stderr
    _wait_for(booted, "vLLM restarted", lambda units: int(units[SERVER_UNIT]["NRestarts"]) > before)
    _wait_for(booted, "serving again after the restart", _serving)
    check_seed_request_is_answered_and_the_key_enforced(booted)


def check_faults_fail_with_a_line_that_says_so(booted: Booted) -> None:
    """A store that refuses the key, a full disk under the download, a missing GPU: each fails its unit with a
    journal line that names the cause, and vLLM never starts without its key. Then the machine is mended and serves
    again (one restart of vLLM for all three)."""
    machine = booted.machine
    state = machine.state
    api_key_secret = next(s for s in state.secrets if "api-key" in s["name"])
    # Retries a second apart instead of 10 s, for this check only (a runtime drop-in, gone at the end).
    for unit in ("pixtral-secrets.service", "pixtral-download.service"):
        machine.run("sh", "-c", f"mkdir -p /run/systemd/system/{unit}.d && "
                                f"printf '{FAST_RETRY}' >/run/systemd/system/{unit}.d/fast-retry.conf")
    machine.run("systemctl", "daemon-reload")
    machine.run("systemctl", "stop", SERVER_UNIT, "pixtral-secrets.service", "pixtral-download.service")

    # The store refuses: the secrets unit fails naming the secret; vLLM is not started.
    since = _now(booted)
    machine.store_refuses(api_key_secret["name"])
    machine.run("systemctl", "start", "--no-block", SERVER_UNIT)
    _wait_for(booted, "the secrets unit failed", lambda u: u["pixtral-secrets.service"]["ActiveState"] == "failed",
              timeout=300)
    journal = _journal_since(booted, since, "pixtral-secrets.service", SERVER_UNIT)
    assert f"cannot read secret {api_key_secret['name']} (version {api_key_secret['version']})" in journal, journal
    assert "phase=load event=start" not in journal, journal
    assert machine.units()[SERVER_UNIT]["ActiveState"] != "active"
    machine.store_restored()

    # A full disk under the download (the marker moved aside, so it runs again).
    env = machine.run("cat", "/etc/pixtral/pixtral.env").stdout
    hf_home = next(line.split("=", 1)[1] for line in env.splitlines() if line.startswith("HF_HOME="))
    model = next(line.split("=", 1)[1] for line in env.splitlines() if line.startswith("PIXTRAL_MODEL="))
    marker = f"{hf_home}/.pixtral-downloaded-{model.replace('/', '--')}"
    machine.run("mv", marker, f"{marker}.aside")
    machine.run("mount", "-t", "tmpfs", "-o", "size=256k", "full-disk", hf_home)
    since = _now(booted)
    machine.run("systemctl", "reset-failed")
    machine.run("systemctl", "start", "--no-block", "pixtral-download.service")
    _wait_for(booted, "the download failed", lambda u: u["pixtral-download.service"]["ActiveState"] == "failed",
              timeout=300)
    journal = _journal_since(booted, since, "pixtral-download.service")
    assert "No space left on device" in journal, journal[-3000:]
    machine.run("umount", hf_home)
    machine.run("mv", f"{marker}.aside", marker)

    # No GPU: the launcher says so (the stand-in for the driver's tool is gone), vLLM never starts.
    nvidia_smi = machine.root / "usr/local/bin/nvidia-smi"
    nvidia_smi.rename(nvidia_smi.with_suffix(".aside"))
    try:
        since = _now(booted)
        machine.run("systemctl", "reset-failed")
        machine.run("systemctl", "start", "--no-block", SERVER_UNIT)
        deadline = time.monotonic() + 300
        while "no NVIDIA GPU found" not in _journal_since(booted, since, SERVER_UNIT) and time.monotonic() < deadline:
            time.sleep(2)
        journal = _journal_since(booted, since, SERVER_UNIT)
        assert "no NVIDIA GPU found" in journal, journal[-3000:]
        assert "phase=load event=start" not in journal, journal
    finally:
        nvidia_smi.with_suffix(".aside").rename(nvidia_smi)
        machine.run("sh", "-c", "rm -rf /run/systemd/system/pixtral-*.d && systemctl daemon-reload")
    # Mended: Restart=always starts vLLM again, which finds its key, its weights and its GPU.
    _wait_for(booted, "serving again once mended", _serving)
    check_seed_request_is_answered_and_the_key_enforced(booted)
