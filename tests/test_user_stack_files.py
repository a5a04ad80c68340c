"""A user's own stack files: render and the program read them as the Pulumi CLI does, refuse what it refuses
(duplicate keys, settings outside `config:`), say what they cannot read (encrypted values), and one broken file in
stacks/ is reported by name instead of stopping the whole test suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import PROJECT_DIR, resources_of, run_stack


def _user_stack(folder: Path, name: str, body: str) -> Path:
    path = folder / f"Pulumi.{name}.yaml"
    path.write_text(body)
    return path


def test_an_encrypted_api_key_renders_as_the_users_key_not_a_generated_one(tmp_path):
    # What `pulumi config set --secret pixtral:apiKey ...` writes; render has no passphrase to decrypt it.
    path = _user_stack(tmp_path, "mine", "config:\n  pixtral:target: aws\n  pixtral:apiKey:\n    secure: "
                                         "v1:AAAABBBBCCCC:ZGVhZGJlZWY=\n")
    run = run_stack(str(path))
    assert run["error"] is None, run["error"]
    assert not resources_of(run, "random:index/randomPassword:RandomPassword"), \
        "pulumi up would use the stack's key; render must not show a generated one"
    (note,) = [line for line in run["log"] if "pixtral:apiKey is encrypted" in line]
    assert str(path) in note and "cannot decrypt" in note and "as if set" in note
    assert "apiKey" in run["secret_outputs"]


def test_a_duplicate_key_is_refused_naming_the_key_the_file_and_both_lines(tmp_path):
    path = _user_stack(tmp_path, "dup", "config:\n  pixtral:target: aws\n  pixtral:port: 9000\n"
                                        "  pixtral:port: 9001\n")
    run = run_stack(str(path))
    assert run["error"] == (f"{path}, line 4: pixtral:port is set twice (first on line 3); the Pulumi CLI refuses "
                            "such a file: keep one")
    assert not run["resources"]


def test_settings_outside_config_are_named_not_reported_as_an_unset_target(tmp_path):
    path = _user_stack(tmp_path, "flat", "pixtral:target: aws\npixtral:port: 9000\n")
    run = run_stack(str(path))
    assert run["error"].startswith(f"{path}: pixtral:target, pixtral:port are outside the `config:` block")
    assert "indent them under `config:`" in run["error"]


def test_an_empty_stack_file_says_what_to_put_in_it(tmp_path):
    path = _user_stack(tmp_path, "empty", "")
    run = run_stack(str(path))
    assert "pixtral:target is not set" in run["error"]
    assert any("sets nothing under `config:`" in line and "stacks/Pulumi.aws.yaml" in line for line in run["log"])


def test_a_broken_stack_file_in_stacks_is_reported_by_name_not_a_collection_error(tmp_path):
    copy = tmp_path / "project"
    tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=PROJECT_DIR, check=True)
    for name in tracked.stdout.splitlines():
        if (PROJECT_DIR / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_DIR / name, copy / name)
    _user_stack(copy / "stacks", "broken", "config:\n  pixtral:target: aws\n  pixtral:target: gcp\n")
    env = {**os.environ, "PYTHONPATH": str(copy)}
    done = subprocess.run([sys.executable, "-m", "pytest", "tests/test_stacks.py", "-p", "no:randomly", "-n", "0",
                           "-p", "no:cacheprovider", "-k", "test_outputs_ci_reads_are_present"],
                          capture_output=True, text=True, cwd=copy, env=env, timeout=600)
    output = done.stdout + done.stderr
    assert "errors during collection" not in output and "KeyError" not in output, output[-3000:]
    assert done.returncode == 1, output[-3000:]
    # The shipped stacks still pass; the broken one fails its fixture with the file, the line and the key.
    assert "stacks/Pulumi.broken.yaml, line 3: pixtral:target is set twice" in output
    assert "8 passed" in output.splitlines()[-1] and "1 error" in output.splitlines()[-1], output.splitlines()[-1]
