"""The cold-start estimate: a pure function of the catalog's network and storage numbers."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from conftest import VM_STACKS, run_stack

from pixtral_deploy.catalog import DEFAULT_MODEL, MACHINE_TYPES, model_download_gb
from pixtral_deploy.coldstart import (
    BOOT_SECONDS,
    CACHED_WARMUP_SECONDS,
    COMPILE_CACHE_GB,
    PIP_OVER_UV,
    STREAMED,
    THROUGH_THE_DISK,
    UV_INSTALL_SECONDS,
    VENV_GB,
    WARMUP_SECONDS,
    cold_start,
    download_seconds,
    estimate_cold_start,
    estimate_later_boot,
    estimate_recipe_path,
    fetch_seconds,
    later_boot,
    later_boot_row,
    load_seconds,
    readme_row,
    stream_seconds,
    streamed_load_seconds,
    upload_seconds,
    warm_starts,
)
from pixtral_deploy.spec import load_spec
from pixtral_deploy.storage import LOCAL_NVME, MIB, gcp_local_ssd, gp3, pd_balanced, pd_ssd, root_disk, vm_storage

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


def test_the_first_boots_install_compiles_the_bytecode_on_every_vcpu():
    # The install spends the compile the server user could not (userdata/install-vllm.sh): more on 4 vCPUs than on 48.
    small, large = MACHINE_TYPES["g6e.xlarge"], MACHINE_TYPES["g6e.12xlarge"]
    assert (small.vcpus, large.vcpus) == (4, 48)
    assert estimate_cold_start(small, PIXTRAL_GB, LOCAL_NVME).install > \
        estimate_cold_start(large, PIXTRAL_GB, LOCAL_NVME).install > UV_INSTALL_SECONDS


def test_storage_follows_the_catalog():
    assert vm_storage(MACHINE_TYPES["g6e.xlarge"], 200) == LOCAL_NVME
    # G2 takes Local SSD on request (g2-standard-24 its table's two disks); the boot stripes them, so the cache gets
    # both disks' 660 MiB/s of reads and 350 MiB/s of writes.
    assert vm_storage(MACHINE_TYPES["g2-standard-24"], 500) == gcp_local_ssd(2)
    assert gcp_local_ssd(1).read_mibs == 660 and gcp_local_ssd(1).write_mibs == 350
    assert gcp_local_ssd(2).read_mibs == 1320 and gcp_local_ssd(2).write_mibs == 700
    assert vm_storage(MACHINE_TYPES["g2-standard-4"], 500).name == "local SSD"
    assert vm_storage(MACHINE_TYPES["a3-highgpu-8g"], 500) == gcp_local_ssd(16)
    assert vm_storage(MACHINE_TYPES["p4d.24xlarge"], 500).name == "8 local NVMe disks striped"
    # A type without local disks keeps the weights on its pd-ssd boot disk.
    assert vm_storage(MACHINE_TYPES["a2-highgpu-1g"], 500).name == "pd-ssd 500 GB"


def test_the_local_ssds_make_gcps_first_boot_faster_than_its_boot_disk():
    machine = MACHINE_TYPES["g2-standard-24"]
    on_ssd = estimate_cold_start(machine, PIXTRAL_GB, vm_storage(machine, 500))
    on_boot_disk = estimate_cold_start(machine, PIXTRAL_GB, pd_ssd(500))
    # Two Local SSDs striped: 700 MiB/s of writes, 1,320 MiB/s of reads, against pd-ssd's ~229.
    assert on_ssd.download < on_boot_disk.download * 2 / 3 and on_ssd.load < on_boot_disk.load / 2


def test_every_local_disk_the_catalogue_counts_adds_its_speed_to_the_cache():
    for machine in MACHINE_TYPES.values():
        assert (machine.local_nvme_disks > 0) == (machine.local_nvme_gb > 0), machine.name
        if machine.local_ssds_to_attach:
            assert machine.local_nvme_disks == machine.local_ssds_to_attach, "the boot stripes every disk it asks for"
    for name, per_disk in (("g2-standard-24", gcp_local_ssd(1)), ("g6.12xlarge", LOCAL_NVME)):
        machine = MACHINE_TYPES[name]
        cache = vm_storage(machine, 500)
        assert (cache.read_mibs, cache.write_mibs) == (per_disk.read_mibs * machine.local_nvme_disks,
                                                       per_disk.write_mibs * machine.local_nvme_disks)


@pytest.mark.parametrize("name", ["g2-standard-24", "g6.12xlarge"])
def test_a_type_with_several_local_disks_boots_faster_than_with_one(name):
    several = MACHINE_TYPES[name]
    one = dataclasses.replace(several, local_nvme_disks=1, local_ssds_to_attach=min(several.local_ssds_to_attach, 1))
    striped, single = vm_storage(several, 500), vm_storage(one, 500)
    disks = several.local_nvme_disks
    # The load reads the weights at the array's speed: the disks' count times one disk's.
    read_time = PIXTRAL_GB * 1e9 / (single.read_mibs * MIB)
    assert load_seconds(PIXTRAL_GB, single) - load_seconds(PIXTRAL_GB, striped) == pytest.approx(
        read_time - read_time / disks)
    first = [estimate_cold_start(m, PIXTRAL_GB, vm_storage(m, 500)) for m in (several, one)]
    later = [estimate_later_boot(m, PIXTRAL_GB, vm_storage(m, 500), vm_storage(m, 500)) for m in (several, one)]
    assert first[0].total < first[1].total
    # A streamed later boot writes only the venv and compile cache to the disks (hashing may bound those): never
    # slower on the array; the weights through hub.tar cross it twice, and gain.
    assert later[0].total <= later[1].total and later[0].other_total < later[1].other_total


def test_describe_names_machine_total_and_phases():
    text = estimate_cold_start(MACHINE_TYPES["g6e.xlarge"], PIXTRAL_GB, LOCAL_NVME).describe()
    assert re.match(r"g6e\.xlarge: about \d+ s from boot to first answer; boot \d+ s, install \d+ s alongside "
                    r"download \d+ s, load \d+ s, warm-up \d+ s \(weights on local NVMe\); an estimate from the "
                    r"catalogue's network and disk speeds, not a measurement", text), text


def _spec(run: dict):
    return load_spec({key.split(":", 1)[1]: value for key, value in run["config"].items()
                      if key.startswith("pixtral:")})


@pytest.mark.parametrize("stack", VM_STACKS)
def test_pulumi_up_log_and_readme_show_the_estimate_for_each_vm_stack(stack):
    run = run_stack(stack)
    first, later = [entry for entry in run["log"] if "from boot to first answer" in entry]
    config = run["config"]
    disk = int(config.get("pixtral:diskSizeGb", 200))
    # A fleet's candidates: the estimate shown is the slowest one's (what the health-check grace must cover).
    names = json.loads(config["pixtral:instanceTypes"]) if "pixtral:instanceTypes" in config else [
        config.get("pixtral:instanceType") or config.get("pixtral:machineType")]
    store = warm_starts(_spec(run))
    estimates = [estimate_cold_start(MACHINE_TYPES[n], PIXTRAL_GB, vm_storage(MACHINE_TYPES[n], disk), store=store)
                 for n in names]
    slowest = max(estimates, key=lambda estimate: estimate.total)
    machine = MACHINE_TYPES[slowest.machine]
    assert first.startswith("info: first boot (the stack's first VM") and first.endswith(": " + slowest.describe())
    assert later.startswith("info: later boots (scale-out, replacement, wake, rollout), from the stack's artefact "
                            "store: ")
    assert later.endswith(": " + later_boot(_spec(run)).describe())
    row = readme_row(stack, machine, disk, "mistralai/Pixtral-12B-2409")
    assert row in COLD_START_PAGE, f"docs/vms.md's cold-start table is stale; expected the row:\n{row}"
    row = later_boot_row(stack, machine, disk, "mistralai/Pixtral-12B-2409")
    assert any(line.startswith(row) for line in COLD_START_PAGE.splitlines()), (
        f"docs/vms.md's later-boots table is stale; expected a row starting:\n{row}")


# Issue #26's targets for a boot from the artefact store.
LATER_BOOT_TARGET_SECONDS = {"aws": 90, "aws-fleet": 90, "gcp": 120, "gcp-fleet": 120}


@pytest.mark.parametrize("stack", ["aws", "aws-fleet", "gcp", "gcp-fleet"])
def test_later_boots_meet_the_issues_targets(stack):
    later = later_boot(_spec(run_stack(stack)))
    assert later.total <= LATER_BOOT_TARGET_SECONDS[stack], later.describe()
    assert later.total < estimate_cold_start(MACHINE_TYPES[later.machine], PIXTRAL_GB, vm_storage(
        MACHINE_TYPES[later.machine], int(run_stack(stack)["config"].get("pixtral:diskSizeGb", 200))), store=True).total


def test_a_later_boot_fetches_venv_and_compile_cache_and_warms_up_from_the_cache():
    machine, root = MACHINE_TYPES["g6e.xlarge"], gp3(1000)
    later = estimate_later_boot(machine, PIXTRAL_GB, LOCAL_NVME, root)
    # The weights as the boot takes them: the venv and compile cache fetched, the weights streamed by vLLM.
    assert later.weights == STREAMED
    assert later.fetch == fetch_seconds(machine, root, LOCAL_NVME)
    assert later.load == streamed_load_seconds(PIXTRAL_GB, machine.network_gbps)
    assert later.total == BOOT_SECONDS + later.fetch + later.load + CACHED_WARMUP_SECONDS
    # Every later boot warms up from the cache the first boot published: none of them compiles.
    assert "from the cached compile the first boot published" in later.describe()
    # hub.tar beside it: alongside the venv onto the NVMe, then loaded from it.
    assert later.other_total == pytest.approx(BOOT_SECONDS + CACHED_WARMUP_SECONDS + fetch_seconds(
        machine, root, LOCAL_NVME, PIXTRAL_GB) + load_seconds(PIXTRAL_GB, LOCAL_NVME))
    assert "from the stack's S3 bucket" in later.describe() and "neither PyPI nor Hugging Face" in later.describe()


@pytest.mark.parametrize("name", sorted(MACHINE_TYPES))
def test_the_later_boot_is_the_way_the_boot_takes_the_weights_with_the_streamer_beside_it(name):
    machine = MACHINE_TYPES[name]
    later = estimate_later_boot(machine, PIXTRAL_GB, vm_storage(machine, 500), root_disk(machine, 500))
    assert later.weights == STREAMED and THROUGH_THE_DISK in later.describe()
    # Why the boot streams (docs/vms.md): the faster on every catalogued type (no disk pass for the weights).
    assert later.total <= later.other_total


def test_with_a_store_the_first_boot_uploads_the_weights_beside_the_install_then_streams_them():
    machine = MACHINE_TYPES["g6e.xlarge"]
    first = estimate_cold_start(machine, PIXTRAL_GB, LOCAL_NVME, store=True)
    alone = estimate_cold_start(machine, PIXTRAL_GB, LOCAL_NVME)
    # The same install and download; then the upload, read from the NVMe through a SHA-256 at 1.8 GB/s (under the
    # network's 1.875 GB/s and the disk's 2,000 MiB/s of reads); then vLLM streams the weights and compiles.
    assert (first.install, first.download) == (alone.install, alone.download)
    assert first.upload == pytest.approx(PIXTRAL_GB / 1.8)
    assert first.load == streamed_load_seconds(PIXTRAL_GB, machine.network_gbps)
    assert first.warmup == alone.warmup == WARMUP_SECONDS
    assert first.total == pytest.approx(
        BOOT_SECONDS + max(first.install, first.download + first.upload) + first.load + WARMUP_SECONDS)
    # On g6e the upload hides behind the install: only the streamed load's few seconds more than the disk's show.
    assert first.download + first.upload < first.install
    assert first.total - alone.total == pytest.approx(first.load - alone.load)
    assert "download 20 s then upload to the stack's S3 bucket 14 s, weights streamed from the bucket 19 s" in \
        first.describe(), first.describe()


def test_gcps_first_boot_waits_for_its_upload_hashed_without_sha_extensions():
    machine = MACHINE_TYPES["g2-standard-24"]
    storage = vm_storage(machine, 500)
    first = estimate_cold_start(machine, PIXTRAL_GB, storage, store=True)
    # Cascade Lake hashes at 0.54 GB/s: slower than the two local SSDs' reads and the network's share.
    assert upload_seconds(PIXTRAL_GB, machine, storage) == pytest.approx(PIXTRAL_GB / 0.54)
    assert first.download + first.upload > first.install
    assert first.total == pytest.approx(BOOT_SECONDS + first.download + first.upload + first.load + WARMUP_SECONDS)
    assert "GCS bucket" in first.describe()


@pytest.mark.parametrize("stack", ["aws", "aws-fleet", "gcp", "gcp-fleet"])
def test_the_first_boot_with_its_store_costs_little_more_than_without(stack):
    # Publishing before the load moves the upload onto the first boot's path: kept within 20 s on every shipped stack.
    spec = _spec(run_stack(stack))
    with_store = cold_start(spec)
    without = cold_start(_spec(run_stack(stack, {"pixtral:warmStarts": "false"})))
    assert with_store.store and not without.store
    assert with_store.total - without.total <= 20, (with_store.describe(), without.describe())


def test_an_artefact_streams_at_the_slowest_of_network_disk_and_hashing():
    g2, g6e = MACHINE_TYPES["g2-standard-24"], MACHINE_TYPES["g6e.xlarge"]
    # g6e: 20 Gbit/s at 75 % is 1.875 GB/s; the NVMe writes 2,000 MiB/s; SHA extensions hash 1.8 GB/s: hashing.
    assert stream_seconds(10.0, g6e, LOCAL_NVME) == pytest.approx(10 / 1.8)
    # Onto the gp3 root disk (/opt/pixtral): its 1,000 MiB/s.
    assert stream_seconds(10.0, g6e, gp3(1000)) == pytest.approx(10e9 / (1000 * 1024 * 1024))
    # g2: gcloud downloads into a file first, at the two local SSDs' 700 MiB/s of writes; the unpack from it then
    # hashes at 0.54 GB/s, since Cascade Lake has no SHA extensions.
    assert stream_seconds(10.0, g2, gcp_local_ssd(2)) == pytest.approx(10e9 / (700 * 1024 * 1024) + 10 / 0.54)


def test_the_weights_through_the_disk_share_the_network_with_the_venv():
    machine, root = MACHINE_TYPES["g6e.xlarge"], gp3(1000)
    # 8.81 GB of venv and compile cache and 25.4 GB of weights over 1.875 GB/s: the network is the bound.
    shared = (VENV_GB + COMPILE_CACHE_GB + PIXTRAL_GB) / 1.875
    assert fetch_seconds(machine, root, LOCAL_NVME, PIXTRAL_GB) == pytest.approx(shared)
    # Without the weights the venv's write to the root disk, then the compile cache, set the pace.
    assert fetch_seconds(machine, root, LOCAL_NVME) == pytest.approx(
        stream_seconds(VENV_GB, machine, root) + stream_seconds(COMPILE_CACHE_GB, machine, LOCAL_NVME))


@pytest.mark.parametrize("stack", ["aws", "gcp-fleet"])
def test_without_warm_starts_every_boot_is_a_first_boot(stack):
    run = run_stack(stack, {"pixtral:warmStarts": "false"})
    (line,) = [entry for entry in run["log"] if "from boot to first answer" in entry]
    assert line.startswith("info: every boot installs from PyPI and downloads from Hugging Face (pixtral:warmStarts "
                           "is false: no artefact store): ")
    assert later_boot(_spec(run)) is None
