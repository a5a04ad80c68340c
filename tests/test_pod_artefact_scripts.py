"""The pods' fill and publish (userdata/pod-fill-cache.sh, pod-publish.sh), run for real as their containers run them:
the ConfigMap's files, the environment the program renders for the eks stack's init containers (paths moved into
a temporary pod), a real AWS CLI, and the rehearsal's S3 stand-in on loopback (tests/rehearsal/s3.py) where EKS Pod
Identity's credentials and S3 would be. The PATH holds only what the scripts call, with and without tar (the
AWS CLI's image may have none: the scripts then pack and unpack with Python's tarfile, and a pod of either kind
reads what the other wrote). Without tar the PATH has no python3 either: the scripts then find Python where
PIXTRAL_TOOL_PYTHON says, as in Google's CLI image.

The GCS path (`gcloud storage`) is not run here: Google's CLI cannot be pointed at a stand-in as the AWS CLI can.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import aws_cli, free_port, pod_controller, run_stack, s3_stand_in

from components.pod_artefacts import scripts

# What the scripts call besides the AWS CLI and Python (`tar` only where the test says so).
TOOLS = ("bash", "mktemp", "date", "rm", "cat", "tail", "mkdir", "mv", "touch", "sleep", "dirname", "env")
MODEL_FILES = {"consolidated.safetensors": b"\1" * 300_000, "params.json": b'{"dim": 5120}', "tekken.json": b"{}"}
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _rendered_env() -> tuple[dict[str, str], dict[str, str]]:
    """The fill's and the publish's environment as the eks stack renders them."""
    spec = pod_controller(run_stack("eks"))["inputs"]["spec"]["template"]["spec"]
    fill, publish = ({v["name"]: v["value"] for v in c["env"]} for c in spec["initContainers"])
    return fill, publish


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[dict]:
    aws = aws_cli()
    fill_env, publish_env = _rendered_env()
    bucket = fill_env["PIXTRAL_ARTEFACTS"].removeprefix("s3://")
    root = tmp_path_factory.mktemp("store")
    with s3_stand_in(root, bucket) as (port, log):
        lib = root / "lib"
        lib.mkdir()
        for name, text in scripts().items():
            (lib / name).write_text(text)
        bins = {}
        for with_tar in (True, False):
            folder = root / ("bin-tar" if with_tar else "bin-no-tar")
            folder.mkdir()
            for tool in TOOLS + (("tar",) if with_tar else ()):
                (folder / tool).symlink_to(shutil.which(tool))
            if with_tar:
                (folder / "python3").symlink_to(sys.executable)
            (folder / "aws").symlink_to(aws)
            bins[with_tar] = folder
        # Where a pod gets its credentials from EKS Pod Identity and reaches S3: the stand-in.
        cloud = {"AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "pod-identity",
                 "AWS_SECRET_ACCESS_KEY": "pod-identity"}
        yield {"root": root, "lib": lib, "bins": bins, "cloud": cloud, "log": log, "bucket": bucket,
               "fill": fill_env, "publish": publish_env, "aws": aws}


def _pod_env(store: dict, base: dict[str, str], pod: Path, model: str, with_tar: bool) -> dict[str, str]:
    """A container's rendered environment, its paths moved into `pod` (the claim at pod/cache, /tmp at pod/tmp)."""
    (pod / "tmp").mkdir(parents=True, exist_ok=True)
    env = {}
    for name, value in base.items():
        moved = value.startswith("/cache/") or value == "/tmp" or value.startswith("/tmp/")
        env[name] = str(pod) + value if moved else value
    env.update(PIXTRAL_LIB=str(store["lib"]), PIXTRAL_MODEL=model, PATH=str(store["bins"][with_tar]),
               **store["cloud"])
    if not with_tar:
        env["PIXTRAL_TOOL_PYTHON"] = sys.executable
    return env


def _requests(store: dict) -> list[dict]:
    return [json.loads(line) for line in store["log"].read_text().splitlines()] if store["log"].exists() else []


def _fill(store: dict, pod: Path, model: str, with_tar: bool = True) -> subprocess.CompletedProcess:
    env = _pod_env(store, store["fill"], pod, model, with_tar)
    done = subprocess.run(["bash", str(store["lib"] / "pod-fill-cache.sh")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"the fill must never fail the pod:\n{done.stdout}\n{done.stderr}"
    return done


def _downloaded_by_vllm(pod: Path, model: str) -> Path:
    """What vLLM's download leaves on the claim: the Hugging Face cache's blobs, a snapshot of links, a ref."""
    repo = pod / "cache/hf/hub" / f"models--{model.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True)
    (repo / "snapshots" / COMMIT).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs/main").write_text(COMMIT)
    for index, (name, data) in enumerate(MODEL_FILES.items()):
        (repo / "blobs" / f"blob{index}").write_bytes(data)
        (repo / "snapshots" / COMMIT / name).symlink_to(f"../../blobs/blob{index}")
    return repo


def _tree(folder: Path) -> dict[str, str | bytes]:
    """Every entry under `folder`: a link's target, a file's bytes."""
    return {str(p.relative_to(folder)): (f"-> {os.readlink(p)}" if p.is_symlink() else p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_symlink() or p.is_file()}


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the handler's name is http.server's)
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def _vllm_answering(port: int) -> Iterator[None]:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def _publish(store: dict, pod: Path, model: str, with_tar: bool, vllm_after: float = 0.0) -> list[str]:
    """The sidecar until it says what it did with the model, then stopped as the kubelet stops it (SIGTERM);
    returns its lines. vLLM answers only `vllm_after` seconds after the sidecar started."""
    port = free_port()
    env = _pod_env(store, store["publish"], pod, model, with_tar)
    env.update(PIXTRAL_HEALTH_URL=f"http://127.0.0.1:{port}/health", PIXTRAL_HEALTH_POLL_SECONDS="0.2")
    before = len(_requests(store))
    sidecar = subprocess.Popen(["bash", str(store["lib"] / "pod-publish.sh")], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    try:
        time.sleep(vllm_after)
        assert sidecar.poll() is None, "the sidecar must wait for vLLM, not exit"
        assert len(_requests(store)) == before, "nothing is published before vLLM answers"
        marker = pod / "cache/hf" / f".pixtral-downloaded-{model.replace('/', '--')}"
        assert vllm_after == 0 or not marker.exists(), "the claim is marked complete before vLLM loaded the model"
        with _vllm_answering(port):
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                line = sidecar.stdout.readline()
                lines.append(line.rstrip("\n"))
                if line.startswith(f"artefact model/{model.replace('/', '--')}:") or not line:
                    break
        time.sleep(0.3)
        assert sidecar.poll() is None, f"the sidecar must idle after publishing, not exit:\n{lines}"
        sidecar.send_signal(signal.SIGTERM)
        assert sidecar.wait(timeout=10) == 0, "a stopped sidecar exits cleanly"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sidecar.pid, signal.SIGKILL)
        sidecar.wait(timeout=10)
    return lines


def test_a_first_pod_finds_nothing_and_leaves_the_download_to_vllm(store, tmp_path):
    done = _fill(store, tmp_path, "first-org/never-published")
    assert "model/first-org--never-published: not published yet" in done.stdout, done.stdout
    assert "vLLM downloads it from Hugging Face" in done.stdout
    assert not (tmp_path / "cache/hf/hub").exists()


@pytest.mark.parametrize(("publisher_tar", "filler_tar"), [(True, False), (False, True)],
                         ids=["tar-to-tarfile", "tarfile-to-tar"])
def test_the_first_pod_publishes_once_vllm_answers_and_a_later_pod_fills_its_claim_from_it(
        store, tmp_path, publisher_tar, filler_tar):
    model = f"org-{publisher_tar:d}{filler_tar:d}/tiny-pixtral"
    first, later = tmp_path / "pod-0", tmp_path / "pod-1"
    repo = _downloaded_by_vllm(first, model)
    lines = _publish(store, first, model, publisher_tar, vllm_after=2.0)
    assert any(line.startswith(f"artefact model/{model.replace('/', '--')}: published (") for line in lines), lines
    marker = f".pixtral-downloaded-{model.replace('/', '--')}"
    assert (first / "cache/hf" / marker).exists(), "the publishing pod's claim is marked complete"

    done = _fill(store, later, model, filler_tar)
    assert "fetched from s3://" in done.stdout, done.stdout
    copy = later / "cache/hf/hub" / repo.name
    assert _tree(copy) == _tree(repo), "the later pod's claim must hold what vLLM downloaded, links and all"
    assert (later / "cache/hf" / marker).exists()
    assert not list((later / "cache/hf").glob(".artefact.*")), "no unpacking leftovers"


@pytest.fixture(scope="module")
def published(store, tmp_path_factory) -> str:
    model = "published-org/tiny-pixtral"
    pod = tmp_path_factory.mktemp("publisher")
    _downloaded_by_vllm(pod, model)
    lines = _publish(store, pod, model, with_tar=True)
    assert any("published (" in line for line in lines), lines
    return model


def test_a_claim_that_holds_the_model_asks_the_store_nothing(store, published, tmp_path):
    _fill(store, tmp_path, published)
    before = len(_requests(store))
    done = _fill(store, tmp_path, published)
    assert "complete on the cache claim: nothing to fetch" in done.stdout, done.stdout
    assert len(_requests(store)) == before


def test_a_later_publisher_leaves_the_published_model_alone(store, published, tmp_path):
    _downloaded_by_vllm(tmp_path, published)
    lines = _publish(store, tmp_path, published, with_tar=False)
    assert f"artefact model/{published.replace('/', '--')}: already in the store" in lines, lines


def test_a_corrupt_artefact_falls_back_to_the_hub_and_says_so(store, tmp_path):
    published = "corrupt-org/tiny-pixtral"
    _downloaded_by_vllm(tmp_path / "publisher", published)
    assert any("published (" in line for line in _publish(store, tmp_path / "publisher", published, True))
    key = f"model/{published.replace('/', '--')}/hub.tar"
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\0" * 10_240)
    env = {**os.environ, **store["cloud"], "AWS_DEFAULT_REGION": "us-east-1"}
    subprocess.run([store["aws"], "s3", "cp", "--only-show-errors", str(junk), f"s3://{store['bucket']}/{key}"],
                   env=env, check=True, capture_output=True, timeout=60)
    pod = tmp_path / "pod"
    done = _fill(store, pod, published)
    assert f"{key}: does not match its manifest" in done.stdout, done.stdout
    assert "vLLM downloads it from Hugging Face" in done.stdout
    assert not (pod / "cache/hf/hub").exists(), "nothing of a corrupt artefact stays on the claim"
    assert not list((pod / "cache/hf").glob(".*")), "no unpacking leftovers"


# A bucket of the user's (pixtral:artefactStore on `kubernetes`) shared with other data: the store's layout under a
# prefix of it.
USERS_PREFIX = "teams/vision/pixtral"


def _key_of(request: dict, bucket: str) -> str:
    """The object key a request names, or the prefix a listing asks for."""
    url = urllib.parse.urlsplit(request["path"])
    named_bucket, _, key = url.path.lstrip("/").partition("/")
    assert urllib.parse.unquote(named_bucket) == bucket, request
    return urllib.parse.unquote(key) or urllib.parse.parse_qs(url.query).get("prefix", [""])[0]


@pytest.fixture(scope="module")
def users_store(store) -> dict:
    """The stand-in's bucket as a `kubernetes` stack names it with a prefix: the fill's and the publish's environment
    as the program renders them for that stack."""
    url = f"s3://{store['bucket']}/{USERS_PREFIX}/"
    run = run_stack("k8s", {"pixtral:artefactStore": url, "pixtral:artefactStoreRegion": "eu-west-1"})
    assert run["error"] is None, run["error"]
    spec = pod_controller(run)["inputs"]["spec"]["template"]["spec"]
    fill, publish = ({v["name"]: v["value"] for v in c["env"]} for c in spec["initContainers"])
    assert fill["PIXTRAL_ARTEFACTS"] == url.removesuffix("/")
    return {**store, "fill": fill, "publish": publish}


@pytest.mark.parametrize("with_tar", [True, False], ids=["tar", "tarfile"])
def test_a_users_bucket_with_a_prefix_keeps_every_object_of_the_store_under_it(users_store, tmp_path, with_tar):
    model = f"prefixed-org-{with_tar:d}/tiny-pixtral"
    before = len(_requests(users_store))
    repo = _downloaded_by_vllm(tmp_path / "pod-0", model)
    lines = _publish(users_store, tmp_path / "pod-0", model, with_tar)
    assert any(line.startswith(f"artefact model/{model.replace('/', '--')}: published (") for line in lines), lines
    done = _fill(users_store, tmp_path / "pod-1", model, with_tar)
    assert f"fetched from s3://{users_store['bucket']}/{USERS_PREFIX} " in done.stdout, done.stdout
    assert _tree(tmp_path / "pod-1/cache/hf/hub" / repo.name) == _tree(repo)
    keys = [_key_of(r, users_store["bucket"]) for r in _requests(users_store)[before:]]
    model_key = f"{USERS_PREFIX}/model/{model.replace('/', '--')}"
    assert f"{USERS_PREFIX}/claims/model/{model.replace('/', '--')}" in keys, "the claim is under the prefix too"
    assert f"{model_key}/manifest.json" in keys and f"{model_key}/hub.tar" in keys, keys
    outside = [key for key in keys if not key.startswith(f"{USERS_PREFIX}/")]
    assert not outside, f"the store wrote or read outside its prefix: {outside}"
