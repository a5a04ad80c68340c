"""What the real program declares for a stack, as a rehearsal machine needs it: the user data's exact bytes (as EC2
or the GCE metadata would hold them), the secrets the stack wrote to its store, and the stack's outputs.

The program runs as a user would render it (`python -m pixtral_render`), with the stack's settings and the
rehearsal's `--set` overrides; nothing here rebuilds the user data.
"""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PROJECT_DIR = Path(__file__).resolve().parents[2]

# What a 2-core CPU needs that a GPU VM does not, as the program's own settings: the tiny model's context, a prompt
# limit the e2e tier also uses, and vLLM's eager mode (no graph capture: a CPU start of ~40 s instead of ~64 s).
CPU_SETTINGS = {
    "pixtral:maxModelLen": "2048",
    "pixtral:maxImagesPerPrompt": "2",
    "pixtral:extraArgs": json.dumps(["--enforce-eager"]),
}
# Stacks whose real flags cannot run on one CPU: the GCP stacks shard Pixtral over two L4s (tensor parallel 2), which
# vLLM's CPU build cannot do on this machine, and one L4 would need fp8 weights, which its CPU kernels do not take.
# So they boot as one A100 of the same family, whose flags (tensor parallel 1, bf16) a CPU runs; everything else in
# their user data is the stack's own.
ONE_GPU_GCP = {"pixtral:machineType": "a2-highgpu-1g", "pixtral:acceleratorType": "nvidia-tesla-a100",
               "pixtral:acceleratorCount": "1"}
# Warm starts (the artefact store) are rehearsed on the fleets (tests/rehearsal/warm_starts.py): S3 on aws-fleet, GCS
# behind the gcloud stand-in on gcp-fleet. `aws` and `gcp` boot the same scripts as their fleets, where a second 6 GB
# publish would only add time: both boot with the origin path alone.
NO_STORE = {"pixtral:warmStarts": "false"}
STACK_SETTINGS = {"aws": NO_STORE, "gcp": {**ONE_GPU_GCP, **NO_STORE}, "gcp-fleet": ONE_GPU_GCP}


@dataclass(frozen=True)
class StoredValue:
    """One secret the stack wrote: its name in the store, the version the VM reads, and the value."""

    name: str
    version: str
    value: str


@dataclass
class Declared:
    stack: str
    settings: dict[str, str]
    user_data: bytes
    user_data_gzip: bool
    cloud: str
    outputs: dict
    # The stack's configuration as the program read it (stack file and settings).
    config: dict[str, str] = field(default_factory=dict)
    secrets: list[StoredValue] = field(default_factory=list)
    # GCP: the project the secrets live in; AWS: the region.
    location: str = ""

    @property
    def document(self) -> dict:
        """The cloud-config as cloud-init parses it (for reading what the machine was told, never for booting)."""
        text = (gzip.decompress(self.user_data) if self.user_data_gzip else self.user_data).decode()
        return yaml.safe_load(text)

    @property
    def environment(self) -> dict[str, str]:
        files = {f["path"]: f["content"] for f in self.document["write_files"]}
        return dict(line.split("=", 1) for line in files["/etc/pixtral/pixtral.env"].splitlines() if line)


def rehearsal_settings(stack: str, overrides: dict[str, str]) -> dict[str, str]:
    return {**CPU_SETTINGS, **STACK_SETTINGS.get(stack, {}), **overrides}


def declare(stack: str, overrides: dict[str, str]) -> Declared:
    settings = rehearsal_settings(stack, overrides)
    done = subprocess.run([sys.executable, "-m", "pixtral_render", "--stack", stack,
                           *(f"--set={k}={v}" for k, v in settings.items())],
                          capture_output=True, text=True, cwd=PROJECT_DIR)
    if not done.stdout:
        raise SystemExit(f"the program failed for stack {stack}:\n{done.stderr[-3000:]}")
    run = json.loads(done.stdout)
    if run["error"]:
        raise SystemExit(f"the program refused stack {stack}: {run['error']}")
    user_data = [_user_data(r) for r in run["resources"] if _user_data(r)]
    if not user_data:
        raise SystemExit(f"stack {stack} declares no VM: the rehearsal boots VM stacks (aws, gcp, *-fleet)")
    # A fleet's templates (standard and Spot) boot one document.
    data, gzipped, cloud = user_data[0]
    declared = Declared(stack, settings, data, gzipped, cloud, run["outputs"], run["config"])
    if cloud == "aws":
        for resource in run["resources"]:
            if resource["type"] == "aws:ssm/parameter:Parameter":
                declared.secrets.append(StoredValue(resource["outputs"]["name"], str(resource["outputs"]["version"]),
                                                    resource["inputs"]["value"]))
        declared.location = run["config"].get("aws:region", "us-east-1")
    else:
        secret_ids = {r["id"]: r["inputs"]["secretId"] for r in run["resources"]
                      if r["type"] == "gcp:secretmanager/secret:Secret"}
        for resource in run["resources"]:
            if resource["type"] == "gcp:secretmanager/secretVersion:SecretVersion":
                secret = secret_ids.get(resource["inputs"]["secret"], resource["inputs"]["secret"])
                declared.secrets.append(StoredValue(secret, str(resource["outputs"]["version"]),
                                                    resource["inputs"]["secretData"]))
        declared.location = declared.environment["PIXTRAL_GCP_PROJECT"]
    return declared


def _user_data(resource: dict) -> tuple[bytes, bool, str] | None:
    """The bytes the cloud hands the VM: EC2's user data (gzip, base64 on the API) or GCE's `user-data` metadata."""
    inputs = resource["inputs"]
    if resource["type"] == "aws:ec2/instance:Instance":
        return base64.b64decode(inputs["userDataBase64"]), True, "aws"
    if resource["type"] == "aws:ec2/launchTemplate:LaunchTemplate" and "userData" in inputs:
        return base64.b64decode(inputs["userData"]), True, "aws"
    if resource["type"] in ("gcp:compute/instance:Instance", "gcp:compute/instanceTemplate:InstanceTemplate"):
        return inputs["metadata"]["user-data"].encode(), False, "gcp"
    return None
