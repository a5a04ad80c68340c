"""The pinned vLLM's own argument parser takes the command line of a later VM boot, which streams the weights from
the stack's artefact store (server.py `vllm_args(spec, weights=...)`), and reads it as the streamer's.

No engine starts here: bench/streamer_mistral_format.sh showed vLLM 0.32.0's CPU build loading this model's
checkpoint from s3:// with these flags; this keeps the flags the program renders in step with the parser.
"""

from __future__ import annotations

import pytest
from conftest import read_by_vllm, run_stack, vm_files

pytestmark = pytest.mark.e2e


STREAMED = "/etc/pixtral/vllm-streamed.args"


def test_vllms_parser_reads_the_streamed_command_line_as_the_streamers():
    lines = {"aws": vm_files(run_stack("aws"))[STREAMED].splitlines(),
             "gcp": vm_files(run_stack("gcp"))[STREAMED].splitlines(),
             "aws-4-gpus": vm_files(run_stack("aws", {"pixtral:instanceType": "g6e.12xlarge",
                                                      "pixtral:tensorParallelSize": "4"}))[STREAMED].splitlines()}
    parsed = read_by_vllm(lines, ("model", "load_format", "model_loader_extra_config", "served_model_name"))
    for name, args in lines.items():
        assert parsed[name]["model"] == args[args.index("--model") + 1], name
        assert parsed[name]["model"].startswith(("s3://", "gs://")), name
        assert parsed[name]["load_format"] == "runai_streamer", name
        assert parsed[name]["served_model_name"] == [args[args.index("--served-model-name") + 1]], name
    assert parsed["aws-4-gpus"]["model_loader_extra_config"] == {"distributed": True}
