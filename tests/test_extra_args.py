"""`pixtral:extraArgs` cannot set a flag the program owns, in any spelling vLLM 0.32.0's parser accepts.

The end-to-end tier (tests/e2e/test_extra_args_parser.py) checks these readings against the real parser; here
they run through the real program under the mock engine, as a user's `pulumi preview` would.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_stack

from pixtral_deploy.errors import ConfigError
from pixtral_deploy.server import VLLM_VERSION, vllm_args
from pixtral_deploy.spec import load_spec
from pixtral_deploy.vllm_flags import (
    MANAGED_FLAGS,
    OPTION_ALIASES,
    OPTION_STRINGS,
    PARSER_RELEASE,
    REFUSED_FLAGS,
    check_extra_args,
)

# (extraArgs, the element the message must quote, words the message must hold: the flag it lands on and its owner)
SMUGGLED = [
    (["--api_key", "sk-other"], "--api_key", ["--api-key", "pixtral:apiKey"]),
    (["--api-ke", "sk-other"], "--api-ke", ["--api-key", "pixtral:apiKey"]),
    (["--ho", "127.0.0.1"], "--ho", ["--host", "the program sets", "pixtral:allowedCidrs"]),
    (["-tp", "8"], "-tp", ["--tensor-parallel-size", "pixtral:tensorParallelSize"]),
    (["-tp=8"], "-tp=8", ["--tensor-parallel-size", "pixtral:tensorParallelSize"]),
    (["-q", "fp8"], "-q", ["--quantization", "pixtral:quantization"]),
    (["-qfp8"], "-qfp8", ["--quantization", "pixtral:quantization"]),
    (["--limit-mm-per-prompt.image", "64"], "--limit-mm-per-prompt.image",
     ["--limit-mm-per-prompt", "pixtral:maxImagesPerPrompt"]),
    (["--limit_mm.image=64"], "--limit_mm.image=64", ["--limit-mm-per-prompt", "pixtral:maxImagesPerPrompt"]),
    (["--max_model_len", "1048576"], "--max_model_len", ["--max-model-len", "pixtral:maxModelLen"]),
    (["--max-num-seqs", "8", "--middleware", "evil.Middleware"], "--middleware",
     ["--middleware", "the program sets", "key guard"]),
    (["--device-memory-utilization", "0.99"], "--device-memory-utilization",
     ["--gpu-memory-utilization", "pixtral:gpuMemoryUtilization"]),
    (["--port=9000"], "--port=9000", ["--port", "pixtral:port"]),
    (["--served", "other"], "--served", ["--served-model-name", "pixtral:servedModelName"]),
    (["--root-path", "/v2"], "--root-path", ["--root-path", "health checks"]),
    (["--max-num-seqs", "8\n--host"], "8\\n--host", ["control character U+000A", "vllm.args"]),
    (["--allowed-media-domains\timages.example.com"], "\\t", ["control character U+0009"]),
    (["--max-num-seqs\x00"], "\\x00", ["control character U+0000"]),
]


@pytest.mark.parametrize("extra,element,words", SMUGGLED, ids=[case[1] for case in SMUGGLED])
def test_flag_the_program_owns_is_refused_in_every_spelling(extra, element, words):
    run = run_stack("aws", {"pixtral:extraArgs": json.dumps(extra)})
    message = run["error"]
    assert message, f"extraArgs {extra} was accepted"
    assert "pixtral:extraArgs" in message and element in message, message
    for word in words:
        assert word in message, message
    assert "Traceback" not in message
    assert run["resources"] == [], f"resources were declared before the error: {[r['name'] for r in run['resources']]}"


@pytest.mark.parametrize("extra", [
    ["--allowed-media-domains", "images.example.com"],
    ["--max-num-seqs", "64", "--enable-prefix-caching", "--disable-log-stats"],
    # An option that only shares a prefix with a managed one is its own option.
    ["--tokenizer", "mistralai/Pixtral-12B-2409", "--model-impl", "vllm", "--hf-overrides", '{"a": 1}'],
    # Values are values, even when they mention a flag.
    ["--allowed-media-domains", "host.example.com", "--override-generation-config", '{"--port": 1}'],
    ["--max-num-seqs=4", "--max-num-batched-tokens=8192"],
])
def test_other_vllm_arguments_pass_and_land_last(extra):
    args = vllm_args(load_spec({"target": "aws", "extraArgs": json.dumps(extra)}).server)
    assert args[-len(extra):] == extra


@pytest.mark.parametrize("element", ["--m", "--ma", "--to", "--lo", "-t8", "-tp8", "--"])
def test_ambiguous_or_unknown_spellings_are_left_to_vllm(element):
    """The pinned parser reads none of these as a managed flag: ambiguous prefixes and unknown options make vLLM
    stop with its own error, so refusing them here would only hide vLLM's clearer message."""
    check_extra_args([element, "1"])


@pytest.mark.parametrize("element", ["-t=8", "-t", "-O-tp.a", "--api_key.x=1", "--gpu-memory.a", "--mid"])
def test_less_common_spellings_are_refused(element):
    with pytest.raises(ConfigError, match="pixtral:extraArgs"):
        check_extra_args([element, "1"])


def test_every_flag_the_program_writes_is_managed():
    """A flag added to vllm_args without an owner here would be settable again through extraArgs."""
    deployment = load_spec({"target": "aws", "quantization": "fp8"})
    written = {arg for arg in vllm_args(deployment.server) if arg.startswith("--")}
    assert written <= set(MANAGED_FLAGS), written - set(MANAGED_FLAGS)
    assert "--api-key" in MANAGED_FLAGS


def test_option_list_is_the_pinned_release():
    """The option list describes one release's parser: moving the pin needs it regenerated (see vllm_flags)."""
    assert PARSER_RELEASE == VLLM_VERSION
    assert set(MANAGED_FLAGS) | set(REFUSED_FLAGS) | set(OPTION_ALIASES) <= set(OPTION_STRINGS)
    assert list(OPTION_STRINGS) == sorted(set(OPTION_STRINGS))


@pytest.mark.parametrize("char", ["\r", "\x1b", "\x7f", "\x85", "\u2028"])
def test_any_control_character_or_line_separator_is_refused(char):
    with pytest.raises(ConfigError, match=f"pixtral:extraArgs.*U\\+{ord(char):04X}"):
        check_extra_args(["--allowed-media-domains", f"images.example.com{char}x"])
