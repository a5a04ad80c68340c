"""`pixtralctl status`: one line per replica of a deployment, like `sky serve status`.

Which replicas exist, where, on what capacity and whether the load balancer (or the kubelet) counts them healthy,
read through the platform's own CLI from the stack's outputs. Each platform has its module
(`status_<platform>.py`) with `replicas(outputs: dict) -> list[Replica]`.
"""

from __future__ import annotations

import argparse
import importlib
import json
from dataclasses import asdict, dataclass

from . import status_codes
from .errors import Failure
from .target import TargetError, add_target_arguments, resolve, stack_outputs

COLUMNS = ("name", "zone", "type", "capacity", "state", "health")


@dataclass(frozen=True)
class Replica:
    """One replica as `status` prints it; a field the platform does not have is "-"."""

    name: str
    zone: str = "-"
    type: str = "-"
    # spot / on-demand (AWS), Spot / standard (GCP); "-" for pods.
    capacity: str = "-"
    # The platform's lifecycle state (InService, RUNNING, Running, ...), or the pod's ready/restarts/age.
    state: str = "-"
    # What decides whether it gets traffic: target health, the health check's verdict, readiness.
    health: str = "-"


EXIT_CODES = {
    status_codes.SUCCESS: "the replicas were listed (none too: a fleet scaled to zero); with --endpoint: it answered "
                          "a real request",
    status_codes.CHECK_FAILED: "with --endpoint: the endpoint did not answer a real request (the line says how far it "
                               "got)",
    status_codes.USAGE_ERROR: "the platform's CLI is missing or could not read the replicas, or no stack outputs "
                              "name a deployment",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("status", help="one line per replica: where it runs and whether it serves",
                                   description=__doc__.split("\n\n")[0],
                                   epilog=status_codes.epilog(status_codes.meanings(EXIT_CODES)),
                                   formatter_class=status_codes.HelpFormatter)
    # --endpoint (with --api-key) asks the endpoint itself, without the Pulumi CLI, as `wait` and `smoke` do.
    add_target_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the replicas as JSON")
    parser.set_defaults(handler=run)


def replicas_of(outputs: dict) -> list[Replica]:
    """The replicas, listed by the module the stack's target names (pixtral_deploy/targets: status_module)."""
    from pixtral_deploy import targets

    name = outputs.get("target")
    target = targets.find(name) if isinstance(name, str) else None
    if target is None:
        raise TargetError(f"the stack's target {name!r} has no replica listing; expected one of "
                          f"{', '.join(targets.names())}")
    return importlib.import_module(target.status_module).replicas(outputs)


def table(replicas: list[Replica]) -> str:
    rows = [COLUMNS] + [tuple(getattr(replica, column) for column in COLUMNS) for replica in replicas]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def _endpoint_status(args: argparse.Namespace) -> list[Replica]:
    """The endpoint as one row: without the stack's outputs the replicas behind it are unknown, its answer is not."""
    from .wait import probe

    target = resolve(args)
    result = probe(target)
    row = Replica(name=target.endpoint, state=result.phase, health=result.detail)
    if not result.ready:
        raise Failure(f"{target.endpoint} {result.phase}: {result.detail}",
                      report={"replicas": [asdict(row)]} if args.json else None)
    return [row]


def run(args: argparse.Namespace) -> None:
    if args.endpoint:
        replicas = _endpoint_status(args)
    else:
        replicas = replicas_of(stack_outputs(args.stack, instead="`status` reads the stack's outputs; select the "
                                                                 "stack, or pass --endpoint and --api-key"))
    if args.json:
        print(json.dumps([asdict(replica) for replica in replicas], indent=2))
    else:
        print(table(replicas))
        print(f"{len(replicas)} replica(s)")
