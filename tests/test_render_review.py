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

from pixtral_deploy.catalog import LIST_PRICES, PRICES_READ_ON, list_price
from pixtralctl.render import KNOWN_AFTER_UP, RENDER_MARK, write_render
from pixtralctl.review import cost_section


def _render(stack: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(out.parent)}
    return subprocess.run([sys.executable, "-m", "pixtralctl", "render", "--stack", stack, "--out", str(out), *extra],
                          capture_output=True, text=True, cwd=PROJECT_DIR, env=env, timeout=300)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("stack", ["aws-fleet", "k8s-autoscale", "eks", "gcp-fleet"])
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
    # The root volume provisions 6000 IOPS and 1000 MiB/s; gp3's price includes 3000 and 125.
    assert "| root disk: 6000 IOPS, 3000 above the included 3000 | 1 | $0.005/IOPS-month | $0.021 |" in cost
    assert "| root disk: 1000 MiB/s, 875 above the included 125 | 1 | $0.04/MiB/s-month | $0.048 |" in cost
    assert "Total of what is priced: $1.956 an hour" in cost
    assert f"- https://aws.amazon.com/ec2/pricing/on-demand/ (Linux), read {PRICES_READ_ON}: us-east-1" in cost


def test_a_fleet_at_zero_costs_nothing_for_replicas_while_idle_but_its_warm_pools_disks(tmp_path):
    zero = {"pixtral:autoscale": '{"minReplicas": 0, "maxReplicas": 4, "targetQpsPerReplica": 1.5}',
            "pixtral:onDemandBaseReplicas": "0"}
    rows = _rows(_cost("aws-fleet", tmp_path / "zero", zero))
    spot = rows["g6e.xlarge spot replicas (the first of the group's types)"]
    assert spot[0] == "0 to 4" and _dollars(spot[2])[0] == 0.0
    warm = _rows(_cost("aws-fleet", tmp_path / "warm", {**zero, "pixtral:spot": "false", "pixtral:warmPool": "2",
                                                         "pixtral:instanceTypes": '["g6e.xlarge"]'}))
    pooled = [cells for item, cells in warm.items() if item.startswith("warm pool disks (stopped instances)")]
    assert pooled and all(cells[0] == "2" for cells in pooled), warm


def _rows(cost: str) -> dict[str, list[str]]:
    """The cost table as {item: [count, list price, per hour]}."""
    table = cost.split("| item | count | list price | per hour |", 1)[1].split("\n\n", 1)[0]
    cells = [line.strip("|").split(" | ") for line in table.strip().splitlines()[1:]]
    return {row[0].strip(): [cell.strip() for cell in row[1:]] for row in cells}


def _dollars(cell: str) -> tuple[float, float]:
    """'$0.000 to $3.374' or 'at most $1.861' -> (least, most)."""
    amounts = [float(x) for x in re.findall(r"\$(\d+\.\d+)", cell)]
    return amounts[0], amounts[-1]


def test_a_gcp_vm_costs_its_machine_type_disk_and_address_at_the_catalogues_prices(tmp_path):
    rows = _rows(_cost("gcp", tmp_path / "gcp"))
    machine = list_price("gcp:g2-standard-24", "us-central1")
    assert rows["g2-standard-24 VM (on-demand)"] == [
        "1", f"${machine.usd:g}/hour (Spot ${machine.spot_usd:g})", f"${machine.usd:.3f}"]
    # 500 GB of pd-ssd at $0.17 a GB-month, over 730 hours.
    assert rows["boot disk (500 GB pd-ssd)"] == ["1", "$0.17/GB-month", "$0.116"]
    assert rows["static external IPv4 address (in use on the VM)"] == ["1", "$0.005/hour", "$0.005"]


def test_an_internal_gcp_fleet_pays_for_no_external_address(tmp_path):
    rows = _rows(_cost("gcp-fleet", tmp_path / "internal", {"pixtral:internal": "true"}))
    assert not [item for item in rows if "IPv4" in item], rows
    # Google lists regional forwarding rules per region; the catalogue has none of them, and says so.
    assert rows["load balancer: regional forwarding rule"] == [
        "1", "no list price in the catalogue for us-central1", "not estimated"]


def test_a_gcp_fleet_prices_its_standard_group_on_demand_and_its_spot_group_at_the_spot_price(tmp_path):
    rows = _rows(_cost("gcp-fleet", tmp_path / "fleet"))
    machine = list_price("gcp:g2-standard-24", "us-central1")
    # onDemandBaseReplicas 1 of autoscale 1-4: one standard replica always, 0 to 3 on Spot.
    assert rows["g2-standard-24 replicas of pixtral-standard (on-demand)"][:2] == [
        "1", f"${machine.usd:g}/hour (Spot ${machine.spot_usd:g})"]
    spot = rows["g2-standard-24 replicas of pixtral-spot (Spot)"]
    assert spot[:2] == ["0 to 3", f"${machine.spot_usd:g}/hour Spot (on-demand ${machine.usd:g})"]
    assert _dollars(spot[2]) == (0.0, round(3 * machine.spot_usd, 3))
    assert rows["replica disks of pixtral-spot (500 GB pd-ssd)"][0] == "0 to 3"
    assert rows["load balancer: global forwarding rule"] == ["1", "$0.025/hour", "$0.025"]


def test_gke_counts_its_management_fee_and_each_node_pool_with_its_disks(tmp_path):
    rows = _rows(_cost("gke", tmp_path / "gke"))
    assert rows["GKE cluster management fee"] == ["1", "$0.1/hour", "$0.100"]
    assert rows["e2-standard-4 nodes of pixtral-system (on-demand)"][0] == "1"
    # The system pool sets no disk: GKE's defaults, 100 GB of pd-balanced at $0.10 a GB-month.
    assert rows["node disks of pixtral-system (100 GB pd-balanced)"] == ["1", "$0.1/GB-month", "$0.014"]
    gpu = rows["g2-standard-24 nodes of pixtral-gpu (on-demand)"]
    assert gpu[0] == "1 to 2" and _dollars(gpu[2]) == (2.001, 4.002)


@pytest.mark.parametrize("stack", ["gcp", "gcp-fleet", "gke", "aws-fleet", "eks"])
def test_the_total_is_the_sum_of_the_rows(stack, tmp_path):
    cost = _cost(stack, tmp_path / stack)
    priced = [_dollars(cells[2]) for cells in _rows(cost).values() if cells[2] != "not estimated"]
    least, most = sum(low for low, _ in priced), sum(high for _, high in priced)
    total = re.search(r"Total of what is priced: \$(\d+\.\d+)(?: to \$(\d+\.\d+))? an hour", cost)
    assert total, cost
    # Each row is rounded to a tenth of a cent, so the sum of the rows may differ from the total by that much a row.
    assert abs(float(total[1]) - least) <= 0.0005 * len(priced) + 1e-9, (total[0], least)
    assert abs(float(total[2] or total[1]) - most) <= 0.0005 * len(priced) + 1e-9, (total[0], most)


@pytest.mark.parametrize("stack", ["eks", "gcp-fleet", "gke"])
def test_the_cost_does_not_depend_on_the_order_the_engine_registered_resources(stack):
    # The engine registers resources as their inputs resolve: two runs may list two node groups either way round.
    run = run_stack(stack)
    reordered = dict(run, resources=list(reversed(run["resources"])))
    assert cost_section(reordered) == cost_section(run)


def test_aws_spot_is_counted_at_its_ceiling_the_on_demand_price(tmp_path):
    cost = _cost("aws-fleet", tmp_path / "fleet")
    rows = _rows(cost)
    assert rows["g6e.xlarge on-demand replicas (the first of the group's types)"] == ["1", "$1.861/hour", "$1.861"]
    assert rows["g6e.xlarge spot replicas (the first of the group's types)"] == [
        "0 to 3", "spot: the market price, at most the on-demand $1.861/hour", "at most $0.000 to $5.583"]
    assert "AWS spot capacity counted at its ceiling" in cost and "Application Load Balancer" in rows
    # Every replica and each of the balancer's two zones holds a public IPv4 address.
    assert rows["public IPv4 address of each replica"] == ["1 to 4", "$0.005/hour", "$0.005 to $0.020"]
    assert rows["public IPv4 addresses of the load balancer (one a zone)"] == ["2", "$0.005/hour", "$0.010"]
    single = _rows(_cost("aws", tmp_path / "spot", {"pixtral:spot": "true"}))
    assert single["g6e.xlarge (spot)"][2] == "at most $1.861"


def test_clusters_count_their_control_plane(tmp_path):
    assert "| EKS control plane | 1 | $0.1/hour | $0.100 |" in _cost("eks", tmp_path / "eks")
    assert "| GKE cluster management fee | 1 | $0.1/hour | $0.100 |" in _cost("gke", tmp_path / "gke")


@pytest.mark.parametrize(("stack", "settings", "region"), [
    ("gcp", {"gcp:zone": "me-west1-a"}, "me-west1"),
    ("aws", {"aws:region": "eu-west-1"}, "eu-west-1"),
])
def test_a_region_without_a_price_says_so_and_borrows_none(stack, settings, region, tmp_path):
    cost = _cost(stack, tmp_path / stack, settings)
    rows = _rows(cost)
    assert rows and all(cells[1:] == [f"no list price in the catalogue for {region}", "not estimated"]
                        for cells in rows.values()), rows
    assert "No item of this stack has a price in the catalogue" in cost and f"read {PRICES_READ_ON}" in cost


def test_a_cluster_the_program_did_not_make_is_described_not_priced(tmp_path):
    cost = _cost("k8s-autoscale", tmp_path / "k8s")
    assert "creates no cloud resources" in cost and "$" not in cost
    assert "- 1 to 4 (autoscaled) pod(s), each holding 1 GPU(s) (nvidia-l40s) of a GPU node" in cost
    assert "- a 100Gi volume per pod (cache)" in cost


def test_every_catalogue_price_names_its_source_region_and_day():
    for (item, region), price in LIST_PRICES.items():
        assert price.source.startswith("https://"), (item, price.source)
        assert price.region == region and re.fullmatch(r"global|[a-z]+-[a-z]+(\d+|-\d+)", region), (item, region)
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", price.read_on), (item, price.read_on)
        assert price.unit in ("hour", "GB-month", "IOPS-month", "MiB/s-month") and price.usd > 0
        assert price.spot_usd is None or 0 < price.spot_usd < price.usd, (item, region)


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


def test_render_into_a_pipe_that_closes_early_ends_quietly(tmp_path):
    # `pixtralctl render ... | head -1`: the reader leaves after the first line; the rest is not a crash.
    render = subprocess.Popen([sys.executable, "-m", "pixtralctl", "render", "--stack", "aws", "--out",
                               str(tmp_path / "out")], cwd=PROJECT_DIR, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    first = render.stdout.readline()
    render.stdout.close()
    stderr = render.stderr.read()
    assert render.wait(timeout=300) == 0
    assert first.startswith("rendering stack aws")
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


@pytest.mark.parametrize("stack", ["aws", "gcp-fleet"])
def test_the_review_shows_the_first_boot_and_the_later_boots(stack, tmp_path):
    from pixtral_deploy.coldstart import boot_paths
    from pixtral_deploy.spec import load_spec

    run = run_stack(stack)
    write_render(run, tmp_path)
    section = _section((tmp_path / "resources.md").read_text(), "Cold start: which path a boot takes")
    spec = load_spec({k.split(":", 1)[1]: v for k, v in run["config"].items() if k.startswith("pixtral:")})
    first, later = boot_paths(spec)
    assert section.strip().splitlines() == [f"- {first}", f"- {later}"]
    assert "first boot (the stack's first VM" in first and "later boots (scale-out, replacement" in later
    assert f"info: {later}" in (tmp_path / "program.log").read_text().splitlines()


def test_a_kubernetes_review_has_no_vm_cold_start(tmp_path):
    write_render(run_stack("k8s"), tmp_path)
    assert "## Cold start" not in (tmp_path / "resources.md").read_text()
