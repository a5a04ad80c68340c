"""Warm starts for pods (pixtral:warmStarts on eks and gke, pixtral:artefactStore on kubernetes): what the workload
adds to its pods when the stack keeps an artefact store.

- An init container fills the cache claim from the store (userdata/pod-fill-cache.sh) when the claim does not hold
  the model complete and an earlier pod published it; else vLLM downloads it from Hugging Face as before.
- A native sidecar (an init container with restartPolicy Always) waits for vLLM's /health in the same pod, then
  publishes the model once for the stack (userdata/pod-publish.sh) and idles. A sidecar rather than a Job or a hook:
  it mounts the pod's own ReadWriteOnce claim (a Job's pod could not, on another node) and starts with the pod's
  service account and network; vLLM's image has no cloud CLI for a postStart hook, and a hook that outlived the
  load would hold the container's start. Native sidecars are on by default from Kubernetes 1.29 (beta; GA in
  1.33, KEP-753): SIDECAR_MIN_KUBERNETES, which the clusters the program makes (spec.KUBERNETES_VERSION) meet.
- Both run the VMs' own functions (userdata/pixtral-artefacts.sh: same keys, manifest, checksum and claim), from a
  ConfigMap, in an image of the store's cloud CLI, as the workload's unprivileged user.

The cloud side (the bucket, and the identity the pods' service account acts as) is the target's: Eks / Gke
`pod_artefact_store` make their own; Kubernetes's names the user's bucket and identity.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pulumi

from pixtral_deploy.cloudinit import USERDATA_DIR
from pixtral_deploy.spec import StackSpec

# The pods' Kubernetes service account when the stack keeps a store: the identity the store's rights are bound to.
SERVICE_ACCOUNT = "pixtral-server"
SCRIPTS_MOUNT = "/opt/pixtral/lib"
POD_SCRIPTS = ("pixtral-lib.sh", "pixtral-artefacts.sh", "pod-tools.sh", "pod-fill-cache.sh", "pod-publish.sh")
SIDECAR_MIN_KUBERNETES = (1, 29)
# The cloud CLI each store is reached with, one image per store scheme. Pinned by release tag only: no container
# registry is reachable where this was written, so no digest could be read and none is invented; add `@sha256:...`
# here when bumping from a machine that can pull them. amazon/aws-cli 2.36.7 is Amazon Linux 2023 with the CLI (its
# docker/Dockerfile at tag 2.36.7): python3 is dnf's; tar and hostname may be absent (userdata/pod-tools.sh).
# google-cloud-cli 573.0.0-stable is debian:trixie-slim with the CLI (cloud-sdk-docker's stable/Dockerfile), whose
# Python is bundled with it, not on PATH: BUNDLED_PYTHONS.
STORE_IMAGES = {
    "s3": "amazon/aws-cli:2.36.7",
    "gs": "gcr.io/google.com/cloudsdktool/google-cloud-cli:573.0.0-stable",
}
BUNDLED_PYTHONS = {"gs": "/usr/lib/google-cloud-sdk/platform/bundledpythonunix/bin/python3"}
# The fill streams the 25 GB archive through the CLI (the AWS CLI keeps 32 parts of 16 MiB in flight) and a hash;
# the sidecar does the same once, then sleeps. Requests stay small: the GPU node's CPU and memory are vLLM's.
STORE_CONTAINER_RESOURCES = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}}
SIDECAR_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "2Gi"}}


@dataclass
class PodArtefactStore:
    """The stack's store as the pods reach it: its URL (`s3://BUCKET`, `gs://BUCKET`), the CLI's settings, the
    annotations the pods' service account needs to act as its cloud identity, and what the pods wait for."""

    url: pulumi.Input[str]
    scheme: str
    env: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    service_account_annotations: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    ready: list[pulumi.Resource] = field(default_factory=list)


def scripts() -> dict[str, str]:
    """The ConfigMap's data: the pod scripts and the VMs' libraries they source."""
    return {name: (USERDATA_DIR / name).read_text() for name in POD_SCRIPTS}


def scripts_digest() -> str:
    """In the pod template, so that changed scripts are a new template whatever the generated ConfigMap's name."""
    return hashlib.sha256("".join(f"{name}\0{text}\0" for name, text in scripts().items()).encode()).hexdigest()


def _env(store: PodArtefactStore, spec: StackSpec, hf_home: str) -> list[dict]:
    server = spec.server
    values = {
        "PIXTRAL_LIB": SCRIPTS_MOUNT,
        "PIXTRAL_ARTEFACTS": store.url,
        "PIXTRAL_MODEL": server.model,
        "PIXTRAL_VLLM_VERSION": server.vllm_version,
        # The same cache folder vLLM's container reads, on the same claim.
        "HF_HOME": hf_home,
        # The manifest's Python names a venv's; the model's artefact has none.
        "PIXTRAL_PYTHON_VERSION": "",
        # The root is read-only: the CLIs' configuration, the timeline and temporary files go to the pod's /tmp.
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "PIXTRAL_RUN_DIR": "/tmp",
        "PIXTRAL_TIMELINE": "/tmp/pixtral-timeline.jsonl",
        "CLOUDSDK_CONFIG": "/tmp/gcloud",
        **({"PIXTRAL_TOOL_PYTHON": BUNDLED_PYTHONS[store.scheme]} if store.scheme in BUNDLED_PYTHONS else {}),
        **store.env,
    }
    return [{"name": name, "value": value} for name, value in values.items()]


def _container(name: str, script: str, store: PodArtefactStore, spec: StackSpec, hf_home: str,
               security_context: dict, mounts: list[dict], extra_env: dict[str, str]) -> dict:
    return {
        "name": name,
        "image": STORE_IMAGES[store.scheme],
        # The tag is the pin (no digest, see STORE_IMAGES): each pull checks it still names what the registry
        # serves, as vLLM's container does.
        "imagePullPolicy": "Always",
        "command": ["bash", f"{SCRIPTS_MOUNT}/{script}"],
        "env": _env(store, spec, hf_home) + [{"name": k, "value": v} for k, v in extra_env.items()],
        "securityContext": security_context,
        "volumeMounts": [*mounts, {"name": "artefact-scripts", "mountPath": SCRIPTS_MOUNT, "readOnly": True}],
    }


def init_containers(store: PodArtefactStore, spec: StackSpec, hf_home: str, security_context: dict,
                    mounts: list[dict]) -> list[dict]:
    """The fill, then the publishing sidecar (restartPolicy Always), in the order the kubelet starts them: the
    sidecar starts once the fill has ended, and does nothing before vLLM answers."""
    health = f"{spec.server.scheme}://127.0.0.1:{spec.server.port}/health"
    fill = _container("fill-cache", "pod-fill-cache.sh", store, spec, hf_home, security_context, mounts, {})
    publish = _container("publish-cache", "pod-publish.sh", store, spec, hf_home, security_context, mounts,
                         {"PIXTRAL_HEALTH_URL": health})
    return [{**fill, "resources": STORE_CONTAINER_RESOURCES},
            {**publish, "restartPolicy": "Always", "resources": SIDECAR_RESOURCES}]
