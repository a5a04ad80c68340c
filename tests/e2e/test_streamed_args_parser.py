"""The pinned vLLM's own argument parser takes the command line of a later VM boot, which streams the weights from
the stack's artefact store (server.py `vllm_args(spec, weights=...)`), and reads it as the streamer's.

No engine starts here: bench/streamer_mistral_format.sh showed vLLM 0.32.0's CPU build loading this model's
checkpoint from s3:// with these flags; this keeps the flags the program renders in step with the parser.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import e2e_python, run_stack, vm_files

pytestmark = pytest.mark.e2e

PARSE = r'''
import json, sys
from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
from vllm.utils.argparse_utils import FlexibleArgumentParser

parsed = {}
for name, argv in json.loads(sys.stdin.read()).items():
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
    validate_parsed_serve_args(args)
    parsed[name] = {"model": args.model, "load_format": args.load_format,
                    "model_loader_extra_config": args.model_loader_extra_config,
                    "served_model_name": args.served_model_name}
print(json.dumps(parsed))
'''

STREAMED = "/etc/pixtral/vllm-streamed.args"


def test_vllms_parser_reads_the_streamed_command_line_as_the_streamers():
    lines = {"aws": vm_files(run_stack("aws"))[STREAMED].splitlines(),
             "gcp": vm_files(run_stack("gcp"))[STREAMED].splitlines(),
             "aws-4-gpus": vm_files(run_stack("aws", {"pixtral:instanceType": "g6e.12xlarge",
                                                      "pixtral:tensorParallelSize": "4"}))[STREAMED].splitlines()}
    done = subprocess.run([e2e_python(), "-c", PARSE], input=json.dumps(lines), capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    for name, args in lines.items():
        assert parsed[name]["model"] == args[args.index("--model") + 1], name
        assert parsed[name]["model"].startswith(("s3://", "gs://")), name
        assert parsed[name]["load_format"] == "runai_streamer", name
        assert parsed[name]["served_model_name"] == [args[args.index("--served-model-name") + 1]], name
    assert parsed["aws-4-gpus"]["model_loader_extra_config"] == {"distributed": True}
