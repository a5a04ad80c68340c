"""The cluster tier's harness: a real Kubernetes control plane on loopback and the real Pulumi engine against it,
from binaries .ci/install-cluster builds into DIR/bin. Driven by hand with `python -m tests.cluster up|down DIR`,
and by tests/test_cluster.py."""

from __future__ import annotations

import os
from pathlib import Path

# Where .ci/install-cluster put the binaries (DIR/bin) and where the plane keeps its state (DIR/run).
DIR_ENV = "PIXTRAL_CLUSTER_DIR"
DEFAULT_DIR = Path.home() / ".cache" / "pixtral-cluster"


def cluster_dir() -> Path:
    return Path(os.environ.get(DIR_ENV) or DEFAULT_DIR)


def install_hint(dir_: Path) -> str:
    return f"bash .ci/install-cluster {dir_}"
