"""A real vLLM answers the seed's request, started the way the VM starts it, with the program's own arguments.

The server is the CPU build of the pinned vLLM (the venv .ci/install-e2e builds) serving a tiny, randomly
initialised Pixtral that the test writes. It is started through the VM's start path: the launcher, library,
environment file and argument file are taken out of the rendered cloud-init of a shipped stack and run for real.
The only changes are the ones in `CPU_SUBSTITUTIONS` / `_vm_environment`, in one visible place. The server
serves HTTPS with the --ssl-* flags the program generates, pointed at a certificate for 127.0.0.1 that a test CA
signs (tests/tls_test_ca.py, made as the stack CA makes it); every client verifies it with that CA.
"""

from __future__ import annotations

import base64
import getpass
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import tls_test_ca
import yaml
from conftest import PROJECT_DIR, e2e_python, pod_controller, run_stack
from solid_png import solid_png

from pixtral_deploy.cloudinit import declared_user_data

pytestmark = pytest.mark.e2e

API_KEY = "sk-e2e-test-key"
VM_STACK = "aws"
K8S_STACK = "k8s"
# The shipped stack's settings, but a limit of 2 images keeps the CPU prompts small (the limit is what is tested).
MAX_IMAGES = 2
READY_TIMEOUT_SECONDS = 600


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _substitute(args: list[str], replacements: dict[str, str], extra: list[str]) -> list[str]:
    """Replace the values of the given flags (each must be present) and append CPU-only flags."""
    args = list(args)
    for flag, value in replacements.items():
        assert flag in args, f"{flag} is not in the program's arguments: {args}"
        args[args.index(flag) + 1] = value
    return args + extra


def cpu_substitutions(model_dir: Path, port: int, tls: dict[str, Path]) -> tuple[dict[str, str], list[str]]:
    """Everything that differs from a GPU VM: where the model is, the port, where the test's certificate is, and
    what a 2-core CPU can hold."""
    return (
        {
            "--model": str(model_dir),
            "--ssl-keyfile": str(tls["tls.key"]),
            "--ssl-certfile": str(tls["tls.crt"]),
            "--port": str(port),
            # Loopback only: the test never listens on a routable address.
            "--host": "127.0.0.1",
            # A CPU KV cache of a few GB, and the tiny model's own context.
            "--max-model-len": "2048",
        },
        # Skipping graph capture cuts CPU start-up from ~64 s to ~40 s.
        ["--enforce-eager"],
    )


def _cloud_init_files(stack: str) -> dict[str, str]:
    run = run_stack(stack, {"pixtral:maxImagesPerPrompt": str(MAX_IMAGES)})
    (user_data,) = [declared_user_data(r) for r in run["resources"] if declared_user_data(r)]
    return {entry["path"]: entry["content"] for entry in yaml.safe_load(user_data)["write_files"]}


def _env_file(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def _png(color: tuple[int, int, int], size: int = 64) -> bytes:
    return solid_png(color, size)


class Server:
    def __init__(self, command: list[str], env: dict[str, str], port: int, log: Path, ca_file: Path):
        self.port = port
        self.log = log
        self.ca_file = ca_file
        self.process = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                        start_new_session=True)

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def client_context(self) -> ssl.SSLContext:
        """What a client that trusts the stack CA uses."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)

    def tail(self) -> str:
        return "\n".join(self.log.read_text().splitlines()[-40:])


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-pixtral")
    done = subprocess.run([e2e_python(), str(Path(__file__).parent / "tiny_pixtral.py"), str(directory)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return directory


def _vm_environment(files: dict[str, str], root: Path) -> dict[str, str]:
    """The VM's environment file, with the paths of this machine put in for the VM's."""
    env = _env_file(files["/etc/pixtral/pixtral.env"])
    env.update({
        "PIXTRAL_VLLM_PYTHON": e2e_python(),
        "PIXTRAL_CACHE_DIR": str(root / "cache"),
        "HF_HOME": str(root / "cache/hf"),
        "VLLM_CACHE_ROOT": str(root / "cache/vllm"),
        "PIXTRAL_USER": getpass.getuser(),
        "PYTHONPATH": str(root / "lib/python"),
        "PIXTRAL_LIB": str(root / "lib"),
        "PIXTRAL_STATE_DIR": str(root / "state"),
        "PIXTRAL_ARGS_FILE": str(root / "vllm.args"),
        "HF_HUB_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": "2",
    })
    # What pixtral-secrets.service would have written to the root-only secrets file.
    env["VLLM_API_KEY"] = API_KEY
    # The GPU's edge: the launcher asks the NVIDIA driver's tool for a GPU before it starts vLLM (on CPU here).
    bin_dir = root / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: NVIDIA L40S (UUID: GPU-0)'\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    return {**env, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(root)}


@pytest.fixture(scope="module")
def loopback_tls(tmp_path_factory) -> dict[str, Path]:
    """ca.crt, tls.crt (for 127.0.0.1) and tls.key."""
    return tls_test_ca.issue().write(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def vm_server(tiny_model, loopback_tls, tmp_path_factory):
    root = tmp_path_factory.mktemp("vm-root")
    files = _cloud_init_files(VM_STACK)
    (root / "lib/python").mkdir(parents=True)
    for path, content in files.items():
        if path.startswith("/usr/local/lib/pixtral/"):
            target = root / "lib" / path.removeprefix("/usr/local/lib/pixtral/")
            target.write_text(content)
            target.chmod(0o755)
    port = _free_port()
    replacements, extra = cpu_substitutions(tiny_model, port, loopback_tls)
    args = _substitute(files["/etc/pixtral/vllm.args"].splitlines(), replacements, extra)
    (root / "vllm.args").write_text("".join(f"{arg}\n" for arg in args))
    env = _vm_environment(files, root)
    # The VM's first unit prepares the cache and starts the timeline; then the service runs the launcher.
    storage = subprocess.run(["bash", str(root / "lib/prepare-storage.sh")], env=env, capture_output=True, text=True)
    assert storage.returncode == 0, storage.stderr
    server = Server(["bash", str(root / "lib/launch-vllm.sh")], env, port, root / "vllm.log", loopback_tls["ca.crt"])
    yield server
    server.stop()


def _wait_ready(server: Server) -> subprocess.CompletedProcess:
    """`pixtralctl wait` against the server; a server that dies meanwhile fails the test at once, with its log."""
    waiting = subprocess.Popen([sys.executable, "-m", "pixtralctl", "wait", "--endpoint", server.endpoint,
                                "--api-key", API_KEY, "--ca-cert", str(server.ca_file),
                                "--timeout", str(READY_TIMEOUT_SECONDS), "--interval", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=PROJECT_DIR)
    while waiting.poll() is None:
        if server.process.poll() is not None:
            waiting.kill()
            pytest.fail(f"vLLM exited with {server.process.returncode} before it was ready:\n{server.tail()}")
        time.sleep(1)
    output = waiting.stdout.read()
    assert waiting.returncode == 0, output + "\n--- server log ---\n" + server.tail()
    return subprocess.CompletedProcess(waiting.args, waiting.returncode, output, "")


def _pixtralctl(*args: str, timeout: float = READY_TIMEOUT_SECONDS + 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PIXTRAL_CA_CERT"}
    return subprocess.run([sys.executable, "-m", "pixtralctl", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=PROJECT_DIR, env=env)


def _post(server: Server, path: str, body: dict, key: str | None = API_KEY) -> tuple[int, dict]:
    request = urllib.request.Request(f"{server.endpoint}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {key}"} if key else {})})
    try:
        with urllib.request.urlopen(request, timeout=120, context=server.client_context()) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _image_url(color: tuple[int, int, int]) -> dict:
    return {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(
        _png(color)).decode()}}


def _chat(images: int) -> dict:
    content = []
    for index in range(images):
        content += [{"type": "text", "text": f"Describe image {index + 1}."}, _image_url((40 * index, 90, 200))]
    return {"model": "mistralai/Pixtral-12B-2409", "max_tokens": 8,
            "messages": [{"role": "user", "content": content or [{"type": "text", "text": "Hello."}]}]}


def test_wait_reports_ready_through_the_vm_start_path(vm_server):
    done = _wait_ready(vm_server)
    assert "ready after" in done.stdout and API_KEY not in done.stdout


def test_smoke_sends_the_seed_request_shape(vm_server, tmp_path):
    images = []
    for index, color in enumerate(((200, 40, 40), (40, 200, 40))):
        images += ["--image", str(tmp_path / f"image-{index}.png")]
        (tmp_path / f"image-{index}.png").write_bytes(_png(color))
    done = _pixtralctl("smoke", "--endpoint", vm_server.endpoint, "--api-key", API_KEY, "--expect-tokens",
                       "--ca-cert", str(vm_server.ca_file), "--max-tokens", "8", *images, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr + "\n--- server log ---\n" + vm_server.tail()


def test_a_client_that_does_not_trust_the_ca_fails_with_a_clear_error(vm_server, tmp_path):
    # The server is up (the tests above waited for it): only the missing trust makes these fail.
    done = _pixtralctl("wait", "--endpoint", vm_server.endpoint, "--api-key", API_KEY, "--timeout", "20", timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"the TLS certificate of {vm_server.endpoint} is not trusted" in done.stdout, done.stdout
    (tmp_path / "other.pem").write_text(tls_test_ca.issue(common_name="someone else's CA").ca_pem)
    done = _pixtralctl("smoke", "--endpoint", vm_server.endpoint, "--api-key", API_KEY, "--ca-cert",
                       str(tmp_path / "other.pem"), timeout=120)
    assert done.returncode != 0 and "is not trusted" in done.stdout + done.stderr, done.stdout + done.stderr
    with pytest.raises(urllib.error.URLError) as refused:
        urllib.request.urlopen(f"{vm_server.endpoint}/health", timeout=30, context=ssl.create_default_context())
    assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)


def test_plain_http_is_not_served(vm_server):
    # The key and the images never cross in clear: an http:// request gets no API answer.
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        urllib.request.urlopen(f"http://127.0.0.1:{vm_server.port}/health", timeout=30)


def test_image_tokens_count_in_the_prompt(vm_server):
    status, text_only = _post(vm_server, "/v1/chat/completions", _chat(0))
    assert status == 200, text_only
    status, two_images = _post(vm_server, "/v1/chat/completions", _chat(MAX_IMAGES))
    assert status == 200, two_images
    assert two_images["usage"]["prompt_tokens"] > text_only["usage"]["prompt_tokens"] + MAX_IMAGES
    assert two_images["usage"]["completion_tokens"] >= 1


def test_wrong_or_missing_key_is_refused(vm_server):
    assert _post(vm_server, "/v1/chat/completions", _chat(1), key="wrong-key")[0] == 401
    assert _post(vm_server, "/v1/chat/completions", _chat(1), key=None)[0] == 401


def test_invocations_route_needs_the_key_too(vm_server):
    # vLLM serves /invocations (SageMaker's inference route) outside --api-key's reach; the guard closes it.
    assert _post(vm_server, "/invocations", _chat(1), key=None)[0] == 401


def test_one_image_more_than_the_limit_is_refused(vm_server):
    status, body = _post(vm_server, "/v1/chat/completions", _chat(MAX_IMAGES + 1))
    assert status == 400, body


def test_metrics_serve_prometheus_text(vm_server):
    request = urllib.request.Request(f"{vm_server.endpoint}/metrics",
                                     headers={"Authorization": f"Bearer {API_KEY}"})
    with urllib.request.urlopen(request, timeout=30, context=vm_server.client_context()) as response:
        text = response.read().decode()
    assert text.startswith("# HELP") and "\nvllm:" in text, text[:300]


PREFLIGHT = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}


def _options(server: Server, path: str, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(f"{server.endpoint}{path}", method="OPTIONS", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30, context=server.client_context()) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.parametrize("path", ["/metrics", "/metrics/", "/metricsX", "/v1/models"])
def test_options_needs_the_key_too(vm_server, path):
    # vLLM's apps answer any method: a keyless OPTIONS /metrics used to return the whole metrics text. The server
    # has no --allowed-origins, so even a browser's preflight needs the key.
    for headers in ({}, PREFLIGHT):
        status, body = _options(vm_server, path, headers)
        assert status == 401 and "vllm:" not in body, (headers, status, body[:200])


def test_options_with_the_key_reaches_vllm(vm_server):
    # The refusal above is the guard's: the same request with the key is answered by vLLM's metrics app.
    status, body = _options(vm_server, "/metrics", {"Authorization": f"Bearer {API_KEY}"})
    assert status == 200 and "\nvllm:" in body, body[:300]


def test_cors_preflight_with_allowed_origins_is_answered_by_vllms_cors_middleware(tmp_path):
    # vLLM's own app (build_app, the pinned parser) with --allowed-origins: a browser's preflight passes the guard
    # without the key and is answered by the CORS middleware below it; any other OPTIONS still needs the key.
    (tmp_path / "pixtral_guard.py").write_text((PROJECT_DIR / "userdata/pixtral_guard.py").read_text())
    requests = [{"method": "OPTIONS", "path": "/metrics", "headers": PREFLIGHT},
                {"method": "OPTIONS", "path": "/metrics", "headers": {"Origin": PREFLIGHT["Origin"]}},
                {"method": "OPTIONS", "path": "/metrics", "headers": {}},
                {"method": "OPTIONS", "path": "/metrics", "headers": {"Authorization": f"Bearer {API_KEY}"}}]
    done = subprocess.run(
        [e2e_python(), str(Path(__file__).parent / "guard_probe.py"), "--model", "m", "--middleware",
         "pixtral_guard.RequireApiKey", "--allowed-origins", f'["{PREFLIGHT["Origin"]}"]'],
        input=json.dumps(requests), capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(tmp_path), "VLLM_API_KEY": API_KEY})
    assert done.returncode == 0, done.stderr[-2000:]
    preflight, origin_only, bare, keyed = json.loads(done.stdout)
    assert preflight["status"] == 200 and "vllm:" not in preflight["body"], preflight
    assert origin_only["status"] == 401 and bare["status"] == 401, (origin_only, bare)
    assert keyed["status"] == 200 and "# HELP" in keyed["body"], keyed


def test_launch_recorded_load_and_warmup_phases_from_vllms_log(vm_server):
    # The markers watch_phases looks for in vLLM's log must exist in the pinned release's log.
    timeline = [json.loads(line) for line in
                (Path(vm_server.log).parent / "state/timeline.jsonl").read_text().splitlines()]
    steps = [(event["phase"], event["event"]) for event in timeline]
    assert steps == [("boot", "start"), ("boot", "end"), ("load", "start"), ("load", "end"), ("graphs", "start"),
                     ("graphs", "end")], steps
    assert [event["time"] for event in timeline] == sorted(event["time"] for event in timeline)


def _as_container_user(container: dict, command: list[str]) -> list[str]:
    """The pod runs vLLM as the manifest's runAsUser (no passwd entry); as root, this test does too."""
    if os.geteuid() != 0:
        return command
    uid = container["securityContext"]["runAsUser"]
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *command]


def test_kubernetes_container_starts_the_real_server_as_its_unprivileged_user(tiny_model, vm_server, loopback_tls):
    # Runs after the VM tests (module order) and stops their server first: two CPU servers would not fit 2 cores.
    vm_server.stop()
    run = run_stack(K8S_STACK, {"pixtral:maxImagesPerPrompt": str(MAX_IMAGES)})
    workload = pod_controller(run)
    (container,) = workload["inputs"]["spec"]["template"]["spec"]["containers"]
    uid = container["securityContext"]["runAsUser"]
    # The pod's volumes, in a folder the container's user can reach: the cache volume (fsGroup makes it the
    # user's), the guard ConfigMap, and the model (in the pod it would be in the cache).
    with tempfile.TemporaryDirectory(prefix="pixtral-pod-") as scratch:
        root = Path(scratch)
        root.chmod(0o755)
        mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
        cache, guard, tls = root / "cache", root / "guard", root / "tls"
        shutil.copytree(tiny_model, root / "model")
        for path in (root / "model", *(root / "model").iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        guard.mkdir()
        (guard / "pixtral_guard.py").write_text((PROJECT_DIR / "userdata/pixtral_guard.py").read_text())
        cache.mkdir()
        # The TLS Secret's volume: the files the Secret holds, group-readable by the pod's fsGroup only.
        (volume,) = [v for v in workload["inputs"]["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls"]
        tls.mkdir()
        for name in ("tls.crt", "tls.key"):
            shutil.copy(loopback_tls[name], tls / name)
            (tls / name).chmod(volume["secret"]["defaultMode"])
            if os.geteuid() == 0:
                os.chown(tls / name, 0, uid)
        if os.geteuid() == 0:
            os.chown(cache, uid, uid)
        env = {e["name"]: e["value"].replace(mounts["cache"], str(cache)).replace(mounts["guard"], str(guard))
               for e in container["env"] if "value" in e}
        env.update({"VLLM_API_KEY": API_KEY, "PATH": os.environ["PATH"], "HF_HUB_OFFLINE": "1",
                    "VLLM_CPU_KVCACHE_SPACE": "2"})
        port = _free_port()
        pod_tls = {name: tls / name for name in ("tls.crt", "tls.key")}
        # The program's flags point into the Secret's mount; the test's copy of the mount is `tls`.
        assert container["args"][container["args"].index("--ssl-keyfile") + 1] == f"{mounts['tls']}/tls.key"
        replacements, extra = cpu_substitutions(root / "model", port, pod_tls)
        args = _substitute(container["args"], replacements, extra)
        # The container's command, with the e2e venv's python for the image's python3.
        command = _as_container_user(container, [e2e_python(), *container["command"][1:], *args])
        server = Server(command, env, port, root / "vllm.log", loopback_tls["ca.crt"])
        try:
            _wait_ready(server)
            assert _post(server, "/v1/chat/completions", _chat(MAX_IMAGES))[0] == 200
            assert _post(server, "/invocations", _chat(1), key=None)[0] == 401
        finally:
            server.stop()
        assert server.process.returncode is not None
