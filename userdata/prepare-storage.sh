#!/usr/bin/env bash
# Runs every boot, first: records the boot and puts the model cache and vLLM's venv (/opt/pixtral) on local NVMe
# (instance store / local SSD) if any: blank after a stop/start (the install and download run again), kept across a
# reboot. Else they stay on the root disk.
set -euo pipefail
# shellcheck source=userdata/pixtral-lib.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-lib.sh"

mkdir -p "$PIXTRAL_STATE_DIR"
phase boot start "$(boot_time)"
phase boot end
# vLLM's launcher and readiness check run as the service user and append their phases too.
chown "${PIXTRAL_USER:-vllm}:" "$PIXTRAL_TIMELINE"

dev_dir=${PIXTRAL_DEV_DIR:-/dev} sys_dir=${PIXTRAL_SYS_DIR:-/sys}

# local_nvme_devices: GCP's local SSDs, AWS's instance store (EBS is NVMe too).
local_nvme_devices() {
  local d
  for d in "$dev_dir"/disk/by-id/google-local{-nvme,}-ssd-[0-9]*; do
    [[ -e $d && $d != *-part* ]] && readlink -f "$d"
  done
  for d in "$sys_dir"/block/nvme*n1; do
    grep -qs "Instance Storage" "$d/device/model" && echo "$dev_dir/${d##*/}"
  done
}

# striped_array DISK...: one RAID 0 over the disks, kept across reboots (docs/vms.md). In $(...): no set -e.
striped_array() {
  udevadm settle || :
  local array=$dev_dir/md/pixtral-cache held=("$sys_dir/block/${1##*/}"/holders/*)
  [ -e "${held[0]}" ] && { echo "$dev_dir/${held[0]##*/}"; return; }
  mdadm --assemble "$array" "$@" &>/dev/null ||
    mdadm --create "$array" --level=0 --raid-devices=$# --name=pixtral-cache "$@" </dev/null >&2 || return
  echo "$array"
}

cache=$PIXTRAL_CACHE_DIR opt=${PIXTRAL_OPT_DIR:-/opt/pixtral}
mkdir -p "$cache"
if [ "${PIXTRAL_LOCAL_NVME:-0}" = 1 ] && ! mountpoint -q "$cache"; then
  mapfile -t disks < <(local_nvme_devices)
  if [ ${#disks[@]} -gt 1 ] && ! command -v mdadm >/dev/null; then
    echo "no mdadm: the cache is on one disk" >&2
    disks=("${disks[0]}")
  fi
  device=${disks[0]:-}
  if [ ${#disks[@]} -gt 1 ]; then
    device=$(striped_array "${disks[@]}")
  fi
  if [ -n "$device" ]; then
    blkid "$device" >/dev/null 2>&1 || mkfs.ext4 -q -L pixtral-cache "$device"
    mount -o noatime "$device" "$cache"
    echo "model cache on local NVMe $device"
    # vLLM's venv too (/opt/pixtral): a later boot unpacks its 8.7 GB there from the artefact store, at the array's
    # speed rather than the root disk's (GCP's pd-ssd bounds a streamed later boot at 147 s, 103 s from the array).
    # Blank with the array after a stop/start, so the install's marker goes with it and the venv is fetched again.
    mkdir -p "$cache/opt" "$opt"
    mountpoint -q "$opt" || mount --bind "$cache/opt" "$opt"
    echo "vLLM's venv on local NVMe $device ($opt)"
  else
    echo "no local NVMe disk found; the model cache stays on the root disk" >&2
  fi
fi
user=${PIXTRAL_USER:-vllm}
install -d -o "$user" -g "$(id -gn "$user")" "$cache" "$HF_HOME" "$VLLM_CACHE_ROOT"
