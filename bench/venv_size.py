"""Measurement (not a test): how large the VMs' vLLM venv is once unpacked, from PyPI's own wheels.

The artefact store keeps the venv as one uncompressed tar (docs/vms.md, "Cold start"), so a later boot moves the
unpacked size, not the wheels' compressed one. This resolves the pinned CUDA build for the VMs' Python and platform
with pip (metadata only), downloads the resolved wheels with pip, and sums the sizes their zip directories list.

    python bench/venv_size.py --wheels /tmp/vllm-wheels     # downloads ~3.7 GB the first time
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pixtral_deploy.cloudinit import PYTHON_VERSION  # noqa: E402
from pixtral_deploy.server import VLLM_VERSION  # noqa: E402

# The images are x86_64 glibc hosts (Ubuntu 22.04/24.04): every manylinux tag up to glibc 2.39, as uv accepts there.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(39, 16, -1)] + [
    "manylinux2014_x86_64", "manylinux_2_12_x86_64", "manylinux2010_x86_64", "manylinux_2_5_x86_64",
    "manylinux1_x86_64", "linux_x86_64"]


def _pip(*args: str) -> None:
    platform_args = [arg for name in PLATFORMS for arg in ("--platform", name)]
    subprocess.run([sys.executable, "-m", "pip", *args, *platform_args, "--python-version", PYTHON_VERSION,
                    "--implementation", "cp", "--only-binary=:all:"], check=True)


def resolve(requirement: str, folder: Path) -> Path:
    """The pins pip resolves for `requirement` on the VMs' Python and platform, one `name==version` a line."""
    report = folder / "report.json"
    with tempfile.TemporaryDirectory(prefix="venv-size-") as target:
        _pip("install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report), "--target", target,
             requirement)
    pins = folder / "pins.txt"
    pins.write_text("".join(f"{item['metadata']['name']}=={item['metadata']['version']}\n"
                            for item in json.loads(report.read_text())["install"]))
    return pins


def unpacked_sizes(folder: Path) -> dict[str, int]:
    """Each wheel's unpacked size in bytes (what its files take in the venv, before any bytecode is compiled)."""
    return {wheel.name: sum(info.file_size for info in zipfile.ZipFile(wheel).infolist())
            for wheel in sorted(folder.glob("*.whl"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheels", type=Path, required=True, help="folder for the downloaded wheels (kept)")
    parser.add_argument("--requirement", default=f"vllm=={VLLM_VERSION}")
    args = parser.parse_args()
    args.wheels.mkdir(parents=True, exist_ok=True)
    pins = resolve(args.requirement, args.wheels)
    _pip("download", "--no-deps", "--quiet", "--dest", str(args.wheels), "--requirement", str(pins))
    sizes = unpacked_sizes(args.wheels)
    compressed = sum(wheel.stat().st_size for wheel in args.wheels.glob("*.whl"))
    print(f"{args.requirement} on Python {PYTHON_VERSION}, x86_64: {len(sizes)} wheels, "
          f"{compressed / 1e9:.2f} GB as wheels, {sum(sizes.values()) / 1e9:.2f} GB unpacked")
    for name, size in sorted(sizes.items(), key=lambda item: -item[1])[:10]:
        print(f"  {size / 1e9:6.2f} GB  {name}")


if __name__ == "__main__":
    main()
