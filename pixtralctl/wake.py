"""A fleet at zero (autoscale.minReplicas 0, no replica): how `status` shows it, and how `wait` and `smoke` wake it.

Whether a fleet is at zero comes from the platform, read as `status` reads it (status_<platform>.fleet_size: the Auto
Scaling Group's minimum and desired capacity, the managed instance groups' autoscalers and target sizes, the
ScaledObject's minReplicaCount and the workload's replicas). What its first caller waits comes from the program's
own estimate, which the stack exports as `scaleToZero` (pixtral_deploy/fleet_plan.py, WakePlan): `pulumi up`,
`status`, `wait` and `smoke` state the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pixtral_deploy.fleet_plan import WakePlan

from . import api
from .errors import Failure
from .status import FleetSize, replicas_of, size_of
from .target import Target, TargetError

# `wait --timeout` without a fleet at zero (or a stack that exports no wake plan): a first boot's install and
# download with room to spare.
DEFAULT_TIMEOUT_SECONDS = 1800.0
NO_PLAN = ("no estimate: the stack's outputs hold no scaleToZero; `pulumi up` with this version of the program "
           "exports it")


@dataclass(frozen=True)
class AtZero:
    """A fleet with no replica that may have none: idle (none wanted), or waking (a request has asked for one)."""

    size: FleetSize
    plan: WakePlan | None

    @property
    def state(self) -> str:
        return "idle" if self.size.idle else "waking"

    def estimate(self) -> str:
        return self.plan.describe() if self.plan else NO_PLAN

    def line(self) -> str:
        """What `status` prints under the (empty) table."""
        if self.size.idle:
            return f"idle: scaled to zero, the first request wakes it ({self.estimate()})"
        return (f"waking: scaled to zero, and a request has woken it ({self.size.what} wants {self.size.desired}); "
                f"the first answer comes after that request ({self.estimate()})")

    def waking_line(self, timeout: float) -> str:
        return (f"the fleet is at zero ({self.size.what}: autoscale.minReplicas 0, no replica): waking it with a "
                f"request to its endpoint; first answer in {self.estimate()}; waiting up to {timeout:g} s")


def wait_timeout(zero: AtZero | None, asked: float | None) -> float:
    """How long `wait` and `smoke` wait for a ready server: what the user asked; for a fleet at zero, the stack's wake
    timeout (wake detection + the fleet plan's health grace, past which the platform itself gives the new replica
    up); else the default."""
    if asked is not None:
        return asked
    return float(zero.plan.timeout_seconds) if zero and zero.plan else DEFAULT_TIMEOUT_SECONDS


def without_replicas(outputs: dict, report: dict[str, Any] | None = None) -> AtZero:
    """A stack that lists no replica: at zero when its fleet's minimum is 0; a Failure otherwise (a fleet whose
    minimum needs a replica, a single VM or a fixed set of pods)."""
    size = size_of(outputs)
    if size is None:
        raise Failure("no replica: the stack runs a fixed number of replicas (one VM, or pods without a "
                      "ScaledObject) and none is listed; `pulumi up` recreates what is missing", report=report)
    if size.minimum > 0:
        raise Failure(f"no replica: {size.what} keeps at least {size.minimum} (its minimum) and wants "
                      f"{size.desired}, yet none is listed; its scaling activity says why (a launch refused for "
                      "quota or capacity, a replica that failed its health checks)", report=report)
    return AtZero(size, WakePlan.from_output(outputs.get("scaleToZero")))


def at_zero(outputs: dict | None) -> AtZero | None:
    """For `wait` and `smoke`: the fleet when it holds no replica and may hold none; None when it has one, needs
    one, or the platform's CLI cannot tell (they then wait on the endpoint alone, as before). Only a stack that exports
    a wake plan (deployed with autoscale.minReplicas 0) is asked: the others cannot be at zero, and a single VM's
    `wait` need not wait for a cloud CLI."""
    if not outputs or "scaleToZero" not in outputs:
        return None
    try:
        if replicas_of(outputs):
            return None
        size = size_of(outputs)
    except TargetError:
        return None
    if size is None or size.minimum > 0:
        return None
    return AtZero(size, WakePlan.from_output(outputs.get("scaleToZero")))


def send_waking_request(target: Target, timeout: float) -> str:
    """Any request to the endpoint wakes a fleet at zero: on AWS the balancer answers 503 for its empty target group
    and the wake alarm counts those (HTTPCode_ELB_503_Count, components/aws_fleet.py); on GCP the load balancer's
    request count, the autoscaler's signal, counts the requests it refuses too; on Kubernetes the interceptor holds
    the request and its scaler reports it to KEDA. /health needs no key. Returns what answered, for the log."""
    try:
        reply = api.call(f"{target.endpoint}/health", timeout=timeout, context=target.ssl_context())
    except api.Untrusted as error:
        raise Failure(target.untrusted(error)) from None
    except api.NoAnswer as error:
        return f"the waking request got no answer within {timeout:g} s ({error})"
    return f"the waking request was answered {reply.status}"
