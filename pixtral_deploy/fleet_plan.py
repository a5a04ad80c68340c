"""The numbers every platform serving the model derives from the spec, computed once here
(docs/scaling.md, "One fleet plan"): the AWS fleet, the GCP fleet and the pods read them; each platform's own limits
stay beside the component that meets them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .catalog import MACHINE_TYPES
from .coldstart import LaterBoot, candidate_types, cold_start, wake_start, warm_start

# The estimate is an estimate (Hugging Face throughput varies by hour and region): the grace period doubles it.
GRACE_FACTOR = 2.0
# Never less than this, however fast the estimate: a boot with a slow mirror must not be killed mid-download.
MIN_GRACE_SECONDS = 600
# Without an estimate (a type outside the catalog; a pod, whose node, image and download are the cluster's): half
# an hour covers Pixtral-12B's ~25 GB on a 10 Gbit/s machine twice.
UNKNOWN_GRACE_SECONDS = 1800
# A response's first byte comes after prefill (several images) and any queueing: the timeouts that must not cut an
# answer allow this much beyond the longest generation.
FIRST_BYTE_MARGIN_SECONDS = 60


@dataclass(frozen=True)
class FleetPlan:
    # A replica leaving keeps this long to finish what it generates: vLLM's --shutdown-timeout, a balancer's
    # deregistration delay / connection draining, and what a pod's termination grace is built on.
    drain_seconds: int
    # A balancer waits this long for a response, or keeps a silent connection open this long.
    response_timeout_seconds: int
    # A new replica's failed health checks count only after this.
    health_grace_seconds: int


def health_grace_seconds(spec) -> int:
    """Twice the slowest candidate's cold-start estimate, at least MIN_GRACE_SECONDS, rounded up to a minute;
    UNKNOWN_GRACE_SECONDS when any candidate (or the target) has no estimate."""
    unknown = any(name not in MACHINE_TYPES for name in candidate_types(spec))
    slowest = cold_start(spec)
    seconds = max(MIN_GRACE_SECONDS, GRACE_FACTOR * slowest.total if slowest else 0,
                  UNKNOWN_GRACE_SECONDS if unknown or slowest is None else 0)
    return int(math.ceil(seconds / 60) * 60)


def fleet_plan(spec) -> FleetPlan:
    drain = spec.server.drain_seconds
    return FleetPlan(drain_seconds=drain, response_timeout_seconds=drain + FIRST_BYTE_MARGIN_SECONDS,
                     health_grace_seconds=health_grace_seconds(spec))


@dataclass(frozen=True)
class WakePlan:
    """A fleet at zero (autoscale.minReplicas 0): what its first caller waits, and how long a client that wakes it
    should wait before calling the wake failed. The program exports it (stack output `scaleToZero`) so `pixtralctl
    status`, `wait` and `smoke` state the same numbers `pulumi up` logs."""

    # From the first request until the platform starts a replica (Target.wake_detection_seconds).
    detection_seconds: int
    # The replica's start, from coldstart (a warm-pool resume or a cold start); None where no estimate exists (pods:
    # their node, image and download are the cluster's).
    start_seconds: int | None
    # The start resumes a stopped warm-pool instance.
    warm: bool
    # Detection plus the fleet plan's health grace: past that the platform itself counts the new replica as dead.
    timeout_seconds: int
    # The start is a later boot, from the stack's artefact store (pixtral:warmStarts); older outputs lack it.
    from_store: bool = False

    @property
    def estimate_seconds(self) -> int | None:
        return None if self.start_seconds is None else self.detection_seconds + self.start_seconds

    def describe(self) -> str:
        """"about 268 s: 120 s wake detection + 148 s cold start estimate", or why there is no total."""
        if self.start_seconds is None:
            return (f"{self.detection_seconds} s wake detection + the pod's start; no estimate of that: its node, "
                    "image and download are the cluster's")
        start = ("warm start estimate (resumed from the warm pool)" if self.warm
                 else "start estimate (a boot from the stack's artefact store)" if self.from_store
                 else "cold start estimate")
        return (f"about {self.estimate_seconds} s: {self.detection_seconds} s wake detection + {self.start_seconds} s "
                f"{start}")

    def output(self) -> dict[str, int | bool | None]:
        return {"detectionSeconds": self.detection_seconds, "startSeconds": self.start_seconds, "warm": self.warm,
                "timeoutSeconds": self.timeout_seconds, "fromStore": self.from_store}

    @classmethod
    def from_output(cls, value: object) -> WakePlan | None:
        """The plan a stack exported; None when it exported none (minReplicas 1 or more, or an older program). Pulumi
        hands numbers back as floats."""
        if not isinstance(value, dict):
            return None
        start = value.get("startSeconds")
        return cls(int(value["detectionSeconds"]), None if start is None else int(start), bool(value.get("warm")),
                   int(value["timeoutSeconds"]), bool(value.get("fromStore")))


def wake_plan(spec) -> WakePlan | None:
    """The wake of a fleet at zero, from the target's detection delay and coldstart's estimate; None unless
    autoscale.minReplicas is 0 on a target that can wake."""
    autoscale = spec.scaling.autoscale
    detection = spec.runs_on.wake_detection_seconds
    if autoscale is None or not autoscale.scales_to_zero or detection is None:
        return None
    # The same start the `pulumi up` log line states (coldstart.wake_from_zero).
    start = wake_start(spec)
    return WakePlan(detection_seconds=detection, start_seconds=None if start is None else round(start.total),
                    warm=warm_start(spec) is not None, timeout_seconds=detection + health_grace_seconds(spec),
                    from_store=isinstance(start, LaterBoot))
