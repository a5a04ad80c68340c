"""`pixtralctl timeline` and the boot phase in `wait`: the VM's timeline read through the cloud CLI.

The cloud CLI is the one thing replaced here: a stand-in `aws` on PATH answers SSM's send-command and
get-command-invocation with a timeline, as the real service returns what the VM's file holds.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from conftest import PROJECT_DIR
from fake_openai_server import FakeVllm

from pixtralctl import timeline

EVENTS = [
    {"phase": "boot", "event": "start", "time": 1000.0}, {"phase": "boot", "event": "end", "time": 1040.0},
    {"phase": "secrets", "event": "end", "time": 1042.0},
    {"phase": "install", "event": "start", "time": 1042.5}, {"phase": "download", "event": "start", "time": 1043.0},
    {"phase": "download", "event": "end", "time": 1064.0}, {"phase": "install", "event": "end", "time": 1101.0},
    {"phase": "load", "event": "start", "time": 1101.5}, {"phase": "load", "event": "end", "time": 1114.0},
    {"phase": "graphs", "event": "start", "time": 1114.0}, {"phase": "graphs", "event": "end", "time": 1140.0},
    {"phase": "ready", "event": "end", "time": 1143.0},
]


def test_table_shows_each_phase_from_boot():
    text = timeline.table(EVENTS)
    lines = {line.split()[0]: line.split()[1:] for line in text.splitlines()[1:]}
    assert lines["download"] == ["43.0s", "64.0s", "21.0s"]
    assert lines["install"] == ["42.5s", "101.0s", "58.5s"]
    assert lines["ready"] == ["-", "143.0s", "-"]
    assert [line.split()[0] for line in text.splitlines()[1:]] == [
        "boot", "secrets", "install", "download", "load", "graphs", "ready"]


# A later boot, as the boot scripts record it (docs/vms.md): vLLM and its compile cache from the stack's artefact
# store, the weights streamed from it by vLLM (the download fetches nothing), each start naming its source; a first
# boot publishes after it is ready.
LATER_BOOT = [
    {"phase": "boot", "event": "start", "time": 2000.0}, {"phase": "boot", "event": "end", "time": 2044.0},
    {"phase": "secrets", "event": "end", "time": 2045.0},
    {"phase": "install", "event": "start", "time": 2045.5, "source": "artefacts"},
    {"phase": "download", "event": "start", "time": 2045.6, "source": "artefacts"},
    {"phase": "download", "event": "end", "time": 2045.9},
    {"phase": "compile-cache", "event": "start", "time": 2046.0, "source": "artefacts"},
    {"phase": "compile-cache", "event": "end", "time": 2046.5}, {"phase": "install", "event": "end", "time": 2055.0},
    {"phase": "load", "event": "start", "time": 2055.2, "source": "stream"},
    {"phase": "load", "event": "end", "time": 2074.0},
    {"phase": "graphs", "event": "start", "time": 2074.0}, {"phase": "graphs", "event": "end", "time": 2088.0},
    {"phase": "ready", "event": "end", "time": 2089.0},
]
FIRST_BOOT_THAT_PUBLISHES = [
    *({**event, "source": {"install": "pypi", "download": "hub"}[event["phase"]]}
      if event["event"] == "start" and event["phase"] in ("install", "download") else event for event in EVENTS),
    {"phase": "publish", "event": "start", "time": 1144.0}, {"phase": "publish", "event": "end", "time": 1190.0},
]


# The stack's first boot with an artefact store: the weights from the hub, uploaded to the store beside the install,
# then streamed by vLLM (docs/vms.md, "The first boot publishes the weights before vLLM starts").
FIRST_BOOT_WITH_A_STORE = [
    *EVENTS[:3],
    {"phase": "install", "event": "start", "time": 1042.5, "source": "pypi"},
    {"phase": "download", "event": "start", "time": 1043.0, "source": "hub"},
    {"phase": "download", "event": "end", "time": 1064.0},
    {"phase": "publish-weights", "event": "start", "time": 1064.1},
    {"phase": "publish-weights", "event": "end", "time": 1078.0},
    {"phase": "install", "event": "end", "time": 1101.0},
    {"phase": "load", "event": "start", "time": 1101.5, "source": "stream"},
    *EVENTS[8:],
]


def _rows(text: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in text.splitlines()[1:]}


def test_the_table_shows_the_source_each_phase_used():
    text = timeline.table(LATER_BOOT)
    assert text.splitlines()[0].split() == ["phase", "start", "end", "took", "source"]
    rows = _rows(text)
    assert rows["install"] == ["45.5s", "55.0s", "9.5s", "artefacts"]
    assert rows["compile-cache"] == ["46.0s", "46.5s", "0.5s", "artefacts"]
    assert rows["download"][-1] == "artefacts"
    assert rows["load"][-1] == "stream" and rows["ready"] == ["-", "89.0s", "-", "-"]
    assert [line.split()[0] for line in text.splitlines()[1:]] == [
        "boot", "secrets", "install", "download", "compile-cache", "load", "graphs", "ready"]


def test_a_first_boot_shows_pypi_and_the_hub_and_publishes_after_ready():
    text = timeline.table(FIRST_BOOT_THAT_PUBLISHES)
    rows = _rows(text)
    assert rows["install"][-1] == "pypi" and rows["download"][-1] == "hub"
    assert rows["publish"] == ["144.0s", "190.0s", "46.0s", "-"]
    assert text.splitlines()[-1].startswith("publish"), "publishing comes after the server is ready"
    assert timeline.sources(FIRST_BOOT_THAT_PUBLISHES) == {"install": "pypi", "download": "hub"}


def test_a_first_boot_with_a_store_shows_its_upload_between_the_download_and_the_streamed_load():
    text = timeline.table(FIRST_BOOT_WITH_A_STORE)
    rows = _rows(text)
    assert rows["publish-weights"] == ["64.1s", "78.0s", "13.9s", "-"]
    assert rows["download"][-1] == "hub" and rows["load"][-1] == "stream"
    assert [line.split()[0] for line in text.splitlines()[1:]] == [
        "boot", "secrets", "install", "download", "publish-weights", "load", "graphs", "ready"]
    # While the weights go up, the install still runs beside them.
    assert timeline.current_phase(FIRST_BOOT_WITH_A_STORE[:7]) == "install + publish-weights"


def test_an_old_timeline_without_sources_renders_as_before():
    text = timeline.table(EVENTS)
    assert text.splitlines()[0] == f"{'phase':<10}{'start':>9}{'end':>9}{'took':>9}"
    assert all(len(line.split()) == 4 for line in text.splitlines()), "no source column for an older boot"
    assert timeline.sources(EVENTS) == {}


def test_timeline_json_keeps_the_sources(tmp_path):
    env = _fake_aws(tmp_path, LATER_BOOT)
    done = subprocess.run([sys.executable, "-m", "pixtralctl", "timeline", "--instance-id", "i-0abc", "--json"],
                          capture_output=True, text=True, env=env, cwd=PROJECT_DIR, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == LATER_BOOT


def test_timeline_prints_the_sources_through_ssm(tmp_path):
    env = _fake_aws(tmp_path, LATER_BOOT)
    done = subprocess.run([sys.executable, "-m", "pixtralctl", "timeline", "--instance-id", "i-0abc"],
                          capture_output=True, text=True, env=env, cwd=PROJECT_DIR, timeout=60)
    assert done.returncode == 0, done.stderr
    assert _rows(done.stdout)["install"] == ["45.5s", "55.0s", "9.5s", "artefacts"]


def test_current_phase_names_what_runs_now():
    assert timeline.current_phase(EVENTS[:5]) == "install + download"
    assert timeline.current_phase(EVENTS[:7]) == "install done"
    assert timeline.current_phase(EVENTS[:8]) == "load"
    assert timeline.current_phase([]) is None


def test_parse_skips_a_torn_last_line():
    text = "\n".join(json.dumps(e) for e in EVENTS[:3]) + '\n{"phase": "insta'
    assert timeline.parse(text) == EVENTS[:3]


def _fake_aws(tmp_path: Path, events: list[dict]) -> dict[str, str]:
    script = tmp_path / "aws"
    content = "\n".join(json.dumps(e) for e in events)
    script.write_text(f"""#!{sys.executable}
import json, sys
args = sys.argv[1:]
with open({str(tmp_path / 'calls.log')!r}, "a") as log:
    log.write(" ".join(args) + "\\n")
if args[:2] == ["ssm", "send-command"]:
    print(json.dumps({{"Command": {{"CommandId": "cmd-1"}}}}))
elif args[:2] == ["ssm", "get-command-invocation"]:
    print(json.dumps({{"Status": "Success", "StandardOutputContent": {content!r}}}))
else:
    sys.exit("unexpected call: " + " ".join(args))
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}


def test_timeline_reads_the_file_through_ssm(tmp_path):
    env = _fake_aws(tmp_path, EVENTS)
    done = subprocess.run([sys.executable, "-m", "pixtralctl", "timeline", "--instance-id", "i-0abc",
                           "--region", "eu-west-1"], capture_output=True, text=True, env=env, cwd=PROJECT_DIR,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "download" in done.stdout and "21.0s" in done.stdout
    calls = (tmp_path / "calls.log").read_text()
    assert "--instance-ids i-0abc" in calls and "AWS-RunShellScript" in calls and "eu-west-1" in calls
    assert timeline.TIMELINE_PATH in calls


def test_timeline_without_the_cloud_cli_says_what_is_missing(tmp_path):
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    done = subprocess.run([sys.executable, "-m", "pixtralctl", "timeline", "--instance-id", "i-0abc"],
                          capture_output=True, text=True, env=env, cwd=PROJECT_DIR, timeout=60)
    assert done.returncode == 2 and "aws CLI is not on PATH" in done.stderr


def test_timeline_without_the_pulumi_cli_names_the_vm_flags(tmp_path):
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    done = subprocess.run([sys.executable, "-m", "pixtralctl", "timeline", "--stack", "aws"],
                          capture_output=True, text=True, env=env, cwd=PROJECT_DIR, timeout=60)
    assert done.returncode == 2
    assert "--instance-id" in done.stderr and "--instance-name" in done.stderr
    assert "--endpoint" not in done.stderr, "the timeline is read from the VM, not the endpoint"


def test_wait_shows_the_vm_boot_phase_while_the_api_is_down(tmp_path):
    env = _fake_aws(tmp_path, EVENTS[:6])
    with FakeVllm("sk-key-for-timeline", mode="slow_start", ready_after=60) as server:
        done = subprocess.run([sys.executable, "-m", "pixtralctl", "wait", "--endpoint", server.endpoint,
                               "--api-key", "sk-key-for-timeline", "--instance-id", "i-0abc", "--timeout", "1",
                               "--interval", "0.3"], capture_output=True, text=True, env=env, cwd=PROJECT_DIR,
                              timeout=60)
    assert done.returncode == 1
    assert "[VM: install]" in done.stdout, done.stdout
