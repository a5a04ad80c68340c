"""The VM's `#cloud-config`: the files under userdata/ plus two rendered from the spec, and the service enabled.

No secret ever enters this document: it names where the API key and the TLS private key live (SSM / Secret
Manager) and the VM reads them at boot with its own identity. The server's certificate is public and written here.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .artefacts import ENV_VAR as ARTEFACTS_ENV_VAR
from .artefacts import LONGEST_STORE_URL, weights_url
from .fleetboot import FleetBoot, metric_files
from .server import (
    GUARD_FILE,
    TLS_CA_FILE,
    TLS_CERT_FILE,
    TLS_DIR,
    TLS_KEY_FILE,
    VLLM_MODULE,
    VLLM_STREAMER_EXTRA,
    ServerSpec,
    vllm_args,
)

USERDATA_DIR = Path(__file__).resolve().parent.parent / "userdata"
LIB_DIR = "/usr/local/lib/pixtral"
CONFIG_DIR = "/etc/pixtral"
# The Bearer token a metrics agent sends to scrape vLLM's /metrics for an autoscaler (the key guard protects it): the
# API key, written root-only by fetch-secrets.sh from the secret store at boot. Never in user data. The AWS fleet's
# CloudWatch agent and the GCP fleet's Ops Agent read the same file.
METRICS_TOKEN_FILE = f"{CONFIG_DIR}/metrics-token"
STATE_DIR = "/var/lib/pixtral"
# The model cache: a local NVMe mount when the machine has one (prepare-storage.sh), else a root-disk folder.
CACHE_DIR = f"{STATE_DIR}/cache"
# One JSON object per boot phase, written by pixtral-lib.sh's `phase` (whose default path a test keeps equal to
# this one); `pixtralctl timeline` reads it through SSM / IAP.
TIMELINE_FILE = f"{STATE_DIR}/timeline.jsonl"
SERVICE = "pixtral-vllm.service"
# vLLM's arguments, one per line (launch-vllm.sh): the first boot's, from the Hugging Face cache; and with an artefact
# store, a later boot's, the weights streamed from the store (download-weights.sh decides which a boot takes).
ARGS_FILE = f"{CONFIG_DIR}/vllm.args"
STREAMED_ARGS_FILE = f"{CONFIG_DIR}/vllm-streamed.args"
# Sourced by the scripts, not run.
LIBRARIES = ("pixtral-lib.sh", "pixtral-artefacts.sh")
SCRIPTS = (*LIBRARIES, "prepare-storage.sh", "install-vllm.sh", "download-weights.sh", "fetch-secrets.sh",
           "recheck-weights.sh", "launch-vllm.sh", "await-ready.sh", "await-vllm.sh",
           "publish-artefacts.sh")
# Publishing to the stack's artefact store starts once the server answers; it does nothing without a store.
PUBLISH_UNIT = "pixtral-publish.service"
UNITS = ("pixtral-storage.service", "pixtral-install.service", "pixtral-download.service", "pixtral-secrets.service",
         SERVICE, PUBLISH_UNIT)
UV_VERSION = "0.13.9"
HF_HUB_VERSION = "2.4.0"
PYTHON_VERSION = "3.12"
# AWS refuses user data over 16 KB (before base64). The document goes gzip-compressed (cloud-init unpacks it), so the
# limit binds the compressed bytes; GCP's metadata takes 256 KB of plain text.
USER_DATA_LIMIT_BYTES = 16 * 1024


@dataclass(frozen=True)
class StoredSecret:
    """One secret in the cloud's store, at one version. A new value gets a new version (SSM counts up, Secret
    Manager adds one), so a rotated key changes the user data and `pulumi up` replaces the VM with one that reads
    the new key: the running server never keeps enforcing a key the stack no longer outputs."""

    name: str
    version: str


@dataclass(frozen=True)
class SecretStore:
    """Where the VM finds its secrets: the store, the secrets, and what the store's CLI needs."""

    kind: str
    api_key: StoredSecret
    hf_token: StoredSecret | None = None
    settings: dict[str, str] = field(default_factory=dict)
    # The server certificate's private key (pixtral:tls).
    tls_key: StoredSecret | None = None


@dataclass(frozen=True)
class TlsFiles:
    """The public half of the server's TLS: its certificate, and the stack CA's (for the VM's own health check)."""

    certificate: str
    ca_certificate: str


@dataclass(frozen=True)
class MetricsScrape:
    """A metrics agent that scrapes vLLM's /metrics for an autoscaler (its Bearer token in METRICS_TOKEN_FILE): its
    configuration file, and how it is installed."""

    config_path: str
    config: dict
    install: list[str]


def environment(server: ServerSpec, store: SecretStore, local_nvme: bool = False,
                artefacts: str | None = None) -> dict[str, str]:
    """Non-secret settings every boot script and the service read (/etc/pixtral/pixtral.env); `artefacts` is the
    stack's artefact store (`s3://BUCKET`, `gs://BUCKET`), left out of the file when the stack has none."""
    return {
        "PIXTRAL_MODEL": server.model,
        "PIXTRAL_PORT": str(server.port),
        "PIXTRAL_VLLM_VERSION": server.vllm_version,
        "PIXTRAL_VLLM_EXTRA": VLLM_STREAMER_EXTRA,
        "PIXTRAL_VLLM_PYTHON": f"/opt/pixtral/vllm-{server.vllm_version}/bin/python",
        "PIXTRAL_VLLM_MODULE": VLLM_MODULE,
        "PIXTRAL_PYTHON_VERSION": PYTHON_VERSION,
        "PIXTRAL_UV_VERSION": UV_VERSION,
        "PIXTRAL_HF_HUB_VERSION": HF_HUB_VERSION,
        "PIXTRAL_SECRET_STORE": store.kind,
        "PIXTRAL_API_KEY_SECRET": store.api_key.name,
        "PIXTRAL_API_KEY_VERSION": store.api_key.version,
        "PIXTRAL_HF_TOKEN_SECRET": store.hf_token.name if store.hf_token else "",
        "PIXTRAL_HF_TOKEN_VERSION": store.hf_token.version if store.hf_token else "",
        "PIXTRAL_TLS_KEY_SECRET": store.tls_key.name if store.tls_key else "",
        "PIXTRAL_TLS_KEY_VERSION": store.tls_key.version if store.tls_key else "",
        "PIXTRAL_TLS_KEY_FILE": f"{TLS_DIR}/{TLS_KEY_FILE}",
        "PIXTRAL_TLS_CA_FILE": f"{TLS_DIR}/{TLS_CA_FILE}",
        "PIXTRAL_SCHEME": server.scheme,
        **store.settings,
        "PIXTRAL_CACHE_DIR": CACHE_DIR,
        "PIXTRAL_LOCAL_NVME": "1" if local_nvme else "0",
        "HF_HOME": f"{CACHE_DIR}/hf",
        # vLLM's torch.compile and CUDA-graph caches, beside the weights: warm starts skip recompiling.
        "VLLM_CACHE_ROOT": f"{CACHE_DIR}/vllm",
        "VLLM_NO_USAGE_STATS": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        # Where vLLM imports the key-guard middleware from (--middleware in vllm.args).
        "PYTHONPATH": f"{LIB_DIR}/python",
        **({ARTEFACTS_ENV_VAR: artefacts} if artefacts else {}),
        **_streamer_region(artefacts, store),
    }


def _streamer_region(artefacts: str | None, store: SecretStore) -> dict[str, str]:
    """The region Run:ai's S3 client needs to stream the weights from an S3 store (its credentials are the instance
    role's, from IMDS, as the AWS CLI's; on GCS the metadata server gives both)."""
    region = store.settings.get("PIXTRAL_AWS_REGION")
    if not (artefacts and artefacts.startswith("s3://") and region):
        return {}
    return {"AWS_REGION": region, "AWS_DEFAULT_REGION": region}


def args_file(args: list[str]) -> str:
    return "".join(f"{arg}\n" for arg in args)


# Values systemd's EnvironmentFile= parser keeps exactly as written without quotes (model ids, paths, versions,
# secret names): those lines stay as plain as before.
_PLAIN_ENV_VALUE = re.compile(r"[A-Za-z0-9_@+=:,./-]*")


def env_file_value(value: str) -> str:
    """`value` as systemd's EnvironmentFile= parser gives it back unchanged. Unquoted, that parser drops
    backslashes and quotes and trims spaces; inside double quotes it takes a backslash before `"`, `\\`, `` ` ``
    or `$` as an escape and keeps every other character, as the shell does (fetch-secrets.sh writes the secrets
    file by the same rule)."""
    if any(c < " " or c == "\x7f" for c in value):
        # A newline would start a new variable in units that run as root; no setting of the spec may carry one.
        raise ValueError("an environment file value contains a control character")
    if _PLAIN_ENV_VALUE.fullmatch(value):
        return value
    return '"' + re.sub(r'(["\\`$])', r"\\\1", value) + '"'


def env_file(values: dict[str, str]) -> str:
    """An environment file for systemd's EnvironmentFile=, one `NAME=value` line per setting."""
    return "".join(f"{key}={env_file_value(value)}\n" for key, value in values.items())


def shipped(name: str) -> str:
    """userdata/NAME as the VM gets it: a script's or unit's full-line comments dropped (the interpreter line stays).
    They explain the code to its readers in this repository; on the VM they would spend a third of the user data,
    which EC2 caps at 16 KB compressed (the Python guard keeps its comments: a line of a docstring may start
    with #)."""
    text = (USERDATA_DIR / name).read_text()
    if not name.endswith((".sh", ".service")):
        return text
    lines = text.splitlines(keepends=True)
    return "".join(line for number, line in enumerate(lines)
                   if not line.lstrip().startswith("#") or (number == 0 and line.startswith("#!")))


def _file(path: str, content: str, permissions: str) -> dict:
    return {"path": path, "content": content, "owner": "root:root", "permissions": permissions}


def cloud_config(server: ServerSpec, store: SecretStore, local_nvme: bool = False,
                 fleet: FleetBoot | None = None, metrics: MetricsScrape | None = None,
                 tls: TlsFiles | None = None, artefacts: str | None = None) -> dict:
    """The cloud-config as data; `render_cloud_init` serialises it. `fleet` adds what an AWS fleet replica does
    beyond a single VM (pixtral_deploy/fleetboot.py); `metrics` a metrics agent scraping vLLM for a GCP fleet's
    autoscaler. With TLS, `tls` has the certificates and `store` names the private key. `artefacts`: the stack's
    artefact store the boot fetches from and publishes to (pixtral_deploy/artefacts.py)."""
    if server.tls and not (tls and store.tls_key):
        raise ValueError("a TLS server needs its certificates and its private key in the secret store")
    settings = {**environment(server, store, local_nvme, artefacts), **(fleet.environment() if fleet else {})}
    if metrics is not None or (fleet and fleet.queue_metrics):
        # fetch-secrets.sh writes the key there for the agent.
        settings["PIXTRAL_METRICS_TOKEN_FILE"] = METRICS_TOKEN_FILE
    scripts = SCRIPTS + (fleet.scripts if fleet else ())
    units = UNITS + (fleet.units if fleet else ())
    files = [
        _file(f"{CONFIG_DIR}/pixtral.env", env_file(settings), "0644"),
        _file(ARGS_FILE, args_file(vllm_args(server)), "0644"),
    ]
    if artefacts:
        files.append(_file(STREAMED_ARGS_FILE, args_file(vllm_args(server, weights_url(artefacts, server.model))),
                           "0644"))
    if fleet and fleet.queue_metrics:
        files += [_file(path, content, "0644") for path, content in metric_files(server.port, fleet.fleet_id,
                                                                                METRICS_TOKEN_FILE).items()]
    files += [
        _file(f"{LIB_DIR}/{name}", shipped(name), "0644" if name in LIBRARIES else "0755")
        for name in scripts
    ]
    files += [_file(f"/etc/systemd/system/{name}", shipped(name), "0644") for name in units]
    files.append(_file(f"{LIB_DIR}/python/{GUARD_FILE}", (USERDATA_DIR / GUARD_FILE).read_text(), "0644"))
    runcmd = [
        ["install", "-d", "-o", "vllm", "-g", "vllm", "-m", "0750", STATE_DIR],
        ["systemctl", "daemon-reload"],
        # --no-block: cloud-init must finish while the install and download run for minutes.
        ["systemctl", "enable", "--now", "--no-block", SERVICE, PUBLISH_UNIT, *(fleet.units if fleet else ())],
    ]
    if metrics is not None:
        files.append(_file(metrics.config_path, yaml.safe_dump(metrics.config, sort_keys=False), "0644"))
        runcmd += [
            # The agent refuses a configuration whose token file is missing: an empty one until the boot writes
            # the key into it (fetch-secrets.sh); the scrape reads the file on every request.
            ["install", "-m", "0600", "/dev/null", METRICS_TOKEN_FILE],
            metrics.install,
        ]
    if server.tls:
        # Public; the key beside it is written by fetch-secrets.sh, readable by root and the vllm group only.
        files.append(_file(f"{TLS_DIR}/{TLS_CERT_FILE}", tls.certificate, "0644"))
        files.append(_file(f"{TLS_DIR}/{TLS_CA_FILE}", tls.ca_certificate, "0644"))
    return {
        "users": ["default", {"name": "vllm", "system": True, "homedir": STATE_DIR, "shell": "/usr/sbin/nologin"}],
        "write_files": files,
        "runcmd": runcmd,
    }


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (the scripts and units) as literal blocks, so the user data reads like the files."""


_Dumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None),
)


def render_cloud_init(server: ServerSpec, store: SecretStore, local_nvme: bool = False,
                      fleet: FleetBoot | None = None, metrics: MetricsScrape | None = None,
                      tls: TlsFiles | None = None, artefacts: str | None = None) -> str:
    config = cloud_config(server, store, local_nvme, fleet, metrics, tls, artefacts)
    return "#cloud-config\n" + yaml.dump(config, Dumper=_Dumper, sort_keys=False, width=1000)


# The longest secret names and settings a stack can give the VM (stack names are free text), for the size check that
# runs with the rest of the validation, before the real names exist.
_LONGEST_STORE = SecretStore(
    "aws-ssm",
    StoredSecret(f"/pixtral/{'s' * 100}/pixtral/api-key", "99999"),
    StoredSecret(f"/pixtral/{'s' * 100}/pixtral/hf-token", "99999"),
    {"PIXTRAL_AWS_REGION": "ap-southeast-4"},
    StoredSecret(f"/pixtral/{'s' * 100}/pixtral/tls-key", "99999"),
)


def _incompressible_pem(kind: str, body_bytes: int) -> str:
    """A PEM block as large as the biggest the stack makes, whose body gzip cannot shrink (as a real one's)."""
    body = b"".join(hashlib.sha256(f"{kind}{i}".encode()).digest() for i in range(body_bytes // 32 + 1))
    text = base64.b64encode(body[:body_bytes]).decode()
    lines = "\n".join(text[i:i + 64] for i in range(0, len(text), 64))
    return f"-----BEGIN {kind}-----\n{lines}\n-----END {kind}-----\n"


# ECDSA P-256 certificates are 400-600 DER bytes; a 253-character domain adds at most that much again.
_LARGEST_TLS = TlsFiles(_incompressible_pem("CERTIFICATE", 1200), _incompressible_pem("CERTIFICATE", 800))


def compressed_size(server: ServerSpec, local_nvme: bool, warm_starts: bool) -> int:
    """Bytes of the gzip user data an EC2 VM with this server would get, with the longest secret names (and, with
    TLS, the largest certificates; with warm starts, the longest artefact store URL)."""
    document = render_cloud_init(server, _LONGEST_STORE, local_nvme,
                                 tls=_LARGEST_TLS if server.tls else None,
                                 artefacts=LONGEST_STORE_URL if warm_starts else None)
    return len(gzip.compress(document.encode(), mtime=0))


def compress_user_data(document: str) -> str:
    """gzip + base64 for EC2's `user_data_base64`; mtime 0 so the same document always gives the same bytes (a
    changed value would replace the instance)."""
    packed = gzip.compress(document.encode(), mtime=0)
    if len(packed) > USER_DATA_LIMIT_BYTES:
        raise ValueError(f"compressed cloud-init is {len(packed)} bytes, over EC2's {USER_DATA_LIMIT_BYTES}-byte "
                         "user-data limit")
    return base64.b64encode(packed).decode()


def declared_user_data(resource: dict[str, Any]) -> str | None:
    """The plain cloud-config a declared VM (a mock-run record) boots with, whichever way its cloud carries it."""
    inputs = resource["inputs"]
    if resource["type"] == "aws:ec2/instance:Instance":
        return gzip.decompress(base64.b64decode(inputs["userDataBase64"])).decode()
    if resource["type"] == "aws:ec2/launchTemplate:LaunchTemplate" and "userData" in inputs:
        # A fleet's replicas (EKS node templates carry none of ours).
        return gzip.decompress(base64.b64decode(inputs["userData"])).decode()
    if resource["type"] in ("gcp:compute/instance:Instance", "gcp:compute/instanceTemplate:InstanceTemplate"):
        return inputs["metadata"]["user-data"]
    return None
