# Sourced by the pod scripts after pixtral-artefacts.sh: what the cloud CLI's image lacks, as functions that the
# VMs' library then calls as it would the commands. The AWS CLI's image (Amazon Linux 2023) may have no tar and no
# hostname; Google's has its Python bundled with the CLI, not on PATH ($PIXTRAL_TOOL_PYTHON).
# shellcheck shell=bash

if [ -n "${PIXTRAL_TOOL_PYTHON:-}" ]; then
  python3() { command "$PIXTRAL_TOOL_PYTHON" "$@"; }
fi
command -v hostname >/dev/null || hostname() { echo "$HOSTNAME"; }
if ! command -v tar >/dev/null; then
  # The two forms pixtral-artefacts.sh uses, `tar -x -C DIR` and `tar -C DIR -cf - ENTRY...`, with Python's
  # tarfile: the same archive (symlinks kept as links), so pods and VMs read what either wrote.
  tar() {
    if [ "$1 $2" = "-x -C" ] && [ $# = 3 ]; then
      # The "data" filter where this Python has it: nothing lands outside DIR.
      python3 -c '
import sys, tarfile
safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as archive:
    archive.extractall(sys.argv[1], **safe)' "$3"
    elif [ "$1 $3 $4" = "-C -cf -" ]; then
      python3 -c '
import os, sys, tarfile
os.chdir(sys.argv[1])
with tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.GNU_FORMAT) as archive:
    for entry in sys.argv[2:]:
        archive.add(entry)' "$2" "${@:5}"
    else
      echo "tar $*: not a form pod-tools.sh knows" >&2
      return 2
    fi
  }
fi
