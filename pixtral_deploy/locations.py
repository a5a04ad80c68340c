"""Where the stack runs, checked against the catalogue before any resource is declared: `aws:region`, `gcp:zone`,
and provider settings of a cloud the target does not use.

What the catalogue rules out is refused (a region where a zone belongs, a zone Google's table says has no such GPU);
what it does not know is warned about, since the clouds open regions and zones the catalogue has not heard of.
"""

from __future__ import annotations

import difflib
import re

from .catalog import AWS_REGIONS, GPU_ZONES, gpu_zones, region_of

AWS_REGION_SHAPE = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+")
_GCP_REGION = re.compile(r"[a-z]+-[a-z]+[0-9]+")
_GCP_ZONE = re.compile(r"[a-z]+-[a-z]+[0-9]+-[a-z]")


def other_cloud_keys(keys: list[str], target: str | None) -> list[str]:
    """`aws:region` on a gcp stack (and the like): the program never reads it there, so it is refused by name. The
    provider namespaces each target reads are the target's (pixtral_deploy/targets)."""
    from . import targets

    chosen = targets.find(target)
    if chosen is None:
        return []
    users: dict[str, list[str]] = {}
    for each in targets.all_targets():
        for namespace in each.provider_namespaces:
            users.setdefault(namespace, []).append(each.name)
    return [f"{key} only applies to pixtral:target {' or '.join(sorted(users[key.split(':')[0]]))}, not to {target}: "
            "this stack never reads it; remove it from this stack"
            for key in keys if key.split(":")[0] in users and key.split(":")[0] not in chosen.provider_namespaces]


def aws_region_problems(region: str | None) -> tuple[list[str], list[str]]:
    """(errors, warnings) for aws:region: a malformed one is refused, one the catalogue lacks warned about."""
    if region is None or region in AWS_REGIONS:
        return [], []
    close = difflib.get_close_matches(region, AWS_REGIONS, n=2, cutoff=0.8)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    if not AWS_REGION_SHAPE.fullmatch(region):
        return [f"aws:region: {region!r} is not an AWS region name; expected one such as us-east-1{hint}"], []
    return [], [f"aws:region: {region} is not among the AWS regions the program knows{hint}; if it is a new "
                "region, check that it offers the instance type (aws ec2 describe-instance-type-offerings)"]


def gcp_zone_format_problems(zone: str | None) -> list[str]:
    """gcp:zone must be a zone: a region there would leave the VM (or a fleet's region) undefined."""
    if zone is None or _GCP_ZONE.fullmatch(zone):
        return []
    if _GCP_REGION.fullmatch(zone):
        example = (gpu_zones("nvidia-l4", zone) or (f"{zone}-a",))[0]
        return [f"gcp:zone: {zone} is a region, not a zone; expected a zone of it such as {example} (a fleet "
                "spreads over the region's zones that offer the GPU by itself)"]
    return [f"gcp:zone: {zone!r} is not a Compute Engine zone; expected one such as us-central1-a"]


def gcp_zone_gpu_problems(zone: str, gpu: str, in_that_zone: bool) -> tuple[list[str], list[str]]:
    """(errors, warnings) for the GPU in gcp:zone. `in_that_zone`: the GPUs are created in that very zone (a single
    VM, a GKE node pool); a fleet only takes the region from it."""
    region = region_of(zone)
    offered = gpu_zones(gpu, region)
    if offered is None:
        known = any(region in regions for regions in GPU_ZONES.values())
        why = "for that GPU" if known else "at all"
        return [], [f"gcp:zone: the catalogue does not list region {region} {why}, so it cannot tell whether {zone} "
                    f"offers {gpu}; check with `gcloud compute accelerator-types list --filter=\"zone:{zone}\"`"]
    if in_that_zone and zone not in offered:
        return [f"gcp:zone: {zone} does not offer {gpu} (Google's GPU regions and zones table); zones of {region} "
                f"that do: {', '.join(offered)}"], []
    return [], []
