"""Every value the program accepts reaches the VM's services unchanged through systemd's environment files.

systemd parses /etc/pixtral/pixtral.env and /etc/pixtral/secrets.env itself (EnvironmentFile=): unquoted, it drops
quotes and backslashes, trims spaces and starts a new variable at each newline. These tests write both files the
way the VM does (the program's `env_file`, the real fetch-secrets.sh against a stand-in `aws` or `gcloud` CLI) and
read them back with systemd's own parser (tests/systemd_env_file.py).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import environment_file, run_stack, vm_files
from systemd_env_file import systemd_environment

from pixtral_deploy.cloudinit import USERDATA_DIR, env_file, env_file_value
from pixtral_deploy.secret_values import value_problem

# Accepted keys (printable ASCII, no spaces, 16+ characters) that a naive `NAME=value` line would change.
HOSTILE_VALUES = [
    "a\"b'c$d\\e%f#g;h`i{j}k",
    "\"quoted-whole-value\"",
    "'single-quoted-value'",
    "$HOME${PATH}$(id)`id`",
    "#starts-like-a-comment",
    ";starts-like-a-comment",
    "ends-with-a-backslash\\",
    "\\\\two-backslashes\\\\x",
    "=starts=with=equals=",
    "%h%n%i-unit-specifiers",
    "!&*()[]<>?|~^+,:@-_./",
    "Mock0Generated0Api0Key0xxxxxxxxxxxxxxxxx",
]


def test_hostile_values_are_ones_the_program_accepts():
    # Otherwise the round trips below would test values a user can never set.
    assert [v for v in HOSTILE_VALUES if value_problem(v)] == []


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_pixtral_env_gives_systemd_back_each_value_unchanged(value, tmp_path):
    path = tmp_path / "pixtral.env"
    path.write_text(env_file({"PIXTRAL_MODEL": value, "PIXTRAL_PORT": "8081"}))
    assert systemd_environment(path) == {"PIXTRAL_MODEL": value, "PIXTRAL_PORT": "8081"}


def test_rendered_pixtral_env_reads_back_as_the_program_wrote_it(tmp_path):
    files = vm_files(run_stack("aws"))
    path = tmp_path / "pixtral.env"
    path.write_text(files["/etc/pixtral/pixtral.env"])
    assert systemd_environment(path) == environment_file(files)


def test_env_file_refuses_a_control_character():
    with pytest.raises(ValueError, match="control character"):
        env_file_value("model\nLD_PRELOAD=/tmp/x.so")


def _fetch_secrets(tmp_path: Path, api_key: str, hf_token: str, stored: tuple[str, ...] = ("api-key", "hf-token"),
                   secret_store: str = "aws-ssm") -> subprocess.CompletedProcess:
    """fetch-secrets.sh as pixtral-secrets.service runs it, with an `aws` CLI first on PATH that answers
    `ssm get-parameter` from files (those named in `stored`), printing the value with a newline as the real CLI's
    text output does; for `gcp-secret-manager`, a `gcloud` that answers `secrets versions access` alike."""
    store = tmp_path / "store"
    store.mkdir(exist_ok=True)
    for name, value in (("api-key", api_key), ("hf-token", hf_token)):
        if name in stored:
            (store / name).write_text(value + "\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(
        '#!/usr/bin/env bash\nwhile [ "$1" != --name ]; do shift; done\n'
        f'cat "{store}/${{2%%:*}}"\n')
    (bin_dir / "gcloud").write_text(
        f'#!/usr/bin/env bash\nwhile [ "$1" != --secret ]; do shift; done\ncat "{store}/$2"\n')
    for cli in ("aws", "gcloud"):
        (bin_dir / cli).chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "PIXTRAL_LIB": str(USERDATA_DIR),
           "PIXTRAL_STATE_DIR": str(tmp_path), "PIXTRAL_RETRY_SECONDS": "0",
           "PIXTRAL_SECRETS_FILE": str(tmp_path / "secrets.env"), "PIXTRAL_SECRET_STORE": secret_store,
           "PIXTRAL_AWS_REGION": "us-east-1", "PIXTRAL_GCP_PROJECT": "pixtral-project",
           "PIXTRAL_API_KEY_SECRET": "api-key", "PIXTRAL_API_KEY_VERSION": "3",
           "PIXTRAL_HF_TOKEN_SECRET": "hf-token", "PIXTRAL_HF_TOKEN_VERSION": "3"}
    return subprocess.run(["bash", str(USERDATA_DIR / "fetch-secrets.sh")], env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_secrets_file_gives_systemd_back_each_accepted_key_unchanged(value, tmp_path):
    done = _fetch_secrets(tmp_path, api_key=value, hf_token="hf_" + value[::-1])
    assert done.returncode == 0, done.stderr
    assert systemd_environment(tmp_path / "secrets.env") == {"VLLM_API_KEY": value, "HF_TOKEN": "hf_" + value[::-1]}


@pytest.mark.parametrize("secret_store", ["aws-ssm", "gcp-secret-manager"])
def test_a_store_that_refuses_fails_with_a_line_naming_the_secret(secret_store, tmp_path):
    # The stand-in CLI's own error names a file path; the script's last line names the secret and its version, as
    # the journal of pixtral-secrets.service shows under real systemd (tests/rehearsal).
    done = _fetch_secrets(tmp_path, api_key="sk-" + "x" * 20, hf_token="hf_" + "x" * 20, stored=("hf-token",),
                          secret_store=secret_store)
    assert done.returncode != 0
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"cannot read secret api-key (version 3) from {secret_store}"), done.stderr
    assert not (tmp_path / "secrets.env").exists()


def test_secrets_file_refuses_a_stored_value_with_a_newline(tmp_path):
    # The program refuses such a key; this is the VM's own line of defence for a value changed in the store.
    done = _fetch_secrets(tmp_path, api_key="sk-first-line-xxxxxxxx\nLD_PRELOAD=/tmp/evil.so", hf_token="hf_x" * 5)
    assert done.returncode != 0
    assert "control character" in done.stderr and "LD_PRELOAD" not in done.stderr
    assert not (tmp_path / "secrets.env").exists()
