"""How many replicas serve, and how their number follows load: the one scaling contract (docs/scaling.md) for AWS,
GCP and Kubernetes, parsed and checked once.

`Scaling` says what the user asked for; each platform maps it onto its own machinery (an Auto Scaling Group, a
managed instance group, a ScaledObject or HorizontalPodAutoscaler) and refuses, naming the key, what it cannot
honour.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .parsers import Refused, finite_number, json_value, setting_error, shown, whole_number

# SkyServe's defaults for its replica policy.
DEFAULT_UPSCALE_DELAY_SECONDS = 300
DEFAULT_DOWNSCALE_DELAY_SECONDS = 1200
# The window over which request rates are averaged (SkyServe's QPS window; ALB's metric is per minute).
QPS_WINDOW_SECONDS = 60
# An AWS fleet's scale-in alarm looks at one-minute periods; CloudWatch allows an alarm with periods under an hour
# to look back one day at most (period x evaluation periods <= 86,400 s), which bounds downscaleDelaySeconds there.
SCALE_IN_PERIOD_SECONDS = 60
AWS_MAX_DOWNSCALE_DELAY_SECONDS = 86_400
MAX_REPLICAS = 1000
# A per-replica target: the HPA's quantity is written in thousandths (pod_autoscaler.quantity), so a smaller target
# would become 0; no vLLM replica serves or queues a million requests, and a larger one only overflows the alarms'
# arithmetic (1e308 makes an infinite threshold).
MIN_TARGET = 0.001
MAX_TARGET = 1_000_000
_AUTOSCALE_FIELDS = ("minReplicas", "maxReplicas", "targetQpsPerReplica", "targetQueuePerReplica",
                     "upscaleDelaySeconds", "downscaleDelaySeconds")


@dataclass(frozen=True)
class Autoscale:
    min_replicas: int
    max_replicas: int
    target_qps_per_replica: float | None = None
    target_queue_per_replica: float | None = None
    upscale_delay_seconds: int = DEFAULT_UPSCALE_DELAY_SECONDS
    downscale_delay_seconds: int = DEFAULT_DOWNSCALE_DELAY_SECONDS

    def __post_init__(self) -> None:
        if self.max_replicas < self.min_replicas:
            raise Refused(f"maxReplicas greater than or equal to minReplicas; found minReplicas={self.min_replicas}, "
                          f"maxReplicas={self.max_replicas}")
        if (self.target_qps_per_replica is None) == (self.target_queue_per_replica is None):
            raise Refused("exactly one target: targetQpsPerReplica (requests per second per replica) or "
                          "targetQueuePerReplica (requests waiting per replica, vLLM's num_requests_waiting)")

    @property
    def metric(self) -> str:
        return "qps" if self.target_qps_per_replica is not None else "queue"

    @property
    def target(self) -> float:
        return self.target_qps_per_replica if self.metric == "qps" else self.target_queue_per_replica

    def desired_replicas(self, load: float) -> int:
        """SkyServe's rule: ceil(load / target per replica), clipped to [min, max]."""
        return max(self.min_replicas, min(self.max_replicas, math.ceil(load / self.target)))

    def describe(self) -> str:
        what = ("target QPS per replica" if self.metric == "qps" else "target requests waiting per replica")
        return (f"autoscaling from {self.min_replicas} to {self.max_replicas} replicas ({what}: {self.target:g}; "
                f"up after {self.upscale_delay_seconds} s, down after {self.downscale_delay_seconds} s)")


def _whole(name: str, value: Any, low: int) -> int:
    number = whole_number(value)
    if number is None or not low <= number <= MAX_REPLICAS * 100:
        raise Refused(f"autoscale.{name} to be a whole number from {low} to {MAX_REPLICAS * 100} "
                      f"(found {shown(value)})")
    return number


def _target(name: str, value: Any) -> float:
    number = finite_number(value)
    if number is None or not MIN_TARGET <= number <= MAX_TARGET:
        raise Refused(f"autoscale.{name} to be a number from {MIN_TARGET:g} to {MAX_TARGET:,} (found {shown(value)}): "
                      "Kubernetes writes a target in thousandths, so a smaller one would be 0, and no replica serves "
                      "or queues more")
    return number


def parse_autoscale(value: Any) -> Autoscale:
    """The `pixtral:autoscale` map: {minReplicas, maxReplicas, and exactly one of targetQpsPerReplica /
    targetQueuePerReplica}, optionally upscaleDelaySeconds / downscaleDelaySeconds."""
    fields = json_value(value, 'a map, e.g. {"minReplicas": 1, "maxReplicas": 4, "targetQpsPerReplica": 2}')
    if not isinstance(fields, dict):
        raise Refused('a map, e.g. {"minReplicas": 1, "maxReplicas": 4, "targetQpsPerReplica": 2}')
    for name in fields:
        if name not in _AUTOSCALE_FIELDS:
            close = difflib.get_close_matches(name, _AUTOSCALE_FIELDS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise Refused(f"only the fields {', '.join(_AUTOSCALE_FIELDS)}; autoscale.{name} is not one{hint}")
    for required in ("minReplicas", "maxReplicas"):
        if required not in fields:
            raise Refused(f"autoscale.{required}, a whole number")
    # minReplicas 0 is scale to zero (SkyServe's min_replicas: 0); each platform refuses it where it cannot wake.
    minimum = _whole("minReplicas", fields["minReplicas"], 0)
    maximum = _whole("maxReplicas", fields["maxReplicas"], 1)
    if maximum > MAX_REPLICAS:
        raise Refused(f"autoscale.maxReplicas of at most {MAX_REPLICAS} (found {maximum})")
    return Autoscale(
        min_replicas=minimum,
        max_replicas=maximum,
        target_qps_per_replica=_target("targetQpsPerReplica", fields["targetQpsPerReplica"])
        if "targetQpsPerReplica" in fields else None,
        target_queue_per_replica=_target("targetQueuePerReplica", fields["targetQueuePerReplica"])
        if "targetQueuePerReplica" in fields else None,
        upscale_delay_seconds=_whole("upscaleDelaySeconds", fields.get("upscaleDelaySeconds",
                                                                      DEFAULT_UPSCALE_DELAY_SECONDS), 0),
        downscale_delay_seconds=_whole("downscaleDelaySeconds", fields.get("downscaleDelaySeconds",
                                                                          DEFAULT_DOWNSCALE_DELAY_SECONDS), 0),
    )


@dataclass(frozen=True)
class Scaling:
    """Replicas: a fixed number, or an autoscaled range; with spot, how many stay on on-demand capacity."""

    replicas: int = 1
    autoscale: Autoscale | None = None
    on_demand_base_replicas: int = 0
    spot: bool = False
    internal: bool = False
    # Stopped instances kept ready (vLLM installed, weights on disk) beside a fleet, to resume on scale-out.
    warm_pool: int = 0
    # Whether the user set replicas (to refuse it next to autoscale, and to tell 1 from the default).
    replicas_set: bool = False

    def __post_init__(self) -> None:
        if self.autoscale is not None and self.replicas_set:
            raise ConfigError("pixtral:replicas and pixtral:autoscale are both set; expected one of them: a fixed "
                              "number of replicas, or an autoscaled range (autoscale.minReplicas/maxReplicas)")
        if self.on_demand_base_replicas and not self.spot:
            raise setting_error("onDemandBaseReplicas", self.on_demand_base_replicas,
                                "0 unless pixtral:spot is true (without spot every replica is on-demand already)")
        if self.on_demand_base_replicas and not self.is_fleet:
            raise setting_error("onDemandBaseReplicas", self.on_demand_base_replicas,
                                "0 for one VM: it runs on spot capacity with pixtral:spot true, on on-demand capacity "
                                "with spot false; the on-demand base is a fleet's (pixtral:replicas above 1 or "
                                "pixtral:autoscale)")
        if self.on_demand_base_replicas > self.max_replicas:
            raise setting_error("onDemandBaseReplicas", self.on_demand_base_replicas,
                                f"at most the {self.max_replicas} replica(s) the fleet can have")
        if self.on_demand_base_replicas and self.on_demand_base_replicas == self.max_replicas:
            # Every replica would be on-demand: spot would be accepted and never used, and on GCP the fleet would be
            # one fixed on-demand group, with nothing left to autoscale.
            raise setting_error("onDemandBaseReplicas", self.on_demand_base_replicas,
                                f"fewer than the fleet's {self.max_replicas} replica(s) with pixtral:spot true, so "
                                "that some run on spot; for an all on-demand fleet set pixtral:spot false and remove "
                                "onDemandBaseReplicas")

        if self.internal and not self.is_fleet:
            # One VM is reached at its public address (an Elastic IP, a static external address), which its
            # certificate names: taking that away is a different VM, not a flag on this one.
            raise setting_error("internal", "true", "false for one VM: pixtral:internal takes the public address off "
                                "a fleet's load balancer (pixtral:replicas above 1 or pixtral:autoscale); one VM "
                                "keeps its public address, reachable from pixtral:allowedCidrs only")
        if self.warm_pool and not self.is_fleet:
            raise setting_error("warmPool", self.warm_pool, "0 for one VM: a warm pool stands beside a fleet "
                                "(pixtral:replicas above 1 or pixtral:autoscale)")
        if self.warm_pool and self.spot:
            # EC2 Auto Scaling refuses a warm pool on a group that launches spot instances (PutWarmPool).
            raise setting_error("warmPool", self.warm_pool, "0 with pixtral:spot true: EC2 Auto Scaling keeps warm "
                                "pools for on-demand groups only; drop spot or the warm pool")

    @property
    def min_replicas(self) -> int:
        return self.autoscale.min_replicas if self.autoscale else self.replicas

    @property
    def max_replicas(self) -> int:
        return self.autoscale.max_replicas if self.autoscale else self.replicas

    @property
    def is_fleet(self) -> bool:
        """More than one machine, or a number that changes: a load balancer in front, not a single VM."""
        return self.autoscale is not None or self.replicas > 1

    def describe(self) -> str:
        count = self.autoscale.describe() if self.autoscale else f"{self.replicas} replica(s)"
        if self.spot:
            count += f"; spot, with {self.on_demand_base_replicas} on on-demand capacity"
        if self.warm_pool:
            count += f"; {self.warm_pool} stopped instance(s) in a warm pool"
        return count
