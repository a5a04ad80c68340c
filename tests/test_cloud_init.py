"""The VM's user data, checked by the real tools: cloud-init's own schema, shellcheck, systemd-analyze."""

from __future__ import annotations

import base64
import gzip
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import VM_STACKS, required_tool, run_stack, shellcheck_findings, target_of, vm_user_data

from pixtral_deploy.cloudinit import (
    LIBRARIES,
    SCRIPTS,
    UNITS,
    USER_DATA_LIMIT_BYTES,
    USERDATA_DIR,
    compress_user_data,
    declared_user_data,
    shipped,
)
from pixtral_deploy.fleetboot import LIFECYCLE_SCRIPTS, LIFECYCLE_UNITS, METRIC_SCRIPTS, METRIC_UNITS
from pixtral_deploy.server import vllm_args
from pixtral_deploy.spec import load_spec

# cloud-init's validator passes unknown top-level keys, so the set the program means to use is pinned here.
TOP_LEVEL_KEYS = {"users", "write_files", "runcmd"}
# Every script and unit any replica may boot with: a single VM's, and what fleet replicas add.
ALL_SCRIPTS = SCRIPTS + METRIC_SCRIPTS + LIFECYCLE_SCRIPTS
ALL_UNITS = UNITS + METRIC_UNITS + LIFECYCLE_UNITS


def user_data_of(stack: str, settings: dict | None = None) -> str:
    return vm_user_data(run_stack(stack, settings))


def written_file(user_data: str, path: str) -> dict:
    (entry,) = [f for f in yaml.safe_load(user_data)["write_files"] if f["path"] == path]
    return entry


@pytest.mark.parametrize("stack", VM_STACKS)
def test_user_data_passes_cloud_inits_own_schema(stack, tmp_path):
    cloud_init = required_tool("cloud-init", "apt-get install cloud-init")
    path = tmp_path / "user-data"
    path.write_text(user_data_of(stack))
    done = subprocess.run([cloud_init, "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Valid cloud-config" in done.stdout


def test_schema_check_catches_a_misspelt_module_key(tmp_path):
    # Proves the validator above is live: the same document with `contents` for `content` must be refused.
    broken = user_data_of(VM_STACKS[0]).replace("  content: |", "  contents: |", 1)
    path = tmp_path / "user-data"
    path.write_text(broken)
    cloud_init = required_tool("cloud-init", "apt-get install cloud-init")
    done = subprocess.run([cloud_init, "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert done.returncode != 0


@pytest.mark.parametrize("stack", VM_STACKS)
def test_user_data_is_cloud_config_with_only_the_intended_top_level_keys(stack):
    user_data = user_data_of(stack)
    assert user_data.startswith("#cloud-config\n")
    assert set(yaml.safe_load(user_data)) == TOP_LEVEL_KEYS


@pytest.mark.parametrize("stack", VM_STACKS)
def test_user_data_fits_aws_limit_even_with_long_settings(stack):
    long = {"pixtral:extraArgs": '["--max-num-seqs", "64", "--enable-prefix-caching", "--disable-log-stats"]',
            "pixtral:servedModelName": "a-rather-long-served-model-name/for-the-size-check-only"}
    document = user_data_of(stack, long)
    # EC2 gets it gzip-compressed (what the limit binds); GCP's metadata takes it plain, up to 256 KB.
    packed = base64.b64decode(compress_user_data(document))
    # A quarter of the limit stays free for what the boot learns next (today about 9 KB of 16 KB, comments dropped).
    assert len(packed) < USER_DATA_LIMIT_BYTES * 3 / 4, f"compressed user data is {len(packed)} bytes"
    assert len(document.encode()) < 256 * 1024


@pytest.mark.parametrize("stack", [s for s in VM_STACKS if target_of(s) == "aws"])
def test_aws_user_data_is_gzip_and_stable_across_runs(stack):
    # One VM carries it as userDataBase64; a fleet's launch template as userData (base64 as well).
    (carrier,) = [r for r in run_stack(stack)["resources"] if declared_user_data(r)]
    field = "userDataBase64" if carrier["type"] == "aws:ec2/instance:Instance" else "userData"
    packed = base64.b64decode(carrier["inputs"][field])
    assert packed[:2] == b"\x1f\x8b", "cloud-init recognises gzip user data by its magic bytes"
    # Same program, same bytes: a timestamp in the gzip header would replace the VM on every `pulumi up`.
    assert compress_user_data(gzip.decompress(packed).decode()) == carrier["inputs"][field]
    if field == "userDataBase64":
        assert "userData" not in carrier["inputs"]


@pytest.mark.parametrize("stack", VM_STACKS)
def test_vm_starts_vllm_with_the_one_server_description(stack):
    run = run_stack(stack)
    raw = {k.split(":", 1)[1]: v for k, v in run["config"].items() if k.startswith("pixtral:")}
    deployment = load_spec(raw)
    # A fleet's replicas serve plain HTTP behind the load balancer that terminates HTTPS.
    expected = vllm_args(deployment.server)
    args_file = written_file(user_data_of(stack), "/etc/pixtral/vllm.args")["content"]
    assert args_file.splitlines() == expected
    assert not any("api-key" in arg for arg in expected), "the key must not be on vLLM's command line"


@pytest.mark.parametrize("stack", VM_STACKS)
def test_api_key_reaches_vllm_only_through_a_root_only_file(stack):
    user_data = user_data_of(stack)
    unit = written_file(user_data, "/etc/systemd/system/pixtral-vllm.service")["content"]
    assert "EnvironmentFile=/etc/pixtral/secrets.env" in unit
    assert "User=vllm" in unit, "vLLM must run as an unprivileged user"
    fetch = written_file(user_data, "/usr/local/lib/pixtral/fetch-secrets.sh")["content"]
    assert "umask 077" in fetch and "env_line VLLM_API_KEY " in fetch


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def test_user_data_files_are_the_repository_files_line_for_line_without_comment_lines(tmp_path):
    user_data = user_data_of(VM_STACKS[0])
    files = [(f"/usr/local/lib/pixtral/{name}", name) for name in SCRIPTS]
    files += [(f"/etc/systemd/system/{name}", name) for name in UNITS]
    for path, name in files:
        shipped = written_file(user_data, path)["content"].splitlines()
        source = (USERDATA_DIR / name).read_text().splitlines()
        # Every line of code, in order, and no comment but the interpreter line.
        assert [line for line in shipped if not _is_comment(line)] == [line for line in source if not _is_comment(line)]
        assert [line for line in shipped if _is_comment(line)] == [line for line in source[:1] if line.startswith("#!")]
        if name.endswith(".sh"):
            (tmp_path / name).write_text("\n".join(shipped) + "\n")
            parsed = subprocess.run(["bash", "-n", str(tmp_path / name)], capture_output=True, text=True)
            assert parsed.returncode == 0, f"{name} as shipped: {parsed.stderr}"


def test_boot_scripts_pass_shellcheck():
    assert shellcheck_findings([str(USERDATA_DIR / name) for name in ALL_SCRIPTS]) is None


def test_units_pass_systemd_analyze_verify(tmp_path):
    systemd_analyze = required_tool("systemd-analyze", "apt-get install systemd")
    # A scratch root holding the units, what they name and systemd's own targets, so the check is about our
    # files and not this host.
    shutil.copytree("/usr/lib/systemd/system", tmp_path / "usr/lib/systemd/system", symlinks=True)
    units = tmp_path / "etc/systemd/system"
    units.mkdir(parents=True)
    lib = tmp_path / "usr/local/lib/pixtral"
    lib.mkdir(parents=True)
    # The files as the VM gets them.
    for name in ALL_SCRIPTS:
        (lib / name).write_text(shipped(name))
        (lib / name).chmod(0o755)
    for name in ALL_UNITS:
        (units / name).write_text(shipped(name))
    done = subprocess.run([systemd_analyze, "verify", f"--root={tmp_path}",
                           *[f"/etc/systemd/system/{name}" for name in ALL_UNITS]],
                          capture_output=True, text=True)
    problems = [line for line in done.stderr.splitlines() if "pixtral" in line]
    assert done.returncode == 0 and not problems, done.stderr


def test_units_restart_vllm_and_survive_reboots():
    unit = (USERDATA_DIR / "pixtral-vllm.service").read_text()
    assert "Restart=always" in unit and "WantedBy=multi-user.target" in unit
    for dependency in ("pixtral-install.service", "pixtral-download.service", "pixtral-secrets.service"):
        assert f"Requires={dependency}" in unit.replace(" ", "\nRequires=") or dependency in unit


def test_vllm_venv_is_under_opt_so_a_reboot_finds_it(tmp_path):
    # The install step is skipped when its marker exists: a reboot must not reinstall.
    venv = tmp_path / "opt/pixtral/vllm-0.32.0"
    (venv / "bin").mkdir(parents=True)
    (venv / ".pixtral-installed").touch()
    env = {"PATH": "/usr/bin:/bin", "PIXTRAL_LIB": str(USERDATA_DIR), "PIXTRAL_STATE_DIR": str(tmp_path / "state"),
           "PIXTRAL_VLLM_PYTHON": str(venv / "bin/python"), "PIXTRAL_VLLM_VERSION": "0.32.0",
           "PIXTRAL_BIN": str(tmp_path / "no-uv-here")}
    done = subprocess.run(["bash", str(USERDATA_DIR / "install-vllm.sh")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "already installed" in done.stdout
    assert not (tmp_path / "state/timeline.jsonl").exists(), "a skipped install must not record an install phase"


def test_scripts_are_executable_in_the_repository():
    for name in ALL_SCRIPTS:
        if name not in LIBRARIES:
            assert Path(USERDATA_DIR / name).stat().st_mode & 0o111, f"{name} is not executable"
