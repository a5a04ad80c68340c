"""`pixtralctl status`: one line per replica of a deployment, like `sky serve status`.

Which replicas exist, where, on what capacity and whether the load balancer (or the kubelet) counts them healthy,
read through the platform's own CLI from the stack's outputs. Each platform has its module
(`status_<platform>.py`) with `replicas(outputs: dict) -> list[Replica]`, and for a fleet `fleet_size(outputs: dict)
-> FleetSize | None`, read when no replica is listed: a fleet at zero (autoscale.minReplicas 0) is idle, any other
fleet without a replica has failed.
"""

from __future__ import annotations

import argparse
import importlib
import json
from dataclasses import asdict, dataclass
from typing import Any

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


@dataclass(frozen=True)
class FleetSize:
    """What the platform holds of a fleet's size: its floor (an Auto Scaling Group's minimum, the autoscalers'
    minimum, a ScaledObject's minReplicaCount) and what it wants running now."""

    # "Auto Scaling Group pixtral-5a2f0e4", for messages.
    what: str
    minimum: int
    desired: int

    @property
    def idle(self) -> bool:
        """Scaled to zero, as the stack allows: no replica wanted, none required."""
        return self.minimum == 0 and self.desired == 0


EXIT_CODES = {
    status_codes.SUCCESS: "the replicas were listed, or the fleet is idle at zero (autoscale.minReplicas 0: the first "
                          "request wakes it); with --endpoint: it answered a real request",
    status_codes.CHECK_FAILED: "no replica listed where the fleet's minimum (or a single VM) needs one; with "
                               "--endpoint: the endpoint did not answer a real request (the line says how far it got)",
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
    parser.add_argument("--json", action="store_true",
                        help="print the replicas as JSON (a list; a fleet at zero: {replicas, state, message})")
    parser.set_defaults(handler=run)


def replicas_of(outputs: dict) -> list[Replica]:
    """The replicas, listed by the module the stack's target names (pixtral_deploy/targets: status_module)."""
    return importlib.import_module(_module_of(outputs).status_module).replicas(outputs)


def _module_of(outputs: dict) -> Any:
    """The stack's target (pixtral_deploy/targets), which names its status module."""
    from pixtral_deploy import targets

    name = outputs.get("target")
    target = targets.find(name) if isinstance(name, str) else None
    if target is None:
        raise TargetError(f"the stack's target {name!r} has no replica listing; expected one of "
                          f"{', '.join(targets.names())}")
    return target


def size_of(outputs: dict) -> FleetSize | None:
    """The fleet's floor and wanted size, from the target's status module; None for a single VM, a fixed set of pods,
    or a module that cannot tell."""
    module = importlib.import_module(_module_of(outputs).status_module)
    fleet_size = getattr(module, "fleet_size", None)
    return fleet_size(outputs) if fleet_size is not None else None


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
    from .wake import without_replicas

    zero = None
    if args.endpoint:
        replicas = _endpoint_status(args)
    else:
        outputs = stack_outputs(args.stack, instead="`status` reads the stack's outputs; select the stack, or pass "
                                                    "--endpoint and --api-key")
        replicas = replicas_of(outputs)
        if not replicas:
            # Idle (or waking) at zero, or a Failure: a fleet whose minimum needs a replica has none.
            zero = without_replicas(outputs, report={"replicas": []} if args.json else None)
    if args.json:
        listed = [asdict(replica) for replica in replicas]
        print(json.dumps({"replicas": listed, "state": zero.state, "message": zero.line()} if zero else listed,
                         indent=2))
    else:
        print(table(replicas))
        print(f"{len(replicas)} replica(s)")
        if zero:
            print(zero.line())
