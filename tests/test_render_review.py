"""`pixtralctl render` as a review a person can read: the same stack renders byte for byte the same, a render
replaces the one before it, every table row is one line, made-up values look made up, derived numbers say where
they come from, and the cost of the stack is estimated at dated list prices."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PROJECT_DIR, run_stack

from pixtral_deploy.catalog import PRICES_READ_ON
from pixtralctl.render import KNOWN_AFTER_UP, RENDER_MARK, write_render


def _render(stack: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(out.parent)}
    return subprocess.run([sys.executable, "-m", "pixtralctl", "render", "--stack", stack, "--out", str(out), *extra],
                          capture_output=True, text=True, cwd=PROJECT_DIR, env=env, timeout=300)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("stack", ["aws-fleet", "k8s-autoscale"])
def test_two_renders_of_a_stack_are_byte_identical(stack, tmp_path):
    for name in ("first", "second"):
        done = _render(stack, tmp_path / name)
        assert done.returncode == 0, done.stdout + done.stderr
    first, second = _files(tmp_path / "first"), _files(tmp_path / "second")
    assert list(first) == list(second)
    changed = [name for name in first if first[name] != second[name]]
    assert not changed, f"files that differ between two renders: {changed}"


def test_a_render_into_an_earlier_render_replaces_it(tmp_path):
    out = tmp_path / "render"
    assert _render("k8s", out).returncode == 0
    assert (out / "manifests").is_dir()
    done = _render("aws", out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (out / "manifests").exists(), "the k8s render's manifests were left behind"
    assert "Stack `aws`" in (out / "resources.md").read_text()


def test_a_folder_that_is_not_a_render_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.md").write_text("mine")
    done = _render("aws", out)
    assert done.returncode == 2
    assert "holds files that are not a render (notes.md" in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["notes.md"]


def _table_lines(resources_md: str) -> list[str]:
    section = resources_md.split("| type | name | key settings |", 1)[1].split("\n\n", 1)[0]
    return section.strip().splitlines()[1:]


def test_a_pem_never_breaks_the_resources_table(tmp_path):
    # The fleet's load balancer imports the stack CA's certificate chain: a PEM of many lines.
    run = run_stack("aws-fleet")
    write_render(run, tmp_path)
    lines = _table_lines((tmp_path / "resources.md").read_text())
    assert len(lines) == len(run["resources"]), "a row spills over more than one line"
    assert all(line.startswith("| `") and line.endswith(" |") for line in lines)
    (chain,) = [line for line in lines if "aws:acm/certificate:Certificate" in line]
    assert re.search(r"certificateChain=<PEM certificate, \d+ lines>", chain), chain


def test_looked_up_ids_look_made_up(tmp_path):
    write_render(run_stack("aws"), tmp_path)
    (vm,) = [line for line in (tmp_path / "resources.md").read_text().splitlines() if "aws:ec2/instance" in line]
    assert f"ami={KNOWN_AFTER_UP}" in vm and f"subnetId={KNOWN_AFTER_UP}" in vm
    assert not re.search(r"\b(ami|subnet|vpc|i)-0[0-9a-f]+", (tmp_path / "resources.md").read_text())


def _section(text: str, heading: str) -> str:
    return text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]


def test_derived_numbers_say_where_they_come_from(tmp_path):
    run = run_stack("aws-fleet")
    write_render(run, tmp_path / "fleet")
    numbers = _section((tmp_path / "fleet" / "resources.md").read_text(), "Where the numbers come from")
    (group,) = [r for r in run["resources"] if r["type"] == "aws:lb/targetGroup:TargetGroup"]
    delay = group["inputs"]["deregistrationDelay"]
    assert f"deregistrationDelay {delay} s" in numbers and "maxModelLen 32768 tokens at 10 tokens/s" in numbers
    assert delay == 3300, "the whole 32k context at 10 tokens/s, rounded up to a minute"
    assert "an estimate" in numbers and "not a measurement" in numbers
    run = run_stack("k8s")
    write_render(run, tmp_path / "k8s")
    numbers = _section((tmp_path / "k8s" / "resources.md").read_text(), "Where the numbers come from")
    (pods,) = [r for r in run["resources"] if r["type"] == "kubernetes:apps/v1:StatefulSet"]
    grace = pods["inputs"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert f"terminationGracePeriodSeconds {grace} s: preStop sleep" in numbers


def _cost(stack: str, folder: Path, settings: dict[str, str] | None = None) -> str:
    write_render(run_stack(stack, settings), folder)
    return _section((folder / "resources.md").read_text(), "Cost")


def test_cost_is_an_hourly_estimate_at_dated_list_prices(tmp_path):
    cost = _cost("aws", tmp_path / "aws")
    assert f"list prices (us-east-1, read {PRICES_READ_ON})" in cost
    assert "| g6e.xlarge (on-demand) | 1 | $1.861/hour | $1.861 |" in cost
    assert "| root disk (200 GB gp3) | 1 | $0.08/GB-month | $0.022 |" in cost
    assert "Total of what is priced: $1.888 an hour" in cost and "Sources: AWS EC2 On-Demand pricing" in cost


def test_a_fleet_at_zero_costs_its_balancer_and_its_warm_pools_disks_while_idle(tmp_path):
    zero = {"pixtral:autoscale": '{"minReplicas": 0, "maxReplicas": 4, "targetQpsPerReplica": 1.5}',
            "pixtral:onDemandBaseReplicas": "0"}
    cost = _cost("aws-fleet", tmp_path / "zero", zero)
    assert "| 0 to 4 | $1.861/hour | $0.000 to $7.444 |" in cost
    warm = _cost("aws-fleet", tmp_path / "warm", {**zero, "pixtral:spot": "false", "pixtral:warmPool": "2",
                                                  "pixtral:instanceTypes": '["g6e.xlarge"]'})
    assert "| warm pool disks (stopped instances) (200 GB gp3) | 2 | $0.08/GB-month | $0.044 |" in warm


def test_a_fleet_costs_a_range_from_its_minimum_to_its_maximum(tmp_path):
    cost = _cost("aws-fleet", tmp_path / "fleet")
    assert "| 1 to 4 | $1.861/hour | $1.861 to $7.444 |" in cost
    assert "Application Load Balancer" in cost


def test_clusters_count_their_control_plane(tmp_path):
    assert "| EKS control plane | 1 | $0.1/hour | $0.100 |" in _cost("eks", tmp_path / "eks")
    assert "| GKE cluster management fee | 1 | $0.1/hour | $0.100 |" in _cost("gke", tmp_path / "gke")


def test_a_price_the_catalogue_lacks_is_said_to_be_missing_not_guessed(tmp_path):
    cost = _cost("gcp", tmp_path / "gcp")
    assert "| g2-standard-24 VM | 1 | no list price in the catalogue | not estimated |" in cost
    assert "spot: market price" in _cost("aws", tmp_path / "spot", {"pixtral:spot": "true"})
    assert "does not price" in _cost("k8s", tmp_path / "k8s")


def test_render_says_what_it_does_before_the_program_runs(tmp_path):
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "pixtralctl", "render", "--stack", "aws", "--out",
                                str(tmp_path / "out")], stdout=subprocess.PIPE, text=True, cwd=PROJECT_DIR)
    first = process.stdout.readline()
    first_at = time.monotonic() - started
    rest = process.stdout.read()
    assert process.wait(timeout=300) == 0
    total = time.monotonic() - started
    assert first.startswith("rendering stack aws (") and "no credentials" in first
    # Before the providers load and the program runs: at once, and a small part of the whole render.
    assert first_at < 2 and first_at < total / 4, (first_at, total)
    assert rest.splitlines()[-1].endswith(RENDER_MARK) or "rendered stack aws:" in rest
