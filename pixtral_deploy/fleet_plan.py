"""Numbers every fleet derives from the deployment the same way, whatever cloud runs it (docs/scaling.md).

A load balancer's health check must not count a replica dead while it is still downloading and loading the weights:
the grace period comes from the cold-start estimate of the slowest candidate type, never a platform's default of a
few minutes.
"""

from __future__ import annotations

import math

from .catalog import MACHINE_TYPES
from .coldstart import cold_start

# The estimate is an estimate (Hugging Face throughput varies by hour and region): the grace period doubles it.
GRACE_FACTOR = 2.0
# Never less than this, however fast the estimate: a boot with a slow mirror must not be killed mid-download.
MIN_GRACE_SECONDS = 600
# A candidate outside the catalog has no estimate: half an hour covers Pixtral-12B on a 10 Gbit/s machine twice.
UNKNOWN_TYPE_GRACE_SECONDS = 1800


def candidate_types(deployment) -> tuple[str, ...]:
    """The fleet's candidate machine / instance types, in order of preference."""
    if deployment.aws is not None:
        return deployment.aws.instance_types or (deployment.aws.instance_type,)
    if deployment.gcp is not None:
        return deployment.gcp.machine_types or (deployment.gcp.machine_type,)
    return ()


def health_grace_seconds(deployment) -> int:
    """Seconds a new replica is left alone before failed health checks count: twice the slowest candidate's
    cold-start estimate, at least MIN_GRACE_SECONDS, rounded up to a minute; UNKNOWN_TYPE_GRACE_SECONDS when a
    candidate has no estimate. Platforms with a ceiling (GCP autohealing: 3600 s) clip it themselves."""
    unknown = any(name not in MACHINE_TYPES for name in candidate_types(deployment))
    slowest = cold_start(deployment)
    seconds = max(MIN_GRACE_SECONDS, GRACE_FACTOR * slowest.total if slowest else 0,
                  UNKNOWN_TYPE_GRACE_SECONDS if unknown or slowest is None else 0)
    return int(math.ceil(seconds / 60) * 60)


# The slowest decode a replica keeps up under a full batch: Pixtral-12B on one L4 streams ~10 tokens/s per request
# at high concurrency. A load balancer that cut responses sooner would end long generations mid-answer.
SLOW_DECODE_TOKENS_PER_SECOND = 10
MIN_RESPONSE_SECONDS = 300


def long_generation_seconds(server) -> int:
    """The longest answer a client may wait for: the whole context generated at the slow decode rate, rounded up
    to a minute. The load balancer's response timeout and connection draining are set from it."""
    seconds = max(MIN_RESPONSE_SECONDS, server.max_model_len / SLOW_DECODE_TOKENS_PER_SECOND)
    return int(math.ceil(seconds / 60) * 60)
