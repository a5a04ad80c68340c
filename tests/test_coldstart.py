"""The cold-start estimate: a pure function of the catalog's network and storage numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import VM_STACKS, run_stack, stacks_of

from pixtral_deploy import targets
from pixtral_deploy.catalog import DEFAULT_MODEL, MACHINE_TYPES, model_download_gb
from pixtral_deploy.coldstart import (
    PIP_OVER_UV,
    UV_INSTALL_SECONDS,
    download_seconds,
    estimate_cold_start,
    estimate_recipe_path,
    load_seconds,
    readme_row,
)
from pixtral_deploy.storage import LOCAL_NVME, gp3, pd_balanced, pd_ssd, vm_storage

COLD_START_PAGE = (Path(__file__).resolve().parent.parent / "docs" / "vms.md").read_text()
PIXTRAL_GB = model_download_gb(DEFAULT_MODEL)


@pytest.mark.parametrize("gbps,storage,seconds", [
    (20, LOCAL_NVME, 20.3),        # 20 Gbit/s at 50 %: 1.25 GB/s, the NVMe writes faster
    (100, LOCAL_NVME, 12.1),       # the network outruns the disk: 2,000 MiB/s bounds it
    (20, gp3(125), 193.8),         # gp3's default throughput bounds it
    (32, pd_ssd(200), 264.6),      # pd-ssd at 0.48 MB/s per GB
])
def test_download_is_bound_by_the_slower_of_network_and_disk(gbps, storage, seconds):
    assert download_seconds(PIXTRAL_GB, gbps, storage) == pytest.approx(seconds, abs=0.1)


@pytest.mark.parametrize("storage,seconds", [(LOCAL_NVME, 13.1), (gp3(1000), 29.2), (pd_balanced(256), 359.4)])
def test_load_reads_the_weights_from_where_they_are(storage, seconds):
    assert load_seconds(PIXTRAL_GB, storage) == pytest.approx(seconds, abs=0.1)


def test_install_and_download_overlap_in_the_boot_plan_but_not_in_the_recipe():
    machine = MACHINE_TYPES["g6e.xlarge"]
    ours = estimate_cold_start(machine, PIXTRAL_GB, LOCAL_NVME)
    assert ours.total == ours.boot + max(ours.install, ours.download) + ours.load + ours.warmup
    recipe = estimate_recipe_path(machine, PIXTRAL_GB, gp3(125))
    assert recipe.install == UV_INSTALL_SECONDS * PIP_OVER_UV
    assert recipe.total == recipe.boot + recipe.install + recipe.download + recipe.load + recipe.warmup
    assert ours.total < recipe.total / 4


def test_storage_follows_the_catalog():
    assert vm_storage(MACHINE_TYPES["g6e.xlarge"], 200) == LOCAL_NVME
    assert vm_storage(MACHINE_TYPES["g2-standard-24"], 500).name == "pd-ssd 500 GB"
    assert vm_storage(MACHINE_TYPES["a3-highgpu-8g"], 500) == LOCAL_NVME


def test_describe_names_machine_total_and_phases():
    text = estimate_cold_start(MACHINE_TYPES["g6e.xlarge"], PIXTRAL_GB, LOCAL_NVME).describe()
    assert re.match(r"g6e\.xlarge: about \d+ s from boot to first answer; boot \d+ s, install \d+ s alongside "
                    r"download \d+ s, load \d+ s, warm-up \d+ s \(weights on local NVMe\); an estimate from the "
                    r"catalogue's network and disk speeds, not a measurement", text), text


@pytest.mark.parametrize("stack", VM_STACKS)
def test_pulumi_up_log_and_readme_show_the_estimate_for_each_vm_stack(stack):
    run = run_stack(stack)
    (line,) = [entry for entry in run["log"] if "from boot to first answer" in entry]
    config = run["config"]
    disk = int(config.get("pixtral:diskSizeGb", 200))
    # A fleet's candidates: the estimate shown is the slowest one's (what the health-check grace must cover).
    names = json.loads(config["pixtral:instanceTypes"]) if "pixtral:instanceTypes" in config else [
        config.get("pixtral:instanceType") or config.get("pixtral:machineType")]
    estimates = [estimate_cold_start(MACHINE_TYPES[n], PIXTRAL_GB, vm_storage(MACHINE_TYPES[n], disk)) for n in names]
    slowest = max(estimates, key=lambda estimate: estimate.total)
    machine = MACHINE_TYPES[slowest.machine]
    assert line == "info: " + slowest.describe()
    row = readme_row(stack, machine, disk, "mistralai/Pixtral-12B-2409")
    assert row in COLD_START_PAGE, f"docs/vms.md's cold-start table is stale; expected the row:\n{row}"


def test_kubernetes_stacks_log_no_vm_estimate():
    for stack in stacks_of(*targets.of_platform("kubernetes")):
        assert not [entry for entry in run_stack(stack)["log"] if "from boot to first answer" in entry]
