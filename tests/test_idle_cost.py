"""The README's idle cost (its stacks table's column and the note on scale to zero) is what the program's own cost
estimate gives each shipped stack with no traffic, at the catalogue's list prices: the README holds no number of its
own (pixtralctl/review.py `idle_cost`, pixtral_deploy/catalog.py)."""

from __future__ import annotations

import json
import math
import re

import pytest
from conftest import PROJECT_DIR, STACKS, run_stack

from pixtral_deploy.catalog import HOURS_PER_MONTH, PRICES_READ_ON, list_price
from pixtralctl.review import NO_LIST_PRICE_CELL, idle_cost, readme_idle_cell

README = (PROJECT_DIR / "README.md").read_text()
ZERO = {"pixtral:onDemandBaseReplicas": "0",
        "pixtral:autoscale": json.dumps({"minReplicas": 0, "maxReplicas": 4, "targetQpsPerReplica": 2})}


def _stack_table() -> dict[str, str]:
    """Stack -> its idle-cost cell, read by the column's heading."""
    lines = [line for line in README.splitlines() if line.startswith("| ")]
    header = next(line for line in lines if line.startswith("| stack |"))
    column = [cell.strip() for cell in header.strip("|").split("|")].index("idle cost (no traffic, at the minimum)")
    rows = {}
    for line in lines:
        if match := re.match(r"^\| `([\w-]+)` \|", line):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            if len(cells) > column:
                rows[match.group(1)] = cells[column]
    return rows


def _ok(stack: str, settings: dict | None = None) -> dict:
    run = run_stack(stack, settings)
    assert run["error"] is None, run["error"]
    return run


@pytest.mark.parametrize("stack", STACKS)
def test_the_stacks_table_states_each_stacks_idle_cost_as_the_program_prices_it(stack):
    expected = readme_idle_cell(_ok(stack))
    assert _stack_table().get(stack) == expected, f"README's idle cost of {stack}: write {expected!r}"


@pytest.mark.parametrize("stack", ["aws-fleet", "gcp-fleet"])
def test_the_note_states_what_a_fleet_at_zero_still_costs(stack):
    (stated,) = re.findall(rf"<!-- idle-at-zero:{stack} -->(.*?)<!-- /idle-at-zero -->", README)
    assert stated == readme_idle_cell(_ok(stack, ZERO))


def test_the_note_dates_the_prices_it_used():
    (stated,) = re.findall(r"<!-- prices-read -->(.*?)<!-- /prices-read -->", README)
    assert stated == PRICES_READ_ON


def test_an_idle_aws_fleet_at_zero_pays_for_its_balancer_alone():
    cost = idle_cost(_ok("aws-fleet", ZERO))
    balancer = list_price("aws:alb", "us-east-1").usd + 2 * list_price("aws:public-ipv4", "us-east-1").usd
    assert math.isclose(cost.usd_per_hour, balancer) and cost.unpriced == ()


def test_an_idle_fleet_pays_for_its_minimum_of_replicas():
    one, two = (idle_cost(_ok("gcp-fleet", {"pixtral:autoscale": json.dumps(
        {"minReplicas": minimum, "maxReplicas": 4, "targetQpsPerReplica": 2})})) for minimum in (1, 2))
    spot_replica = list_price("gcp:g2-standard-24", "us-central1").spot_usd
    disk = list_price("gcp:pd-ssd", "us-central1").usd / HOURS_PER_MONTH * 500
    assert math.isclose(two.usd_per_hour - one.usd_per_hour, spot_replica + disk, rel_tol=1e-9)


def test_a_stack_on_an_existing_cluster_has_no_list_price():
    assert idle_cost(_ok("k8s")) is None and readme_idle_cell(_ok("k8s")) == NO_LIST_PRICE_CELL


def _marked(text: str, marker: str) -> str:
    (found,) = re.findall(rf"<!-- {marker} -->(.*?)<!-- /{marker.split(':')[0]} -->", text, re.S)
    return " ".join(found.strip("`").split())


@pytest.mark.parametrize("stack", ["aws-fleet", "gcp-fleet"])
def test_the_fleet_page_states_the_idle_cost_status_line_and_wake_timeout_the_program_gives(stack):
    from pixtral_deploy.fleet_plan import WakePlan
    from pixtralctl.status import FleetSize
    from pixtralctl.wake import AtZero

    fleets = (PROJECT_DIR / "docs" / "fleets.md").read_text()
    run = _ok(stack, ZERO)
    plan = WakePlan.from_output(run["outputs"]["scaleToZero"])
    assert _marked(fleets, f"idle-at-zero:{stack}") == readme_idle_cell(run)
    assert _marked(fleets, f"idle-line:{stack}") == AtZero(FleetSize("group", 0, 0), plan).line()
    assert _marked(fleets, f"wake-timeout:{stack}") == f"{plan.timeout_seconds} s"


def test_the_kubernetes_page_states_the_status_line_of_a_set_at_zero():
    from pixtral_deploy.fleet_plan import WakePlan
    from pixtralctl.status import FleetSize
    from pixtralctl.wake import AtZero

    at_zero = json.dumps({"minReplicas": 0, "maxReplicas": 3, "targetQueuePerReplica": 2})
    run = _ok("eks", {"pixtral:tls": "false", "pixtral:prometheusUrl": "http://prometheus.monitoring:9090",
                      "pixtral:autoscale": at_zero})
    plan = WakePlan.from_output(run["outputs"]["scaleToZero"])
    stated = _marked((PROJECT_DIR / "docs" / "kubernetes.md").read_text(), "idle-line:eks")
    assert stated == AtZero(FleetSize("set", 0, 0), plan).line()
