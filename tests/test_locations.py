"""Regions and zones are checked against the catalogue before any resource: what it rules out is refused by name,
what it does not know is warned about; a provider setting of a cloud the target does not use is refused."""

from __future__ import annotations

import pytest
from conftest import run_stack

# (stack, settings, words the one-line refusal must hold: the key, the value, what is allowed)
REFUSED = [
    ("gcp", {"gcp:zone": "us-central1"}, ["gcp:zone", "us-central1 is a region, not a zone", "us-central1-a"]),
    ("gcp-fleet", {"gcp:zone": "us-central1"}, ["gcp:zone", "us-central1 is a region", "us-central1-a"]),
    ("gke", {"gcp:zone": "europe-west4"}, ["gcp:zone", "europe-west4 is a region", "europe-west4-a"]),
    ("gcp", {"gcp:zone": "us central"}, ["gcp:zone", "'us central' is not a Compute Engine zone", "us-central1-a"]),
    # Google's table lists us-east4-a and -c for L4: a single VM (and a GKE node pool) is made in the zone itself.
    ("gcp", {"gcp:zone": "us-east4-b"}, ["gcp:zone", "us-east4-b does not offer nvidia-l4", "us-east4-a, us-east4-c"]),
    ("gke", {"gcp:zone": "us-east4-b"}, ["gcp:zone", "us-east4-b does not offer nvidia-l4", "us-east4-a"]),
    ("aws", {"aws:region": "useast1"}, ["aws:region", "'useast1' is not an AWS region name", "us-east-1"]),
    ("eks", {"aws:region": "Frankfurt"}, ["aws:region", "'Frankfurt'", "us-east-1"]),
    ("gcp", {"aws:region": "us-east-1"}, ["aws:region only applies to pixtral:target aws or eks, not to gcp",
                                          "remove it"]),
    ("k8s", {"gcp:zone": "us-central1-a"}, ["gcp:zone only applies to pixtral:target gcp or gke, not to kubernetes",
                                            "remove it"]),
    ("aws", {"gcp:project": "mine"}, ["gcp:project only applies to pixtral:target gcp or gke, not to aws"]),
]


@pytest.mark.parametrize(("stack", "settings", "words"), REFUSED, ids=[f"{s}-{v}" for s, v, _ in REFUSED])
def test_an_impossible_location_is_refused_by_name_before_any_resource(stack, settings, words):
    run = run_stack(stack, settings)
    assert run["error"], f"{stack} with {settings} rendered"
    (line,) = [line for line in run["error"].splitlines() if words[0] in line]
    for word in words:
        assert word in line, line
    assert not [r for r in run["resources"] if not r["type"].startswith("pulumi:")], "resources were declared"


WARNED = [
    ("aws", {"aws:region": "us-east-9"}, ["aws:region: us-east-9 is not among the AWS regions", "us-east-1"]),
    ("gcp", {"gcp:zone": "asia-south1-a"}, ["gcp:zone", "region asia-south1", "cannot tell whether asia-south1-a "
                                                                              "offers nvidia-l4", "gcloud"]),
]


@pytest.mark.parametrize(("stack", "settings", "words"), WARNED, ids=[f"{s}-{v}" for s, v, _ in WARNED])
def test_a_location_the_catalogue_does_not_know_renders_with_a_warning(stack, settings, words):
    run = run_stack(stack, settings)
    assert run["error"] is None, run["error"]
    (warning,) = [line for line in run["log"] if line.startswith("warning:") and words[0] in line]
    for word in words:
        assert word in warning, warning


def test_a_known_location_gives_no_location_warning():
    for stack in ("aws", "gcp", "gke", "eks", "gcp-fleet"):
        run = run_stack(stack)
        assert not [line for line in run["log"] if "aws:region" in line or "gcp:zone" in line], run["log"]


def test_a_fleet_takes_only_the_region_from_a_zone_without_the_gpu():
    # The fleet's regional group spreads over the region's zones that offer the GPU; gcp:zone only names the region.
    run = run_stack("gcp-fleet", {"gcp:zone": "us-east4-b"})
    assert run["error"] is None, run["error"]
    assert run["outputs"]["zones"] == ["us-east4-a", "us-east4-c"]
