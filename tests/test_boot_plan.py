"""The VM's boot plan, run for real in a temporary root: the install and the download overlap, a reboot skips both.

The scripts, the environment file and the library come out of the rendered cloud-init of a shipped stack. The real
uv installs a tiny `vllm` wheel the test builds from a local wheel folder, and the real `hf` CLI downloads from a
Hugging Face stand-in on loopback; the substitutions that point them there are in `_boot_environment`.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
from conftest import (
    PROJECT_DIR,
    STACKS,
    environment_file,
    required_tool,
    resources_of,
    run_stack,
    target_of,
    vm_files,
)
from fake_hf_hub import COMMIT, FakeHub

from pixtral_deploy.catalog import DEFAULT_MODEL, has_local_nvme
from pixtral_deploy.cloudinit import HF_HUB_VERSION, USERDATA_DIR
from pixtral_deploy.server import MAX_DRAIN_SECONDS, VLLM_VERSION
from pixtralctl import timeline

MODEL_FILES = {"params.json": b'{"dim": 5120}', "tekken.json": b"{}", "consolidated.safetensors": b"\0" * 200_000}


def _build_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal valid wheel: one module and the dist-info files pip and uv require."""
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    dist_info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": f'__version__ = "{version}"\n',
             f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist_info}/RECORD", "".join(f"{path},,\n" for path in [*files, f"{dist_info}/RECORD"]))
    return wheel


@pytest.fixture(scope="module")
def wheel_folder(tmp_path_factory) -> Path:
    """Local package source: the tiny vllm wheel and the `hf` CLI's wheels (fetched once from the registry)."""
    folder = tmp_path_factory.mktemp("wheels")
    _build_wheel(folder, "vllm", VLLM_VERSION)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(folder),
                           f"huggingface_hub[hf_xet]=={HF_HUB_VERSION}"], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        message = f"could not fetch huggingface_hub wheels: {done.stderr[-300:]}"
        if os.environ.get("PIXTRAL_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return folder


def _boot_environment(root: Path, files: dict[str, str], wheels: Path, hub: FakeHub) -> dict[str, str]:
    env = environment_file(files)
    bin_dir = root / "opt/pixtral/bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (root / "run").mkdir(exist_ok=True)
    for tool in ("uv", "uvx"):
        target = bin_dir / tool
        if not target.exists():
            target.symlink_to(required_tool(tool, "pip install uv", (str(Path(sys.executable).parent / tool),)))
    env.update({
        # Paths of the temporary root instead of the VM's.
        "PIXTRAL_LIB": str(root / "usr/local/lib/pixtral"),
        "PIXTRAL_BIN": str(bin_dir),
        "PIXTRAL_STATE_DIR": str(root / "var/lib/pixtral"),
        "PIXTRAL_RUN_DIR": str(root / "run"),
        "PIXTRAL_CACHE_DIR": str(root / "var/lib/pixtral/cache"),
        "HF_HOME": str(root / "var/lib/pixtral/cache/hf"),
        "VLLM_CACHE_ROOT": str(root / "var/lib/pixtral/cache/vllm"),
        "PIXTRAL_VLLM_PYTHON": str(root / f"opt/pixtral/vllm-{VLLM_VERSION}/bin/python"),
        "PIXTRAL_USER": getpass.getuser(),
        "UV_CACHE_DIR": str(root / "var/cache/uv"),
        # Local sources instead of PyPI, python.org builds and the Hugging Face Hub.
        "PIXTRAL_PYTHON_VERSION": f"{sys.version_info.major}.{sys.version_info.minor}",
        # uv has no environment variable for --no-index: a config file of the test's says it.
        "UV_CONFIG_FILE": str(_uv_config(root, wheels)),
        "UV_PYTHON_DOWNLOADS": "never",
        "HF_ENDPOINT": hub.endpoint,
        "PIXTRAL_RETRY_SECONDS": "0",
    })
    # No artefact store: these runs show the origin path (the store's is rehearsed under systemd, tests/rehearsal).
    env.pop("PIXTRAL_ARTEFACTS", None)
    return {**env, "PATH": os.environ["PATH"], "HOME": str(root)}


def _uv_config(root: Path, wheels: Path) -> Path:
    path = root / "uv.toml"
    path.write_text(f'no-index = true\nfind-links = ["{wheels}"]\n')
    return path


def _timeline(root: Path) -> list[dict]:
    path = root / "var/lib/pixtral/timeline.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _span(events: list[dict], phase: str) -> tuple[float, float]:
    times = {e["event"]: e["time"] for e in events if e["phase"] == phase}
    return times["start"], times["end"]


def _boot(root: Path, env: dict[str, str]) -> dict[str, subprocess.CompletedProcess]:
    """What systemd does at boot: storage first, then install and download together."""
    lib = Path(env["PIXTRAL_LIB"])
    storage = subprocess.run(["bash", str(lib / "prepare-storage.sh")], env=env, capture_output=True, text=True,
                             timeout=60)
    assert storage.returncode == 0, storage.stderr
    running = {name: subprocess.Popen(["bash", str(lib / f"{name}.sh")], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
               for name in ("install-vllm", "download-weights")}
    results = {}
    for name, process in running.items():
        out, err = process.communicate(timeout=300)
        results[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
        assert process.returncode == 0, f"{name} failed:\n{out}\n{err}"
    return results


@pytest.fixture(scope="module")
def booted(tmp_path_factory, wheel_folder):
    root = tmp_path_factory.mktemp("vm-root")
    files = vm_files(run_stack("aws"))
    for path, content in files.items():
        if path.startswith("/usr/local/lib/pixtral/") and path.endswith(".sh"):
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
    # The download takes a while (0.4 s per file, fetched in parallel), as a 25 GB one does.
    hub = FakeHub(DEFAULT_MODEL, MODEL_FILES, delay=0.4)
    env = _boot_environment(root, files, wheel_folder, hub)
    first = _boot(root, env)
    events_after_first_boot = _timeline(root)
    # Read before anything imports vllm here (an import by the owner would write the bytecode itself).
    compiled = sorted(p.name for p in root.glob(f"opt/pixtral/vllm-{VLLM_VERSION}/lib/python*/site-packages/vllm/"
                                                "__pycache__/*.pyc"))
    second = _boot(root, env)
    hub.close()
    return {"root": root, "first": first, "second": second, "first_events": events_after_first_boot,
            "all_events": _timeline(root), "hub": hub, "compiled_at_install": compiled}


def test_first_boot_installs_the_pinned_vllm_into_its_venv(booted):
    python = booted["root"] / f"opt/pixtral/vllm-{VLLM_VERSION}/bin/python"
    done = subprocess.run([str(python), "-c", "import vllm; print(vllm.__version__)"], capture_output=True, text=True)
    assert done.stdout.strip() == VLLM_VERSION


def test_the_install_compiles_the_venv_to_bytecode_the_server_user_could_not_write(booted):
    # vLLM runs as its own user and cannot write __pycache__ into root's venv: without bytecode from the install, every
    # start compiles every module it imports again (a CPU start of vLLM measured 78 s instead of 60 s).
    assert booted["compiled_at_install"] == [f"__init__.cpython-{sys.version_info.major}{sys.version_info.minor}.pyc"]


def test_first_boot_downloads_the_model_into_the_cache_vllm_reads(booted):
    snapshot = booted["root"] / f"var/lib/pixtral/cache/hf/hub/models--mistralai--Pixtral-12B-2409/snapshots/{COMMIT}"
    assert {p.name: p.read_bytes() for p in snapshot.iterdir()} == MODEL_FILES


def test_install_and_download_overlap(booted):
    events = booted["first_events"]
    install, download = _span(events, "install"), _span(events, "download")
    assert install[0] < download[1] and download[0] < install[1], f"no overlap: install {install}, download {download}"


def test_boot_phase_is_recorded_from_the_kernel_start(booted):
    boot_start, boot_end = _span(booted["first_events"], "boot")
    assert boot_start < boot_end
    install_start, _ = _span(booted["first_events"], "install")
    assert boot_end <= install_start


def test_second_boot_skips_install_and_download(booted):
    second = booted["second"]
    assert "already installed" in second["install-vllm"].stdout
    assert "already in" in second["download-weights"].stdout
    new_events = booted["all_events"][len(booted["first_events"]):]
    assert {e["phase"] for e in new_events} == {"boot"}, new_events


def test_download_used_the_cache_directory_of_the_environment_file(booted):
    # vLLM reads the weights from HF_HOME of the environment file: the download must have put them exactly there.
    env_file = vm_files(run_stack("aws"))["/etc/pixtral/pixtral.env"]
    hf_home = next(line.split("=", 1)[1] for line in env_file.splitlines() if line.startswith("HF_HOME="))
    snapshot = booted["root"] / hf_home.lstrip("/") / f"hub/models--mistralai--Pixtral-12B-2409/snapshots/{COMMIT}"
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(MODEL_FILES)


LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"


def _candidate_types(config: dict[str, str]) -> list[str]:
    """A stack's machine type, or a fleet's candidates (the boot plan uses local NVMe when any has it)."""
    if "pixtral:instanceTypes" in config:
        return json.loads(config["pixtral:instanceTypes"])
    return [config.get("pixtral:instanceType") or config.get("pixtral:machineType")]


def test_storage_settings_of_every_shipped_vm_stack():
    for stack in STACKS:
        run = run_stack(stack)
        if target_of(stack) == "aws":
            instances = resources_of(run, "aws:ec2/instance:Instance")
            disk = (instances[0]["inputs"]["rootBlockDevice"] if instances else
                    resources_of(run, LAUNCH_TEMPLATE)[0]["inputs"]["blockDeviceMappings"][0]["ebs"])
            assert (disk["volumeType"], disk["throughput"], disk["iops"]) == ("gp3", 1000, 6000)
        elif target_of(stack) == "gcp":
            instances = resources_of(run, "gcp:compute/instance:Instance")
            templates = resources_of(run, "gcp:compute/instanceTemplate:InstanceTemplate")  # a fleet's
            assert len(instances) + len(templates) >= 1
            disk_types = [i["inputs"]["bootDisk"]["initializeParams"]["type"] for i in instances]
            disk_types += [disk["diskType"] for t in templates for disk in t["inputs"]["disks"] if disk.get("boot")]
            assert set(disk_types) == {"pd-ssd"}, disk_types
        else:
            continue
        files = vm_files(run)
        machines = _candidate_types(run["config"])
        expected = "1" if any(has_local_nvme(machine) for machine in machines) else "0"
        assert f"PIXTRAL_LOCAL_NVME={expected}\n" in files["/etc/pixtral/pixtral.env"]


def test_the_service_user_can_record_its_phases_after_root_started_the_timeline():
    # prepare-storage.sh runs as root and creates the timeline; the launcher appends to it as the vllm user.
    if os.geteuid() != 0:
        pytest.skip("needs root to run a script as another user (CI runs as root)")
    # Not under pytest's tmp_path: its parents are private to root, and the other user must reach the files.
    with tempfile.TemporaryDirectory(prefix="pixtral-boot-") as scratch:
        _record_as_service_user(Path(scratch))


def _record_as_service_user(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    lib = tmp_path / "lib"
    lib.mkdir()
    files = vm_files(run_stack("aws"))
    for name in ("pixtral-lib.sh", "prepare-storage.sh"):
        (lib / name).write_text(files[f"/usr/local/lib/pixtral/{name}"])
    state = tmp_path / "state"
    env = {"PATH": os.environ["PATH"], "PIXTRAL_LIB": str(lib), "PIXTRAL_STATE_DIR": str(state),
           "PIXTRAL_CACHE_DIR": str(tmp_path / "cache"), "HF_HOME": str(tmp_path / "cache/hf"),
           "VLLM_CACHE_ROOT": str(tmp_path / "cache/vllm"), "PIXTRAL_USER": "nobody", "PIXTRAL_LOCAL_NVME": "0"}
    done = subprocess.run(["bash", str(lib / "prepare-storage.sh")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    as_service_user = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "bash", "-c",
         f'. {lib}/pixtral-lib.sh && phase load start'], env=env, capture_output=True, text=True)
    assert as_service_user.returncode == 0, as_service_user.stderr
    assert [e["phase"] for e in _timeline_at(state)] == ["boot", "boot", "load"]


def test_tests_use_the_uv_release_the_vms_install():
    from pixtral_deploy.cloudinit import UV_VERSION

    pyproject = (PROJECT_DIR / "pyproject.toml").read_text()
    assert f'"uv=={UV_VERSION}"' in pyproject


def test_the_scripts_and_pixtralctl_read_one_timeline_path():
    # pixtral-lib.sh derives the path the VM writes; pixtralctl timeline reads cloudinit.TIMELINE_FILE over SSM/IAP.
    done = subprocess.run(["bash", "-c", f'. {USERDATA_DIR}/pixtral-lib.sh && printf %s "$PIXTRAL_TIMELINE"'],
                          env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, check=True)
    assert done.stdout == timeline.TIMELINE_PATH


@pytest.mark.parametrize("nvidia_smi", [
    "echo 'NVIDIA-SMI has failed because it couldn''t communicate with the NVIDIA driver.'; exit 9",
    "exit 0",
], ids=["driver-not-loaded", "no-gpu-listed"])
def test_the_launcher_says_when_there_is_no_gpu_and_never_starts_vllm(tmp_path, nvidia_smi):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\n{nvidia_smi}\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    started = tmp_path / "vllm-started"
    (tmp_path / "python").write_text(f"#!/bin/sh\ntouch {started}\n")
    (tmp_path / "python").chmod(0o755)
    (tmp_path / "vllm.args").write_text("--model\nx\n")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PIXTRAL_LIB": str(USERDATA_DIR), "PIXTRAL_STATE_DIR": str(tmp_path),
           "VLLM_API_KEY": "sk-test", "PIXTRAL_ARGS_FILE": str(tmp_path / "vllm.args"),
           "PIXTRAL_VLLM_PYTHON": str(tmp_path / "python"), "PIXTRAL_VLLM_MODULE": "vllm"}
    done = subprocess.run(["bash", str(USERDATA_DIR / "launch-vllm.sh")], env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 1
    assert done.stderr.startswith("no NVIDIA GPU found"), done.stderr
    assert not started.exists()


def test_systemd_waits_for_vllm_to_drain_before_killing_it():
    # vLLM finishes the requests in flight for up to the fleet plan's drain (--shutdown-timeout, at most
    # MAX_DRAIN_SECONDS) after SIGTERM; systemd SIGKILLs after TimeoutStopSec.
    unit = (USERDATA_DIR / "pixtral-vllm.service").read_text()
    (timeout,) = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("TimeoutStopSec=")]
    assert int(timeout) > MAX_DRAIN_SECONDS, f"TimeoutStopSec={timeout} kills vLLM before a {MAX_DRAIN_SECONDS} s drain"


@pytest.mark.parametrize("loaded", [
    # vLLM 0.32.0's default loader (model_loader/default_loader.py), each tensor-parallel worker saying it.
    ["(Worker_TP0 pid=7) INFO [default_loader.py:502] Loading weights took 11.52 seconds",
     "(Worker_TP1 pid=8) INFO [default_loader.py:502] Loading weights took 11.60 seconds"],
    # Run:ai's streamer (a later boot's `--load-format runai_streamer`): no such line, its progress bar instead, as the
    # pinned CPU build printed it streaming the tiny Pixtral from the rehearsal's store.
    ["Loading safetensors using Runai Model Streamer:   0% Completed | 0/36 [00:00<?, ?it/s]",
     "Loading safetensors using Runai Model Streamer: 100% Completed | 36/36 [00:00<00:00, 714.89it/s]",
     "Loading safetensors using Runai Model Streamer: 100% Completed | 36/36 [00:00<00:00, 702.10it/s]"],
], ids=["default-loader", "runai-streamer"])
def test_the_load_ends_once_whichever_loader_read_the_weights(tmp_path, loaded):
    log = "\n".join([*loaded, "(EngineCore pid=9) INFO [core.py:402] init engine (profile, create kv cache, warmup "
                      "model) took 1.55 s"]) + "\n"
    env = {"PATH": "/usr/bin:/bin", "PIXTRAL_LIB": str(USERDATA_DIR), "PIXTRAL_STATE_DIR": str(tmp_path)}
    done = subprocess.run(["bash", "-c", f'. "{USERDATA_DIR}/pixtral-lib.sh" && watch_phases'], input=log, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    passed = [line for line in done.stdout.splitlines() if not line.startswith("pixtral phase=")]
    assert passed == log.splitlines(), "the log must pass through unchanged"
    events = [(e["phase"], e["event"]) for e in _timeline_at(tmp_path)]
    assert events == [("load", "end"), ("graphs", "start"), ("graphs", "end")], events


def test_the_server_dying_ends_the_launcher_while_its_engine_processes_live_on(tmp_path):
    # Under systemd (tests/rehearsal), vLLM's API server killed with SIGKILL left its engine processes holding the
    # log pipe: a launcher that piped vLLM into watch_phases waited on them, so the unit stayed "active" serving
    # nothing and Restart= never ran. The server must be the launcher's own process.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: NVIDIA L40S'\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    (tmp_path / "python").write_text("#!/bin/bash\nsleep 60 &\necho 'Loading weights took 1.0 GiB'\nkill -KILL $$\n")
    (tmp_path / "python").chmod(0o755)
    (tmp_path / "vllm.args").write_text("--model\nx\n")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PIXTRAL_LIB": str(USERDATA_DIR), "PIXTRAL_STATE_DIR": str(tmp_path),
           "VLLM_API_KEY": "sk-test", "PIXTRAL_ARGS_FILE": str(tmp_path / "vllm.args"),
           "PIXTRAL_VLLM_PYTHON": str(tmp_path / "python"), "PIXTRAL_VLLM_MODULE": "vllm"}
    launcher = subprocess.Popen(["bash", str(USERDATA_DIR / "launch-vllm.sh")], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert launcher.wait(timeout=20) == -9, "the launcher did not end with the server's SIGKILL"
        # The log still went through watch_phases (still reading what the server wrote before it died), which
        # recorded the load's end. The group is killed only after: that would end watch_phases too.
        deadline = time.monotonic() + 10
        while ("load", "end") not in {(e["phase"], e["event"]) for e in _timeline_at(tmp_path)}:
            assert time.monotonic() < deadline, _timeline_at(tmp_path)
            time.sleep(0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launcher.pid, 9)


def _timeline_at(state_dir: Path) -> list[dict]:
    path = state_dir / "timeline.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the check as another user, which needs root")
def test_the_readiness_check_waits_while_the_main_process_is_not_yet_the_service_user(tmp_path):
    # systemd runs ExecStartPost while $MAINPID may still be its executor, root's, before it becomes the service
    # user: the check, run as that user, must keep waiting, not report vLLM gone (under load it failed the unit).
    env = {"PATH": "/usr/bin:/bin", "PIXTRAL_LIB": str(USERDATA_DIR), "PIXTRAL_STATE_DIR": str(tmp_path),
           "VLLM_API_KEY": "sk-test", "PIXTRAL_PORT": "9", "MAINPID": "1"}
    check = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "bash",
                              str(USERDATA_DIR / "await-ready.sh")], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        with contextlib.suppress(subprocess.TimeoutExpired):
            check.wait(timeout=3)
        assert check.returncode is None, f"the check gave up: {check.communicate()[1]}"
    finally:
        check.kill()
        check.communicate()


def test_the_readiness_check_gives_up_when_vllm_has_exited(tmp_path):
    # Under systemd (tests/rehearsal), vLLM dying while await-ready.sh (ExecStartPost) waited left the unit
    # "activating" until TimeoutStartSec (an hour): Restart= never ran. systemd gives the check $MAINPID.
    dead = subprocess.Popen(["true"])
    dead.wait()
    env = {"PATH": "/usr/bin:/bin", "PIXTRAL_LIB": str(USERDATA_DIR), "PIXTRAL_STATE_DIR": str(tmp_path),
           "VLLM_API_KEY": "sk-test", "PIXTRAL_PORT": "9", "MAINPID": str(dead.pid)}
    done = subprocess.run(["bash", str(USERDATA_DIR / "await-ready.sh")], env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 1
    assert done.stderr.strip().endswith("vLLM exited before it answered"), done.stderr
