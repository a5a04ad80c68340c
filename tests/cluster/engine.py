"""Run a real `pulumi` command on the program, the way the Automation API runs an inline program.

The Python language host (`pulumi-language-python`, its own Go module under sdk/python/cmd in pulumi/pulumi) is not
served by the Go module proxy, so it cannot be built here. The Pulumi Python SDK ships the other way the engine runs
a Python program: its own language runtime server (pulumi.automation, for inline programs), which the CLI reaches
with `--client=ADDRESS`. This module starts that server around the program's __main__.py and runs the CLI command
given; everything from there is the real engine, the real provider and the real API server.

    python -m tests.cluster.engine WORKDIR up --yes --stack k8s
    python -m tests.cluster.engine WORKDIR preview --expect-no-changes --stack k8s

SIGINT and SIGTERM are passed on to the CLI (a cancelled `pulumi up`), which keeps the program served until it ends.
"""

from __future__ import annotations

import os
import runpy
import signal
import subprocess
import sys
from concurrent import futures
from pathlib import Path

import grpc
from pulumi.automation._server import LanguageServer
from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS
from pulumi.runtime.proto import language_pb2_grpc

PROJECT_DIR = Path(__file__).resolve().parents[2]
# The commands that run the program; others (stack output, destroy, config) are plain CLI calls.
PROGRAM_COMMANDS = ("up", "preview", "refresh")


def program() -> None:
    runpy.run_path(str(PROJECT_DIR / "__main__.py"), run_name="__main__")


def main(argv: list[str]) -> int:
    workdir, command, *rest = argv
    if command not in PROGRAM_COMMANDS:
        raise SystemExit(f"{command}: run it with the CLI itself (this runs {', '.join(PROGRAM_COMMANDS)})")
    sys.path.insert(0, str(PROJECT_DIR))
    os.chdir(PROJECT_DIR)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=_GRPC_CHANNEL_OPTIONS)
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(LanguageServer(program), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        cli = subprocess.Popen(["pulumi", command, *rest, f"--client=127.0.0.1:{port}", "--exec-kind=auto.inline",
                                "--non-interactive", "--color=never"], cwd=workdir)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda received, _frame: cli.send_signal(received))
        return cli.wait()
    finally:
        server.stop(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
