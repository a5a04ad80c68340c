"""The model cache on GCP goes on the fastest storage the machine type offers: G2 takes Local SSD only when the VM
asks for it, so the single VM and every fleet template ask for as many as Google's G2 table allows, and the boot
finds them (PIXTRAL_LOCAL_NVME) to put the cache there."""

from __future__ import annotations

import pytest
from conftest import environment_file, resources_of, run_stack, vm_files

from pixtral_deploy.catalog import MACHINE_TYPES
from pixtral_deploy.storage import GCP_LOCAL_SSD_GB, vm_storage

INSTANCE = "gcp:compute/instance:Instance"
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"


def test_the_single_vm_asks_for_g2s_local_ssds_as_nvme_scratch_disks():
    run = run_stack("gcp")
    (vm,) = resources_of(run, INSTANCE)
    disks = vm["inputs"]["scratchDisks"]
    assert len(disks) == MACHINE_TYPES["g2-standard-24"].local_ssds_to_attach == 2
    assert all(disk == {"interface": "NVME", "size": GCP_LOCAL_SSD_GB} for disk in disks), disks
    assert environment_file(vm_files(run))["PIXTRAL_LOCAL_NVME"] == "1", "the boot must look for them"


def test_every_fleet_template_asks_for_them_beside_its_boot_disk():
    run = run_stack("gcp-fleet")
    templates = resources_of(run, TEMPLATE)
    assert len(templates) == 2, "a standard and a Spot template"
    for template in templates:
        boot, *scratch = template["inputs"]["disks"]
        assert boot["boot"] is True and boot["diskType"] == "pd-ssd"
        assert [(d["type"], d["diskType"], d["interface"], d["diskSizeGb"]) for d in scratch] == [
            ("SCRATCH", "local-ssd", "NVME", GCP_LOCAL_SSD_GB)] * 2
    assert environment_file(vm_files(run))["PIXTRAL_LOCAL_NVME"] == "1"


@pytest.mark.parametrize(("machine", "disks"), [("g2-standard-8", 1), ("g2-standard-48", 4)])
def test_the_count_follows_the_machine_type(machine, disks):
    run = run_stack("gcp", {"pixtral:machineType": machine, "pixtral:acceleratorCount": str(
        MACHINE_TYPES[machine].gpu_count)})
    (vm,) = resources_of(run, INSTANCE)
    assert len(vm["inputs"]["scratchDisks"]) == disks
    # The boot stripes them all (prepare-storage.sh): the cache reads at every disk's speed.
    assert vm_storage(MACHINE_TYPES[machine], 500).read_mibs == 660 * disks


def test_a_type_without_local_ssd_keeps_the_cache_on_its_boot_disk():
    run = run_stack("gcp", {"pixtral:machineType": "a2-highgpu-1g", "pixtral:acceleratorType": "nvidia-tesla-a100",
                            "pixtral:acceleratorCount": "1"})
    (vm,) = resources_of(run, INSTANCE)
    assert not vm["inputs"].get("scratchDisks")
    assert environment_file(vm_files(run))["PIXTRAL_LOCAL_NVME"] == "0"


def test_the_review_lists_the_local_ssds_as_not_priced_rather_than_leaving_them_out(tmp_path):
    from pixtralctl.review import cost_section

    cost = "\n".join(cost_section(run_stack("gcp")))
    assert cost.count("| Local SSD (750 GB local-ssd) | 1 |") == 1, "both disks, one row"
    assert "not estimated: Local SSD (750 GB local-ssd)" in cost
