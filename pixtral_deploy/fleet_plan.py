"""The numbers every platform serving the model derives from the spec, computed once here
(docs/scaling.md, "One fleet plan"): the AWS fleet, the GCP fleet and the pods read them; each platform's own limits
stay beside the component that meets them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .catalog import MACHINE_TYPES
from .coldstart import candidate_types, cold_start

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
