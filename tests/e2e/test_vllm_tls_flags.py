"""The pinned vLLM's own argument parser takes the TLS flags the program generates, on a VM and in a pod.

No engine starts here: the parser alone says whether the pinned release knows the flags, in seconds; the served
HTTPS tests in test_served_api.py start the server with them.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import e2e_python, pod_controller, run_stack, vm_files

pytestmark = pytest.mark.e2e

PARSE = r'''
import json, sys
from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
from vllm.utils.argparse_utils import FlexibleArgumentParser

parsed = {}
for name, argv in json.loads(sys.stdin.read()).items():
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
    validate_parsed_serve_args(args)
    parsed[name] = {"ssl_keyfile": args.ssl_keyfile, "ssl_certfile": args.ssl_certfile}
print(json.dumps(parsed))
'''


def _parsed_by_vllm(command_lines: dict[str, list[str]]) -> dict[str, dict]:
    done = subprocess.run([e2e_python(), "-c", PARSE], input=json.dumps(command_lines),
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_vllms_parser_takes_the_generated_tls_flags():
    vm_args = vm_files(run_stack("aws"))["/etc/pixtral/vllm.args"].splitlines()
    (container,) = pod_controller(run_stack("k8s"))["inputs"]["spec"]["template"]["spec"]["containers"]
    plain_args = vm_files(run_stack("aws", {"pixtral:tls": "false"}))["/etc/pixtral/vllm.args"].splitlines()
    parsed = _parsed_by_vllm({"vm": vm_args, "pod": container["args"], "plain": plain_args})
    for name, args in (("vm", vm_args), ("pod", container["args"])):
        assert parsed[name] == {"ssl_keyfile": _value(args, "--ssl-keyfile"),
                                "ssl_certfile": _value(args, "--ssl-certfile")}, name
    assert parsed["plain"] == {"ssl_keyfile": None, "ssl_certfile": None}
