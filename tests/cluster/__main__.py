"""python -m tests.cluster up [DIR]: start the plane, print {"kubeconfig": PATH, "bin": DIR/bin} on one line.
python -m tests.cluster down [DIR]: stop everything `up` started in DIR. DIR defaults to $PIXTRAL_CLUSTER_DIR or
~/.cache/pixtral-cluster."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tests.cluster import cluster_dir, plane


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster", description=__doc__)
    parser.add_argument("command", choices=("up", "down"))
    parser.add_argument("dir", nargs="?", type=Path, default=None)
    args = parser.parse_args(argv)
    dir_ = (args.dir or cluster_dir()).resolve()
    if args.command == "up":
        try:
            started = plane.start(dir_)
        except FileNotFoundError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(json.dumps({"kubeconfig": str(started.kubeconfig), "bin": str(dir_ / "bin")}))
    else:
        stopped = plane.stop(dir_ / "run")
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
