"""VM boots stream the weights from the stack's artefact store (issue #26, Run:ai's streamer), the first boot too once
it has published them there: the two command lines the program renders, and the boot scripts run for real in a
temporary root (download-weights.sh deciding, and on a first boot publishing the model as plain objects before vLLM
starts; launch-vllm.sh taking the arguments it decided; publish-artefacts.sh publishing the rest) against
a real AWS CLI and the rehearsal's S3 stand-in on loopback (tests/rehearsal/s3.py), where S3 would be.

Stand-ins at the edge only: `uvx` (the Hugging Face download the hub path runs: it writes the snapshot and says it
was asked), `nvidia-smi` (the GPU) and vLLM's python (it records the arguments it was started with). The GCS path
(`gcloud storage`) is not run here: Google's CLI cannot be pointed at a stand-in as the AWS CLI can.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import aws_cli, environment_file, free_port, run_stack, s3_stand_in, vm_files

from pixtral_deploy.artefacts import ENV_VAR, WEIGHTS_DIR, model_key, weights_url
from pixtral_deploy.server import STREAMED_LOAD_FORMAT, VLLM_STREAMER_EXTRA, VLLM_VERSION

ARGS = "/etc/pixtral/vllm.args"
STREAMED_ARGS = "/etc/pixtral/vllm-streamed.args"
MODEL = "mistralai/Pixtral-12B-2409"
MODEL_FILES = {"consolidated.safetensors": b"\1" * 300_000, "params.json": b'{"dim": 5120}', "tekken.json": b"{}"}
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _lines(text: str) -> list[str]:
    return text.splitlines()


def _flag(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


@pytest.mark.parametrize("stack", ["aws", "aws-fleet", "gcp", "gcp-fleet"])
def test_a_streamed_boot_differs_from_a_first_boot_only_in_where_and_how_it_reads_the_weights(stack):
    files = vm_files(run_stack(stack))
    first, streamed = _lines(files[ARGS]), _lines(files[STREAMED_ARGS])
    store = environment_file(files)[ENV_VAR]
    assert _flag(first, "--model") == MODEL
    assert _flag(streamed, "--model") == f"{store}/model/{model_key(MODEL)}/{WEIGHTS_DIR}"
    assert _flag(first, "--load-format") == "mistral"
    assert _flag(streamed, "--load-format") == STREAMED_LOAD_FORMAT
    assert _flag(streamed, "--served-model-name") == _flag(first, "--served-model-name")

    def without_weights(args: list[str]) -> list[str]:
        kept, skip = [], False
        for arg in args:
            if skip:
                skip = False
            elif arg in ("--model", "--load-format", "--model-loader-extra-config"):
                skip = True
            else:
                kept.append(arg)
        return kept

    assert without_weights(streamed) == without_weights(first), "only the weights' flags may differ"


def test_several_gpus_read_the_streamed_weights_once_for_all():
    files = vm_files(run_stack("aws", {"pixtral:instanceType": "g6e.12xlarge", "pixtral:tensorParallelSize": "4"}))
    streamed, first = _lines(files[STREAMED_ARGS]), _lines(files[ARGS])
    assert json.loads(_flag(streamed, "--model-loader-extra-config")) == {"distributed": True}
    assert "--model-loader-extra-config" not in first


@pytest.mark.parametrize("stack", ["aws", "gcp"])
def test_without_a_store_there_is_no_streamed_command_line(stack):
    files = vm_files(run_stack(stack, {"pixtral:warmStarts": "false"}))
    assert STREAMED_ARGS not in files
    assert _flag(_lines(files[ARGS]), "--load-format") == "mistral"


def test_the_streamer_on_s3_is_told_the_region_and_every_vm_installs_it():
    aws = environment_file(vm_files(run_stack("aws")))
    assert aws["AWS_REGION"] == aws["AWS_DEFAULT_REGION"] == aws["PIXTRAL_AWS_REGION"]
    assert "AWS_REGION" not in environment_file(vm_files(run_stack("gcp")))
    for stack in ("aws", "gcp"):
        assert environment_file(vm_files(run_stack(stack, {"pixtral:warmStarts": "false"})))[
            "PIXTRAL_VLLM_EXTRA"] == VLLM_STREAMER_EXTRA


def test_weights_url_is_under_the_model_prefix():
    assert weights_url("gs://b", "org/name") == "gs://b/model/org--name/weights"


# --- The boot scripts, for real ---

@contextlib.contextmanager
def _serving_store(root: Path) -> Iterator[dict]:
    """The S3 stand-in on loopback holding the `aws` stack's bucket in `root`, and what a VM of the stack needs."""
    aws = aws_cli()
    files = vm_files(run_stack("aws"))
    env = environment_file(files)
    bucket = env[ENV_VAR].removeprefix("s3://")
    with s3_stand_in(root, bucket) as (port, log):
        yield {"aws": aws, "files": files, "env": env, "bucket": bucket, "port": port, "log": log,
               "data": root / "data" / bucket}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[dict]:
    with _serving_store(tmp_path_factory.mktemp("store")) as serving:
        yield serving


@pytest.fixture
def empty_store(tmp_path) -> Iterator[dict]:
    """A store of the test's own, empty (for a boot that must find no weights in it)."""
    with _serving_store(tmp_path / "store") as serving:
        yield serving


def _env(store: dict, root: Path) -> dict[str, str]:
    """The environment of the VM's units (pixtral.env as rendered), its paths moved into `root`, S3 the stand-in."""
    bins = root / "bin"
    return {**store["env"],
            "PIXTRAL_LIB": str(root / "usr/local/lib/pixtral"), "PIXTRAL_BIN": str(bins),
            "PIXTRAL_STATE_DIR": str(root / "var/lib/pixtral"), "PIXTRAL_RUN_DIR": str(root / "run"),
            "HF_HOME": str(root / "var/lib/pixtral/cache/hf"),
            "VLLM_CACHE_ROOT": str(root / "var/lib/pixtral/cache/vllm"),
            "PIXTRAL_VLLM_PYTHON": str(root / f"opt/pixtral/vllm-{VLLM_VERSION}/bin/python"),
            "PIXTRAL_USER": "root", "PIXTRAL_RETRY_SECONDS": "0",
            "PIXTRAL_ARGS_FILE": str(root / ARGS.lstrip("/")),
            "PIXTRAL_STREAMED_ARGS_FILE": str(root / STREAMED_ARGS.lstrip("/")), "VLLM_API_KEY": "sk-test",
            "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{store['port']}", "AWS_ACCESS_KEY_ID": "instance-role",
            "AWS_SECRET_ACCESS_KEY": "instance-role", "AWS_EC2_METADATA_DISABLED": "true",
            "PATH": f"{bins}:/usr/bin:/bin", "HOME": str(root)}


def _hub_download(origin: Path, repo: Path, calls: Path) -> str:
    """A stand-in for huggingface_hub's `hf download` (run through uvx): the snapshot of links into blobs it leaves,
    copied from `origin`, and a line in `calls` saying it was asked. In offline mode it refuses, as the Hub's client
    does (the server's unit sets HF_HUB_OFFLINE)."""
    origin.mkdir(parents=True)
    lines = ["#!/bin/bash",
             '[ "${HF_HUB_OFFLINE:-}" != 1 ] || { echo "Cannot reach the Hub: offline mode is enabled" >&2; exit 1; }',
             f"echo \"$*\" >>'{calls}'",
             f"mkdir -p '{repo}/blobs' '{repo}/snapshots/{COMMIT}' '{repo}/refs'",
             f"printf {COMMIT} >'{repo}/refs/main'"]
    for index, (name, data) in enumerate(MODEL_FILES.items()):
        (origin / name).write_bytes(data)
        lines += [f"cp '{origin / name}' '{repo}/blobs/b{index}'",
                  f"ln -sf ../../blobs/b{index} '{repo}/snapshots/{COMMIT}/{name}'"]
    return "\n".join(lines) + "\n"


def _vm(store: dict, root: Path) -> dict[str, str]:
    """A blank VM in `root`: the user data's scripts and args files, a venv already installed, stand-ins for the
    GPU, the Hugging Face download and vLLM. Returns its units' environment."""
    for path, content in store["files"].items():
        if path.startswith(("/usr/local/lib/pixtral/", "/etc/pixtral/")):
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
    bins = root / "bin"
    bins.mkdir()
    (bins / "aws").symlink_to(store["aws"])
    stand_ins = {
        "nvidia-smi": "#!/bin/sh\necho 'GPU 0: NVIDIA L40S (UUID: GPU-1)'\n",
        "uvx": _hub_download(root / "hub-origin", root / "var/lib/pixtral/cache/hf/hub" / f"models--{model_key(MODEL)}",
                             root / "hub-calls"),
        "uv": "#!/bin/sh\nexit 0\n",
        "vllm-python": f"#!/bin/bash\nprintf '%s\\n' \"$@\" >'{root}/vllm-started-with'\n",
    }
    for name, text in stand_ins.items():
        (bins / name).write_text(text)
        (bins / name).chmod(0o755)
    (root / "run").mkdir()
    (root / "var/lib/pixtral/cache/hf").mkdir(parents=True)
    return _env(store, root)


def _run(env: dict[str, str], script: str) -> subprocess.CompletedProcess:
    done = subprocess.run(["bash", f"{env['PIXTRAL_LIB']}/{script}"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    return done


def _timeline(root: Path) -> list[dict]:
    path = root / "var/lib/pixtral/timeline.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _start_source(root: Path, phase: str) -> str | None:
    (event,) = [e for e in _timeline(root) if e["phase"] == phase and e["event"] == "start"]
    return event.get("source")


def _launch(root: Path, env: dict[str, str]) -> list[str]:
    """launch-vllm.sh with the vLLM stand-in: the arguments vLLM was started with."""
    _run({**env, "PIXTRAL_VLLM_PYTHON": env["PIXTRAL_BIN"] + "/vllm-python"}, "launch-vllm.sh")
    return (root / "vllm-started-with").read_text().splitlines()[2:]


def _requests(store: dict) -> list[dict]:
    return [json.loads(line) for line in store["log"].read_text().splitlines()] if store["log"].exists() else []


def _object(store: dict, key: str) -> Path:
    return store["data"] / "objects" / key


WEIGHTS = f"model/{model_key(MODEL)}/{WEIGHTS_DIR}"


def _installed(env: dict[str, str]) -> None:
    venv = Path(env["PIXTRAL_VLLM_PYTHON"]).parent.parent
    (venv / "bin").mkdir(parents=True)
    (venv / ".pixtral-installed").touch()


@pytest.fixture(scope="module")
def first(store, tmp_path_factory) -> dict:
    """The stack's first VM: the store empty, the model from the hub and into the store, vLLM started, then the
    publish of the rest."""
    root = tmp_path_factory.mktemp("first-vm")
    env = _vm(store, root)
    _installed(env)
    before = len(_requests(store))
    download = _run(env, "download-weights.sh")
    requests = _requests(store)[before:]
    stored_before_load = sorted(str(p.relative_to(store["data"] / "objects")) for p in
                                (store["data"] / "objects").rglob("*") if p.is_file())
    args = _launch(root, env)
    publish = _run(env, "publish-artefacts.sh")
    return {"root": root, "env": env, "download": download, "args": args, "publish": publish,
            "requests": requests, "stored_before_load": stored_before_load}


@pytest.fixture(scope="module")
def later(store, first, tmp_path_factory) -> dict:
    """A later VM of the same stack, on a blank disk, once the first published."""
    root = tmp_path_factory.mktemp("later-vm")
    env = _vm(store, root)
    download = _run(env, "download-weights.sh")
    return {"root": root, "env": env, "download": download, "args": _launch(root, env)}


def test_a_first_boot_with_an_empty_store_downloads_from_the_hub_and_says_why(first):
    assert (first["root"] / "hub-calls").read_text().count("hf download") == 1
    assert _start_source(first["root"], "download") == "hub"
    assert f"weights s3://{first['env']['PIXTRAL_ARTEFACTS'].removeprefix('s3://')}/{WEIGHTS}: not published yet" \
        in first["download"].stdout, first["download"].stdout


def test_a_first_boot_publishes_the_weights_before_vllm_starts_and_streams_them(store, first):
    root = first["root"]
    # Every file and the manifest were in the store before launch-vllm.sh ran.
    assert {f"{WEIGHTS}/{name}" for name in (*MODEL_FILES, "manifest.json")} <= set(first["stored_before_load"]), \
        first["stored_before_load"]
    assert first["args"] == (root / STREAMED_ARGS.lstrip("/")).read_text().splitlines()
    assert _flag(first["args"], "--model") == f"s3://{store['bucket']}/{WEIGHTS}"
    assert _start_source(root, "load") == "stream"
    assert (root / "run/pixtral-weights").read_text().strip() == "stream"
    assert (f"artefact {WEIGHTS}: published ({len(MODEL_FILES)} files); vLLM streams them from "
            f"s3://{store['bucket']}/{WEIGHTS}") in first["download"].stdout, first["download"].stdout


def test_the_first_boots_upload_is_a_phase_of_its_own_between_the_download_and_the_load(first):
    order = [(e["phase"], e["event"]) for e in _timeline(first["root"])]
    assert order[:order.index(("load", "start")) + 1] == [
        ("download", "start"), ("download", "end"), ("publish-weights", "start"), ("publish-weights", "end"),
        ("load", "start")], order


def test_the_first_boot_publishes_every_file_as_an_object_and_the_manifest_last(store, first):
    manifest = json.loads(_object(store, f"{WEIGHTS}/manifest.json").read_text())
    assert {name: entry["bytes"] for name, entry in manifest["files"].items()} == {
        name: len(data) for name, data in MODEL_FILES.items()}
    for name, data in MODEL_FILES.items():
        assert _object(store, f"{WEIGHTS}/{name}").read_bytes() == data, f"{name} is not the snapshot's file"
        assert manifest["files"][name]["sha256"] == hashlib.sha256(data).hexdigest()
    writes = [r["path"] for r in first["requests"] if r["method"] in ("PUT", "POST") and WEIGHTS in r["path"]]
    assert writes[-1].split("?")[0].endswith(f"{WEIGHTS}/manifest.json"), writes
    assert not list(store["data"].glob(f"objects/model/{model_key(MODEL)}/hub.tar")), "a VM publishes no hub.tar"


def test_the_first_boots_publish_after_ready_leaves_the_weights_it_published_alone(first):
    assert "this boot streamed the weights from the store" in first["publish"].stdout, first["publish"].stdout


def test_a_later_boot_downloads_nothing_and_starts_vllm_streaming_from_the_store(store, later):
    root = later["root"]
    assert not (root / "hub-calls").exists(), "the later boot asked Hugging Face"
    assert _start_source(root, "download") == "artefacts"
    assert _start_source(root, "load") == "stream"
    assert later["args"] == (root / STREAMED_ARGS.lstrip("/")).read_text().splitlines()
    assert _flag(later["args"], "--model") == f"s3://{store['bucket']}/{WEIGHTS}"
    assert "nothing to download" in later["download"].stdout


def test_a_later_boot_publishes_no_weights_and_its_compile_cache_under_the_streamed_key(store, later):
    cache = Path(later["env"]["VLLM_CACHE_ROOT"]) / "torch_compile_cache/abc"
    cache.mkdir(parents=True)
    (cache / "graph.py").write_text("compiled")
    done = _run(later["env"], "publish-artefacts.sh")
    assert "this boot streamed the weights from the store" in done.stdout
    assert _compile_manifests(store, "stream"), done.stdout
    assert not _compile_manifests(store, "hub")


def _compile_manifests(store: dict, way: str) -> list[Path]:
    return sorted(store["data"].glob(f"objects/compile/{VLLM_VERSION}/nvidia-l40s-x1/{way}/*/manifest.json"))


def _boot_and_publish_a_compile_cache(store: dict, root: Path, change_args: bool = False) -> dict:
    """A later VM of the stack: the weights' decision, which fetches vLLM's compile cache when the store has one for
    this GPU and these arguments; then, as if vLLM had compiled, the publish. `change_args`: the stack's serving
    arguments changed since (a new --max-model-len), as after a `pulumi up` that rolls the fleet."""
    env = _vm(store, root)
    if change_args:
        args = root / STREAMED_ARGS.lstrip("/")
        lines = args.read_text().splitlines()
        lines[lines.index("--max-model-len") + 1] = "4096"
        args.write_text("\n".join(lines) + "\n")
    _run(env, "download-weights.sh")
    cache = Path(env["VLLM_CACHE_ROOT"]) / "torch_compile_cache"
    fetched = cache.is_dir()
    if not fetched:
        (cache / "aot").mkdir(parents=True)
        (cache / "aot/graph.py").write_text(f"compiled for {root.name}")
    _run(env, "publish-artefacts.sh")
    return {"fetched": fetched, "phases": {e["phase"] for e in _timeline(root)}}


def test_a_compile_cache_serves_later_boots_with_the_same_arguments_only(store, first, tmp_path):
    # vLLM keys its compile cache by every graph-shaping argument: a cache published for other arguments would be
    # fetched for nothing, and its key, taken, would stop the new arguments' cache from ever being published.
    _boot_and_publish_a_compile_cache(store, tmp_path / "a")
    published = _compile_manifests(store, "stream")
    assert len(published) == 1, published
    same = _boot_and_publish_a_compile_cache(store, tmp_path / "b")
    assert same["fetched"] and "compile-cache" in same["phases"], same
    changed = _boot_and_publish_a_compile_cache(store, tmp_path / "c", change_args=True)
    assert not changed["fetched"] and "compile-cache" not in changed["phases"], changed
    assert len(_compile_manifests(store, "stream")) == 2, "the new arguments' cache was not published"


@pytest.mark.parametrize(("damage", "why"), [
    (lambda path: path.write_bytes(path.read_bytes()[:-1]), "consolidated.safetensors has 299999 bytes, "
                                                            "the manifest says 300000"),
    (lambda path: path.unlink(), "consolidated.safetensors is in the manifest but not in the store"),
], ids=["truncated", "missing"])
def test_a_store_that_does_not_match_its_manifest_sends_the_boot_to_the_hub_and_says_why(
        store, first, tmp_path, damage, why):
    path = _object(store, f"{WEIGHTS}/consolidated.safetensors")
    kept = path.read_bytes()
    damage(path)
    try:
        env = _vm(store, tmp_path)
        done = _run(env, "download-weights.sh")
        args = _launch(tmp_path, env)
    finally:
        path.write_bytes(kept)
    assert f"{WEIGHTS}: {why}; downloading {MODEL} from Hugging Face" in done.stdout, done.stdout
    # The damaged weights' manifest is there: this boot does not publish over it.
    assert f"artefact {WEIGHTS}: already in the store; vLLM reads the weights from {env['HF_HOME']}" in done.stdout
    assert (tmp_path / "hub-calls").exists()
    assert _start_source(tmp_path, "download") == "hub"
    assert _flag(args, "--model") == MODEL


def test_the_first_boots_compile_cache_serves_the_first_later_boot(empty_store, tmp_path):
    # The first boot streams the weights, so the cache vLLM compiles on it is keyed as a later boot's is: the first
    # later boot fetches it and warms up from it instead of compiling.
    first_env = _vm(empty_store, tmp_path / "first")
    _installed(first_env)
    _run(first_env, "download-weights.sh")
    _launch(tmp_path / "first", first_env)
    cache = Path(first_env["VLLM_CACHE_ROOT"]) / "torch_compile_cache/aot"
    cache.mkdir(parents=True)
    (cache / "graph.py").write_text("compiled on the first boot")
    _run(first_env, "publish-artefacts.sh")
    assert _compile_manifests(empty_store, "stream") and not _compile_manifests(empty_store, "hub")
    later_env = _vm(empty_store, tmp_path / "later")
    _run(later_env, "download-weights.sh")
    assert _start_source(tmp_path / "later", "compile-cache") == "artefacts"
    assert (Path(later_env["VLLM_CACHE_ROOT"]) / "torch_compile_cache/aot/graph.py").read_text() == \
        "compiled on the first boot"
    assert _launch(tmp_path / "later", later_env) == \
        (tmp_path / "later" / STREAMED_ARGS.lstrip("/")).read_text().splitlines()


def _hub_boot_says(done: subprocess.CompletedProcess, root: Path, env: dict[str, str], why: str) -> None:
    """The boot downloaded from the hub, did not publish the weights, says why in one line, and vLLM reads them from
    the disk with the first boot's arguments."""
    assert f"{why}; vLLM reads the weights from {env['HF_HOME']}" in done.stdout.splitlines(), done.stdout
    assert (root / "hub-calls").read_text().count("hf download") == 1
    assert (root / "run/pixtral-weights").read_text().strip() == "hub"
    args = _launch(root, env)
    assert _flag(args, "--model") == MODEL and _start_source(root, "load") is None


def test_a_first_boot_whose_claim_another_replica_holds_reads_the_weights_from_the_disk(empty_store, tmp_path):
    env = _vm(empty_store, tmp_path / "vm")
    # A replica booting at the same time claimed the weights (the claim's key, pixtral-artefacts.sh publishes_here).
    note = tmp_path / "claim"
    note.write_text("another-replica claimed at 2026-12-07T05:00:00Z\n")
    claimed = subprocess.run([empty_store["aws"], "s3api", "put-object", "--bucket", empty_store["bucket"], "--key",
                              f"claims/{WEIGHTS}", "--body", str(note), "--if-none-match", "*"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert claimed.returncode == 0, claimed.stderr
    done = _run(env, "download-weights.sh")
    _hub_boot_says(done, tmp_path / "vm", env, f"artefact {WEIGHTS}: another boot is publishing it")
    assert not _object(empty_store, f"{WEIGHTS}/manifest.json").exists()


def test_a_first_boot_whose_upload_fails_reads_the_weights_from_the_disk_and_says_why(empty_store, tmp_path):
    env = _vm(empty_store, tmp_path / "vm")
    # The store cannot keep the first object (a folder where it would go): its PUT gets no answer.
    _object(empty_store, f"{WEIGHTS}/consolidated.safetensors").mkdir(parents=True)
    done = _run({**env, "AWS_MAX_ATTEMPTS": "1"}, "download-weights.sh")
    (line,) = [line for line in done.stdout.splitlines() if "vLLM reads the weights from" in line]
    # The CLI's own last error line, and nothing else, says why.
    assert re.fullmatch(rf"artefact {WEIGHTS}: the upload of consolidated\.safetensors failed \([^()]+\); vLLM reads "
                        rf"the weights from {re.escape(env['HF_HOME'])}", line), line
    _hub_boot_says(done, tmp_path / "vm", env, line.removesuffix(f"; vLLM reads the weights from {env['HF_HOME']}"))
    assert not _object(empty_store, f"{WEIGHTS}/manifest.json").exists()


def test_a_first_boot_that_cannot_reach_the_store_reads_the_weights_from_the_disk_and_says_why(store, tmp_path):
    env = {**_vm(store, tmp_path), "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_port()}", "AWS_MAX_ATTEMPTS": "1"}
    done = _run(env, "download-weights.sh")
    (line,) = [line for line in done.stdout.splitlines() if "vLLM reads the weights from" in line]
    assert re.fullmatch(rf"artefact {WEIGHTS}: cannot claim it \([^()]+\); vLLM reads the weights from "
                        rf"{re.escape(env['HF_HOME'])}", line), line
    _hub_boot_says(done, tmp_path, env, line.removesuffix(f"; vLLM reads the weights from {env['HF_HOME']}"))


def _reboot(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The same VM booted again: its disk kept (model, marker, compile cache), /run blank."""
    (root / "run/pixtral-weights").unlink()
    return _run(env, "download-weights.sh")


def test_a_reboot_of_the_first_vm_streams_the_weights_as_every_other_boot_of_the_stack(store, first):
    root, env = first["root"], first["env"]
    cache = Path(env["VLLM_CACHE_ROOT"]) / "torch_compile_cache/stream-hash"
    cache.mkdir(parents=True, exist_ok=True)
    before = len(_timeline(root))
    done = _reboot(root, env)
    assert "nothing to download" in done.stdout, done.stdout
    assert (root / "hub-calls").read_text().count("hf download") == 1, "the reboot asked Hugging Face again"
    events = _timeline(root)[before:]
    assert [(e["phase"], e["event"], e.get("source")) for e in events] == [
        ("download", "start", "artefacts"), ("download", "end", None)], events
    # The compile cache vLLM built from the streamed weights stays in use: the reboot streams them again.
    assert _launch(root, env) == (root / STREAMED_ARGS.lstrip("/")).read_text().splitlines()
    assert cache.is_dir()


def test_a_reboot_that_cannot_reach_the_store_reads_the_weights_from_its_disk(first, tmp_path):
    root = first["root"]
    env = {**first["env"], "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_port()}", "AWS_MAX_ATTEMPTS": "1"}
    done = _reboot(root, env)
    (line,) = [line for line in done.stdout.splitlines() if "is already in" in line]
    assert line.startswith(f"weights s3://{first['env']['PIXTRAL_ARTEFACTS'].removeprefix('s3://')}/{WEIGHTS}: "
                           "not published yet") and line.endswith(f"; {MODEL} is already in {env['HF_HOME']}"), line
    assert (root / "hub-calls").read_text().count("hf download") == 1
    assert _flag(_launch(root, env), "--model") == MODEL


def test_a_second_publisher_leaves_the_published_weights_alone(store, first):
    manifest = _object(store, f"{WEIGHTS}/manifest.json")
    written = manifest.stat().st_mtime_ns
    # A boot of the stack that read the weights from its disk publishes them after it serves, unless they are there.
    (first["root"] / "run/pixtral-weights").write_text("hub\n")
    done = _run(first["env"], "publish-artefacts.sh")
    assert f"artefact {WEIGHTS}: already in the store" in done.stdout
    assert manifest.stat().st_mtime_ns == written


def test_without_a_store_the_boot_downloads_from_the_hub_and_says_why(store, tmp_path):
    env = _vm(store, tmp_path)
    del env["PIXTRAL_ARTEFACTS"]
    done = _run(env, "download-weights.sh")
    assert "weights: no artefact store (pixtral:warmStarts is off); downloading" in done.stdout, done.stdout
    assert (tmp_path / "hub-calls").exists() and _start_source(tmp_path, "download") == "hub"
    assert _flag(_launch(tmp_path, env), "--model") == MODEL


# --- A restart of a streaming server (pixtral-vllm.service's ExecStartPre, recheck-weights.sh) ---

def _start_vllm_unit(env: dict[str, str]) -> subprocess.CompletedProcess:
    """What pixtral-vllm.service runs before each start of the server, in the server's environment."""
    return _run({**env, "HF_HUB_OFFLINE": "1"}, "recheck-weights.sh")


@pytest.fixture
def streaming_vm(empty_store, tmp_path) -> dict:
    """A later VM of a stack whose first boot published the weights: it streams them, its server started once."""
    _run(_vm(empty_store, tmp_path / "first"), "download-weights.sh")
    root = tmp_path / "later"
    env = _vm(empty_store, root)
    _run(env, "download-weights.sh")
    before = len(_requests(empty_store))
    _start_vllm_unit(env)
    assert len(_requests(empty_store)) == before, "the boot's first start asked the store again"
    return {"root": root, "env": env, "store": empty_store}


def test_a_restart_whose_streamed_weights_are_still_in_the_store_streams_them_again(streaming_vm):
    root = streaming_vm["root"]
    done = _start_vllm_unit(streaming_vm["env"])
    assert not (root / "hub-calls").exists(), done.stdout
    assert (root / "run/pixtral-weights").read_text().strip() == "stream"


def test_a_restart_whose_streamed_weights_left_the_store_takes_them_again_and_streams_them(streaming_vm):
    # The store's lifecycle rules expired the weights 30 days after their upload (their publisher's claim after a
    # day), the server running all along.
    root, env, store = streaming_vm["root"], streaming_vm["env"], streaming_vm["store"]
    for path in (*(store["data"] / "objects" / WEIGHTS).iterdir(), _object(store, f"claims/{WEIGHTS}")):
        path.unlink()
    done = _start_vllm_unit(env)
    assert f"{WEIGHTS}: not published yet" in done.stdout and "vLLM restarts without the weights it streamed: " \
        "taking them again" in done.stdout, done.stdout
    assert (root / "hub-calls").read_text().count("hf download") == 1
    assert _object(store, f"{WEIGHTS}/manifest.json").exists(), "the weights were not published again"
    assert (root / "run/pixtral-weights").read_text().strip() == "stream"
    assert _launch(root, env) == (root / STREAMED_ARGS.lstrip("/")).read_text().splitlines()
