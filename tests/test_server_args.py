"""vLLM's command line, from the one server description."""

from __future__ import annotations

import json

from pixtral_deploy.server import VLLM_VERSION, vllm_args
from pixtral_deploy.spec import load_spec


def _args(**raw) -> list[str]:
    return vllm_args(load_spec({"target": "aws", **raw}).server)


def _value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_pixtral_defaults():
    args = _args()
    assert _value(args, "--model") == "mistralai/Pixtral-12B-2409"
    assert _value(args, "--port") == "8081"
    assert _value(args, "--tokenizer-mode") == "mistral"
    assert json.loads(_value(args, "--limit-mm-per-prompt")) == {"image": 4}
    assert _value(args, "--max-model-len") == "32768"
    assert _value(args, "--gpu-memory-utilization") == "0.9"
    assert "--quantization" not in args


def test_every_setting_lands_on_the_command_line():
    args = _args(port="9000", maxImagesPerPrompt="2", maxModelLen="16384", servedModelName="pixtral",
                 gpuMemoryUtilization="0.85", quantization="fp8", extraArgs='["--max-num-seqs", "32"]')
    assert _value(args, "--port") == "9000"
    assert json.loads(_value(args, "--limit-mm-per-prompt")) == {"image": 2}
    assert _value(args, "--max-model-len") == "16384"
    assert _value(args, "--served-model-name") == "pixtral"
    assert _value(args, "--gpu-memory-utilization") == "0.85"
    assert _value(args, "--quantization") == "fp8"
    assert args[-2:] == ["--max-num-seqs", "32"]


def test_image_tag_follows_the_pinned_version():
    deployment = load_spec({"target": "aws"})
    assert deployment.server.vllm_version == VLLM_VERSION
    assert deployment.server.image == f"vllm/vllm-openai:v{VLLM_VERSION}"
