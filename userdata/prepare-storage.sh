#!/usr/bin/env bash
# Runs every boot, first: records when the VM booted and puts the model cache on the fastest storage the machine
# has. With local NVMe (instance store / local SSD) the cache lives there; it is blank after a stop/start (the
# download then runs again) and kept across a reboot. Without it, the cache is on the root disk.
set -euo pipefail
# shellcheck source=userdata/pixtral-lib.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-lib.sh"

mkdir -p "$PIXTRAL_STATE_DIR"
phase boot start "$(boot_time)"
phase boot end
# vLLM's launcher and readiness check run as the service user and append their phases too.
chown "${PIXTRAL_USER:-vllm}:" "$PIXTRAL_TIMELINE"

# local_nvme_device: the first local NVMe disk, on AWS (instance store) or GCP (local SSD).
local_nvme_device() {
  local device
  for device in /dev/disk/by-id/google-local-nvme-ssd-0 /dev/disk/by-id/google-local-ssd-0; do
    [ -e "$device" ] && { readlink -f "$device"; return 0; }
  done
  for device in /sys/block/nvme*n1; do
    [ -e "$device/device/model" ] || continue
    if grep -q "Instance Storage" "$device/device/model"; then
      echo "/dev/$(basename "$device")"
      return 0
    fi
  done
  return 1
}

cache=$PIXTRAL_CACHE_DIR
mkdir -p "$cache"
if [ "${PIXTRAL_LOCAL_NVME:-0}" = 1 ] && ! mountpoint -q "$cache"; then
  if device=$(local_nvme_device); then
    blkid "$device" >/dev/null 2>&1 || mkfs.ext4 -q -L pixtral-cache "$device"
    mount -o noatime "$device" "$cache"
    echo "model cache on local NVMe $device"
  else
    echo "no local NVMe disk found; the model cache stays on the root disk" >&2
  fi
fi
user=${PIXTRAL_USER:-vllm}
install -d -o "$user" -g "$(id -gn "$user")" "$cache" "$HF_HOME" "$VLLM_CACHE_ROOT"
