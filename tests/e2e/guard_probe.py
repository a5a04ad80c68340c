"""Builds vLLM's real API app (the pinned release, no engine) with the key guard as the VM loads it, sends it the
requests given as JSON on stdin, and prints each answer's status and start of body as JSON.

No engine is needed for what the guard decides: the middleware stack (vLLM's CORS middleware, the guard) and the
/metrics app are built by vLLM's own `build_app` from its own argument parser. Run with the e2e venv's Python and
the guard's folder on PYTHONPATH; the arguments are vLLM's.
"""

import json
import sys

from starlette.testclient import TestClient
from vllm.entrypoints.launchers.app import build_app
from vllm.entrypoints.launchers.cli_args import make_arg_parser
from vllm.utils.argparse_utils import FlexibleArgumentParser


def main() -> None:
    argv = sys.argv[1:]
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
    # The guard reads the server's command line, as in `python -m vllm.entrypoints.openai.api_server ARGS`.
    sys.argv = ["api_server.py", *argv]
    client = TestClient(build_app(args, supported_tasks=("generate",)))
    answers = []
    for request in json.load(sys.stdin):
        response = client.request(request["method"], request["path"], headers=request["headers"])
        answers.append({"status": response.status_code, "body": response.text[:200]})
    print(json.dumps(answers))


if __name__ == "__main__":
    main()
