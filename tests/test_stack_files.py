"""Stack files are read the way the Pulumi CLI reads them, so `render` and `pulumi up` never disagree."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_stack

from pixtral_deploy.spec import ConfigError, load_spec
from pixtral_render.engine import StackFileError, read_stack_file


def _stack_file(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "stacks"
    folder.mkdir()
    path = folder / "Pulumi.try.yaml"
    path.write_text(body)
    return path


@pytest.mark.parametrize("written", ["yes", "on", "y", "1.0", "0.32", "true"])
def test_scalars_reach_the_program_as_written(tmp_path, written):
    # The Pulumi CLI (YAML 1.2) keeps `yes` and `on` as strings and numbers as their text; PyYAML's YAML 1.1
    # would turn `yes` into true and `1.0` into 1.0.
    config = read_stack_file(_stack_file(tmp_path, f"config:\n  pixtral:spot: {written}\n"))
    assert config == {"pixtral:spot": written}


def test_yes_is_refused_for_a_boolean_through_the_stack_file_and_the_cli_alike(tmp_path):
    from_file = read_stack_file(_stack_file(tmp_path, "config:\n  pixtral:target: aws\n  pixtral:spot: yes\n"))
    with pytest.raises(ConfigError, match="pixtral:spot: yes is not allowed; expected true or false"):
        load_spec({key.split(":", 1)[1]: value for key, value in from_file.items()})
    assert "pixtral:spot: yes is not allowed" in run_stack("aws", {"pixtral:spot": "yes"})["error"]


def test_numbers_keep_their_text(tmp_path):
    body = "config:\n  pixtral:target: aws\n  pixtral:gpuMemoryUtilization: 1.0\n  pixtral:vllmVersion: 0.32\n"
    config = read_stack_file(_stack_file(tmp_path, body))
    raw = {key.split(":", 1)[1]: value for key, value in config.items()}
    with pytest.raises(ConfigError, match="pixtral:vllmVersion: 0.32 is not allowed; expected a release number"):
        load_spec(raw)
    assert load_spec({**raw, "vllmVersion": "0.32.0"}).server.gpu_memory_utilization == 1.0


def test_lists_and_maps_become_json_with_yaml_1_2_scalars(tmp_path):
    config = read_stack_file(_stack_file(tmp_path, "config:\n  pixtral:extraArgs: [--enable-chunked-prefill, yes]\n"
                                                   "  pixtral:nodeSelector:\n    gpu: on\n    count: 2\n"))
    assert config == {"pixtral:extraArgs": '["--enable-chunked-prefill", "yes"]',
                      "pixtral:nodeSelector": '{"gpu": "on", "count": 2}'}


def test_a_stack_file_that_is_not_yaml_is_named_with_line_and_column(tmp_path):
    path = _stack_file(tmp_path, "config:\n  pixtral:target: aws\n  pixtral:allowedCidrs: [10.0.0.0/8\n")
    with pytest.raises(StackFileError) as error:
        read_stack_file(path)
    message = str(error.value)
    assert message.startswith("stacks/Pulumi.try.yaml, line 4, column 1: not valid YAML"), message
    assert "\n" not in message


def test_an_empty_stack_file_says_what_to_set(tmp_path):
    assert read_stack_file(_stack_file(tmp_path, "")) == {}
    with pytest.raises(ConfigError) as error:
        load_spec({})
    assert str(error.value) == ("pixtral:target is not set; set it to one of aws, gcp, kubernetes, eks, gke (e.g. "
                                "`pulumi config set pixtral:target aws`)")
