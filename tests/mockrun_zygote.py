"""A process that imports the Pulumi SDK and the providers once, then forks one child per program run.

Each run still gets a process of its own (the Pulumi SDK keeps its runtime in globals; see pixtral_render.engine),
but a fresh interpreter spends about three quarters of a run importing the providers' modules. A child forked from
here starts with them imported: the same program, the same mocks, a fraction of the time. The parent never runs a
program, so every child starts with the SDK's globals untouched.

Protocol (one JSON object per line): the client writes {"argv": [...], "stdout": PATH, "stderr": PATH}; this process
forks, the child runs `pixtral_render.engine.main(argv)` with its output in those files, and this process answers
{"returncode": N} once the child has exited. End of input ends the process.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent

# The provider modules the program declares resources from (the providers load these lazily, on first attribute
# access). One left out here is imported in the child, as in a fresh interpreter: slower, never wrong.
PRELOAD = (
    "pulumi", "pulumi.runtime", "pulumi.runtime.stack", "pulumi.runtime.sync_await",
    "pulumi_aws", "pulumi_aws.acm", "pulumi_aws.autoscaling", "pulumi_aws.cloudwatch", "pulumi_aws.ec2",
    "pulumi_aws.eks", "pulumi_aws.iam", "pulumi_aws.kms", "pulumi_aws.lb", "pulumi_aws.route53", "pulumi_aws.ssm",
    "pulumi_aws.vpc",
    "pulumi_gcp", "pulumi_gcp.compute", "pulumi_gcp.container", "pulumi_gcp.dns", "pulumi_gcp.projects",
    "pulumi_gcp.secretmanager", "pulumi_gcp.serviceaccount",
    "pulumi_kubernetes", "pulumi_kubernetes.apiextensions", "pulumi_kubernetes.apps.v1",
    "pulumi_kubernetes.autoscaling.v2", "pulumi_kubernetes.core.v1", "pulumi_kubernetes.helm.v3",
    "pulumi_kubernetes.meta.v1", "pulumi_kubernetes.networking.v1", "pulumi_kubernetes.policy.v1",
    "pulumi_kubernetes.rbac.v1", "pulumi_kubernetes.storage.v1",
    "pulumi_random", "pulumi_tls",
    "cryptography.x509",
)


def _preload() -> None:
    for name in PRELOAD:
        # Any attribute but the introspection ones runs a lazily loaded module's body (importing only registers it).
        getattr(importlib.import_module(name), "__all__", None)
    # The program's own modules: plain definitions, nothing that reads a stack or declares a resource on import.
    for package in ("pixtral_deploy", "components"):
        for path in sorted((PROJECT_DIR / package).glob("*.py")):
            importlib.import_module(f"{package}.{path.stem}" if path.stem != "__init__" else package)


def _child(request: dict) -> int:
    """In the forked child: the run's output goes to the request's files, as a subprocess's would."""
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(file, fd)
        os.close(file)
    try:
        from pixtral_render import engine as mockrun

        code = mockrun.main(request["argv"])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # noqa: BLE001 - the parent reports it, as a crashed subprocess's stderr
        traceback.print_exc()
        code = 70
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def serve() -> None:
    sys.path[0] = str(PROJECT_DIR)  # as `python -m` from the project directory would have it
    os.chdir(PROJECT_DIR)
    _preload()
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os._exit(_child(request))
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    serve()
