"""The model cache on machines with several local NVMe disks: prepare-storage.sh, as the VM gets it, run in a scratch
root. Two disks become one striped array mounted at the cache; a reboot finds that array again and never creates a
new one over the weights; a start after a stop (blank disks) builds it afresh; one disk is mounted as it always was.

The disks are files under the scratch root's dev/ and sys/ (PIXTRAL_DEV_DIR, PIXTRAL_SYS_DIR). mdadm and mount are
the machine's tools, so stand-ins on PATH take their place: they record their arguments, and the mdadm stand-in
keeps a superblock at the head of each member disk as the real one does, so `--examine` tells a member from a blank
disk. The file systems are real: mkfs.ext4 and blkid run on the files.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import environment_file, run_stack, vm_files

DISK_BYTES = 32 * 1024 * 1024
ARRAY = "md/pixtral-cache"

# mdadm as far as prepare-storage.sh uses it: --assemble and --create. A member carries the array's name in its first
# bytes (the superblock); --assemble needs it on every disk; --create, as the real one does without --run, asks before
# it takes a disk that already belongs to an array, and declines when stdin gives no "y" (mdadm's Create.c asks
# "Continue creating array" unless runstop is 1, and util.c's ask() answers no at the end of stdin; read at
# github.com/md-raid-utilities/mdadm d1447022). An active array shows as a
# holder of each member in sysfs, as the kernel shows it; its data lives in one file (the stripes, seen whole).
MDADM = textwrap.dedent("""\
    #!/usr/bin/env bash
    set -euo pipefail
    echo "$*" >>"$FAKE_LOG_DIR/mdadm"
    superblock=md-superblock:pixtral-cache
    has_superblock() { [ "$(head -c ${#superblock} "$1" | tr -d '\\0')" = "$superblock" ]; }
    mode=$1 array=$2
    shift 2
    members=() run=""
    for argument in "$@"; do
      case $argument in --run | --force) run=1 ;; --*) ;; *) members+=("$argument") ;; esac
    done
    for member in "${members[@]}"; do
      if [ "$mode" = --assemble ] && ! has_superblock "$member"; then
        echo "mdadm: no recogniseable superblock on $member" >&2
        exit 1
      fi
      if [ "$mode" = --create ] && [ -z "$run" ] && has_superblock "$member"; then
        echo "mdadm: $member appears to be part of a raid array" >&2
        printf 'Continue creating array? ' >&2
        read -r answer || answer=n
        [ "$answer" = y ] || { echo "mdadm: create aborted." >&2; exit 1; }
      fi
    done
    if [ "$mode" = --create ]; then
      for member in "${members[@]}"; do
        printf %s "$superblock" | dd of="$member" conv=notrunc status=none
      done
    fi
    mkdir -p "$(dirname "$array")"
    if [ "$mode" = --create ]; then
      rm -f "$array"
      truncate -s "$((${#members[@]} * 32))M" "$array"
    fi
    ln -sfn "$array" "$PIXTRAL_DEV_DIR/md127"
    for member in "${members[@]}"; do
      mkdir -p "$PIXTRAL_SYS_DIR/block/$(basename "$member")/holders"
      touch "$PIXTRAL_SYS_DIR/block/$(basename "$member")/holders/md127"
    done
    """)
# mount and udevadm (whose `settle` waits for udev's queue, where a kept array's assembly runs at boot) record only.
MOUNT = '#!/bin/sh\necho "$*" >>"$FAKE_LOG_DIR/mount"\n'
UDEVADM = '#!/bin/sh\necho "$*" >>"$FAKE_LOG_DIR/udevadm"\n'


@dataclass
class Machine:
    """A scratch root with local NVMe disks, booted by the VM's own prepare-storage.sh."""

    root: Path
    env: dict[str, str]
    disks: list[Path]

    @property
    def cache(self) -> Path:
        return Path(self.env["PIXTRAL_CACHE_DIR"])

    @property
    def array(self) -> Path:
        return self.root / "dev" / ARRAY

    def boot(self) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(Path(self.env["PIXTRAL_LIB"]) / "prepare-storage.sh")], env=self.env,
                              capture_output=True, text=True, timeout=60)

    def log(self, tool: str) -> list[str]:
        path = self.root / "log" / tool
        return path.read_text().splitlines() if path.exists() else []

    def reboot_before_udev(self) -> None:
        """A reboot: the array is inactive until something assembles it; the members keep their superblocks."""
        for holders in (self.root / "sys/block").glob("*/holders"):
            shutil.rmtree(holders)
        (self.root / "dev/md127").unlink(missing_ok=True)

    def stop_and_start(self) -> None:
        """A stop/start: the instance comes back on new local disks, blank, with no array."""
        self.reboot_before_udev()
        for disk in self.disks:
            disk.write_bytes(b"\0" * DISK_BYTES)
        self.array.unlink(missing_ok=True)


def _filesystem_uuid(device: Path) -> str:
    done = subprocess.run(["blkid", "-o", "value", "-s", "UUID", str(device)], capture_output=True, text=True)
    assert done.returncode == 0, f"no file system on {device}"
    return done.stdout.strip()


def _machine(tmp_path: Path, stack: str, disks: list[str]) -> Machine:
    for tool in ("mkfs.ext4", "blkid"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install e2fsprogs util-linux)")
    root = tmp_path / "root"
    files = vm_files(run_stack(stack))
    lib = root / "usr/local/lib/pixtral"
    lib.mkdir(parents=True)
    for name in ("pixtral-lib.sh", "prepare-storage.sh"):
        (lib / name).write_text(files[f"/usr/local/lib/pixtral/{name}"])
    tools = root / "standins"
    tools.mkdir()
    for name, script in (("mdadm", MDADM), ("mount", MOUNT), ("udevadm", UDEVADM)):
        (tools / name).write_text(script)
        (tools / name).chmod(0o755)
    (root / "log").mkdir()
    paths = []
    for name in disks:
        device = root / "dev" / name
        device.parent.mkdir(parents=True, exist_ok=True)
        device.write_bytes(b"\0" * DISK_BYTES)
        paths.append(device)
    state = root / "var/lib/pixtral"
    env = {
        "PATH": f"{tools}:{os.environ['PATH']}:/usr/sbin:/sbin",
        "PIXTRAL_LIB": str(lib), "PIXTRAL_STATE_DIR": str(state), "PIXTRAL_CACHE_DIR": str(state / "cache"),
        "HF_HOME": str(state / "cache/hf"), "VLLM_CACHE_ROOT": str(state / "cache/vllm"),
        "PIXTRAL_USER": getpass.getuser(), "PIXTRAL_LOCAL_NVME": environment_file(files)["PIXTRAL_LOCAL_NVME"],
        "PIXTRAL_OPT_DIR": str(root / "opt/pixtral"),
        "PIXTRAL_DEV_DIR": str(root / "dev"), "PIXTRAL_SYS_DIR": str(root / "sys"), "FAKE_LOG_DIR": str(root / "log"),
    }
    return Machine(root, env, paths)


def gcp_machine(tmp_path: Path, local_ssds: int) -> Machine:
    """A G2 VM: its Local SSDs under udev's stable names, beside an NVMe boot disk that is not one of them."""
    machine = _machine(tmp_path, "gcp", ["nvme0n1", *(f"nvme0n{n + 2}" for n in range(local_ssds))])
    by_id = machine.root / "dev/disk/by-id"
    by_id.mkdir(parents=True)
    (by_id / "google-persistent-disk-0").symlink_to("../../nvme0n1")
    for n, disk in enumerate(machine.disks[1:]):
        (by_id / f"google-local-nvme-ssd-{n}").symlink_to(f"../../{disk.name}")
    machine.disks = machine.disks[1:]
    return machine


def aws_machine(tmp_path: Path, instance_store: int) -> Machine:
    """An EC2 instance: the EBS root volume and the instance-store disks are all NVMe; their model tells them apart."""
    names = [f"nvme{n}n1" for n in range(instance_store + 1)]
    machine = _machine(tmp_path, "aws", names)
    for n, name in enumerate(names):
        model = machine.root / "sys/block" / name / "device/model"
        model.parent.mkdir(parents=True)
        model.write_text("Amazon Elastic Block Store\n" if n == 0 else "Amazon EC2 NVMe Instance Storage\n")
    machine.disks = machine.disks[1:]
    return machine


def _mounted(machine: Machine, device: Path) -> list[str]:
    """What a boot that puts the cache on `device` mounts: the device at the cache, and vLLM's venv (/opt/pixtral)
    onto it, so that a later boot unpacks the venv at the array's speed too."""
    return [f"-o noatime {device} {machine.cache}", f"--bind {machine.cache}/opt {machine.env['PIXTRAL_OPT_DIR']}"]


def _creates(machine: Machine) -> list[str]:
    return [line for line in machine.log("mdadm") if line.startswith("--create")]


def test_two_local_ssds_become_one_striped_array_mounted_at_the_cache(tmp_path):
    machine = gcp_machine(tmp_path, local_ssds=2)
    booted = machine.boot()
    assert booted.returncode == 0, booted.stderr
    (create,) = _creates(machine)
    assert create.split() == ["--create", str(machine.array), "--level=0", "--raid-devices=2",
                              "--name=pixtral-cache", *map(str, machine.disks)], "one RAID 0 over both, by name"
    assert machine.log("mount") == _mounted(machine, machine.array), "the array, not one disk"
    assert f"vLLM's venv on local NVMe {machine.array}" in booted.stdout
    _filesystem_uuid(machine.array)
    assert f"model cache on local NVMe {machine.array}\n" in booted.stdout


@pytest.mark.parametrize("assembled_by_udev", [True, False], ids=["udev-assembled-it", "not-yet-assembled"])
def test_a_reboot_finds_the_array_and_never_creates_one_over_the_weights(tmp_path, assembled_by_udev):
    machine = gcp_machine(tmp_path, local_ssds=2)
    assert machine.boot().returncode == 0
    weights = _filesystem_uuid(machine.array)
    if not assembled_by_udev:
        machine.reboot_before_udev()
    first_boot = len(machine.log("mdadm"))
    rebooted = machine.boot()
    assert rebooted.returncode == 0, rebooted.stderr
    assert _filesystem_uuid(machine.array) == weights, "a reboot must not format the cache again"
    assemble = f"--assemble {machine.array} {' '.join(map(str, machine.disks))}"
    assert machine.log("mdadm")[first_boot:] == ([] if assembled_by_udev else [assemble]), \
        "a reboot finds or assembles the array, and never creates one"
    assert machine.log("udevadm") == ["settle", "settle"], "each boot lets udev finish assembling before it looks"
    assert machine.log("mount")[-1] == _mounted(machine, machine.array)[1], "a reboot puts the venv back on the array"
    mounted = machine.log("mount")[-2].split()
    assert Path(mounted[2]).resolve() == machine.array and mounted[3] == str(machine.cache)


def test_a_start_after_a_stop_builds_the_array_afresh_on_the_blank_disks(tmp_path):
    machine = gcp_machine(tmp_path, local_ssds=2)
    assert machine.boot().returncode == 0
    before = _filesystem_uuid(machine.array)
    machine.stop_and_start()
    started = machine.boot()
    assert started.returncode == 0, started.stderr
    assert len(_creates(machine)) == 2
    assert _filesystem_uuid(machine.array) != before, "blank disks get a new file system (the download runs again)"


def test_disks_of_which_only_some_carry_an_array_are_never_written_over(tmp_path):
    machine = gcp_machine(tmp_path, local_ssds=2)
    assert machine.boot().returncode == 0
    machine.stop_and_start()
    with machine.disks[0].open("r+b") as disk:
        disk.write(b"md-superblock:pixtral-cache")
    refused = machine.boot()
    assert refused.returncode != 0, "the boot must stop rather than make an array over a disk that belongs to one"
    assert "create aborted" in refused.stderr
    assert not any(flag in _creates(machine)[-1].split() for flag in ("--run", "--force")), "mdadm must be let ask"
    assert not machine.array.exists() and machine.log("mount") == _mounted(machine, machine.array)


def test_one_local_ssd_is_mounted_as_before_without_an_array(tmp_path):
    machine = gcp_machine(tmp_path, local_ssds=1)
    (disk,) = machine.disks
    booted = machine.boot()
    assert booted.returncode == 0, booted.stderr
    assert machine.log("mdadm") == [], "one disk needs no array"
    assert machine.log("mount") == _mounted(machine, disk)
    assert f"model cache on local NVMe {disk}\n" in booted.stdout
    uuid = _filesystem_uuid(disk)
    assert machine.boot().returncode == 0 and _filesystem_uuid(disk) == uuid, "a reboot keeps the weights"


def test_aws_instance_store_disks_are_striped_and_the_ebs_root_is_left_alone(tmp_path):
    machine = aws_machine(tmp_path, instance_store=2)
    booted = machine.boot()
    assert booted.returncode == 0, booted.stderr
    (create,) = _creates(machine)
    assert create.endswith(" ".join(map(str, machine.disks))) and "nvme0n1" not in create
    assert machine.log("mount") == _mounted(machine, machine.array)


def test_without_mdadm_the_cache_takes_one_disk_and_says_so(tmp_path):
    if shutil.which("mdadm"):
        pytest.skip("this machine has a real mdadm on PATH; the case needs a machine without it")
    machine = gcp_machine(tmp_path, local_ssds=2)
    (Path(machine.env["PATH"].split(":")[0]) / "mdadm").unlink()
    booted = machine.boot()
    assert booted.returncode == 0, booted.stderr
    assert "no mdadm: the cache is on one disk" in booted.stderr
    assert machine.log("mount") == _mounted(machine, machine.disks[0])
