"""The pinned vLLM's own argument parser takes the TLS flags the program generates, on a VM and in a pod.

No engine starts here: the parser alone says whether the pinned release knows the flags, in seconds; the served
HTTPS tests in test_served_api.py start the server with them.
"""

from __future__ import annotations

import pytest
from conftest import pod_controller, read_by_vllm, run_stack, vm_files

pytestmark = pytest.mark.e2e



def _parsed_by_vllm(command_lines: dict[str, list[str]]) -> dict[str, dict]:
    return read_by_vllm(command_lines, ("ssl_keyfile", "ssl_certfile"))


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
