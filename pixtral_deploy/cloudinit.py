"""The VM's `#cloud-config`: the files under userdata/ plus two rendered from the spec, and the service enabled.

No secret ever enters this document: it names where the API key lives (SSM / Secret Manager) and the VM reads it
at boot with its own identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .server import GUARD_FILE, VLLM_MODULE, ServerSpec, vllm_args

USERDATA_DIR = Path(__file__).resolve().parent.parent / "userdata"
LIB_DIR = "/usr/local/lib/pixtral"
CONFIG_DIR = "/etc/pixtral"
STATE_DIR = "/var/lib/pixtral"
SERVICE = "pixtral-vllm.service"
SCRIPTS = ("pixtral-lib.sh", "install-vllm.sh", "download-weights.sh", "fetch-secrets.sh", "launch-vllm.sh",
           "await-ready.sh")
UNITS = ("pixtral-install.service", "pixtral-download.service", "pixtral-secrets.service", SERVICE)
UV_VERSION = "0.13.9"
HF_HUB_VERSION = "2.4.0"
PYTHON_VERSION = "3.12"
# AWS refuses user data over 16 KB (before base64); GCP's metadata limit is larger, so AWS's is the one to keep.
USER_DATA_LIMIT_BYTES = 16 * 1024


@dataclass(frozen=True)
class SecretStore:
    """Where the VM finds its secrets: the store, the secret names, and what the store's CLI needs."""

    kind: str
    api_key_name: str
    hf_token_name: str | None = None
    settings: dict[str, str] = field(default_factory=dict)


def environment(server: ServerSpec, store: SecretStore) -> dict[str, str]:
    """Non-secret settings every boot script and the service read (/etc/pixtral/pixtral.env)."""
    return {
        "PIXTRAL_MODEL": server.model,
        "PIXTRAL_PORT": str(server.port),
        "PIXTRAL_VLLM_VERSION": server.vllm_version,
        "PIXTRAL_VLLM_PYTHON": f"/opt/pixtral/vllm-{server.vllm_version}/bin/python",
        "PIXTRAL_VLLM_MODULE": VLLM_MODULE,
        "PIXTRAL_PYTHON_VERSION": PYTHON_VERSION,
        "PIXTRAL_UV_VERSION": UV_VERSION,
        "PIXTRAL_HF_HUB_VERSION": HF_HUB_VERSION,
        "PIXTRAL_SECRET_STORE": store.kind,
        "PIXTRAL_API_KEY_SECRET": store.api_key_name,
        "PIXTRAL_HF_TOKEN_SECRET": store.hf_token_name or "",
        **store.settings,
        "HF_HOME": f"{STATE_DIR}/hf",
        # vLLM's torch.compile and CUDA-graph caches: kept across restarts so warm starts skip recompiling.
        "VLLM_CACHE_ROOT": f"{STATE_DIR}/vllm-cache",
        "VLLM_NO_USAGE_STATS": "1",
        # Where vLLM imports the key-guard middleware from (--middleware in vllm.args).
        "PYTHONPATH": f"{LIB_DIR}/python",
    }


def _env_file(values: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


def _file(path: str, content: str, permissions: str) -> dict:
    return {"path": path, "content": content, "owner": "root:root", "permissions": permissions}


def cloud_config(server: ServerSpec, store: SecretStore) -> dict:
    """The cloud-config as data; `render_cloud_init` serialises it."""
    files = [
        _file(f"{CONFIG_DIR}/pixtral.env", _env_file(environment(server, store)), "0644"),
        _file(f"{CONFIG_DIR}/vllm.args", "".join(f"{arg}\n" for arg in vllm_args(server)), "0644"),
    ]
    files += [
        _file(f"{LIB_DIR}/{name}", (USERDATA_DIR / name).read_text(), "0644" if name.endswith("lib.sh") else "0755")
        for name in SCRIPTS
    ]
    files += [_file(f"/etc/systemd/system/{name}", (USERDATA_DIR / name).read_text(), "0644") for name in UNITS]
    files.append(_file(f"{LIB_DIR}/python/{GUARD_FILE}", (USERDATA_DIR / GUARD_FILE).read_text(), "0644"))
    return {
        "users": ["default", {"name": "vllm", "system": True, "homedir": STATE_DIR, "shell": "/usr/sbin/nologin"}],
        "write_files": files,
        "runcmd": [
            ["install", "-d", "-o", "vllm", "-g", "vllm", "-m", "0750", STATE_DIR, f"{STATE_DIR}/hf",
             f"{STATE_DIR}/vllm-cache"],
            ["systemctl", "daemon-reload"],
            # --no-block: cloud-init must finish while the install and download run for minutes.
            ["systemctl", "enable", "--now", "--no-block", SERVICE],
        ],
    }


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (the scripts and units) as literal blocks, so the user data reads like the files."""


_Dumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None),
)


def render_cloud_init(server: ServerSpec, store: SecretStore) -> str:
    document = "#cloud-config\n" + yaml.dump(cloud_config(server, store), Dumper=_Dumper, sort_keys=False, width=1000)
    size = len(document.encode())
    if size > USER_DATA_LIMIT_BYTES:
        raise ValueError(f"cloud-init is {size} bytes, over the {USER_DATA_LIMIT_BYTES}-byte user-data limit")
    return document
