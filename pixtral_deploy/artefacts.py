"""The stack's artefact store (issue #26, warm starts): one bucket per stack on the VM targets, in which the first
boot publishes the vLLM environment, vLLM's compile cache and the model's files, and from which every later boot
fetches them instead of asking PyPI and Hugging Face.

The key layout, the rights and the lifecycle are a contract between the buckets (components/aws_artefact_store.py,
components/gcp_artefact_store.py) and the boot scripts (userdata/): this module is its one home on the program's
side. The boot finds the store in /etc/pixtral/pixtral.env as `PIXTRAL_ARTEFACTS=s3://BUCKET` or `gs://BUCKET`;
absent, the boot never touches a store.
"""

from __future__ import annotations

# The variable of the boot's environment file that names the store (no trailing slash).
ENV_VAR = "PIXTRAL_ARTEFACTS"
# What the boot publishes, each under its own prefix: `vllm/<version>-<extra>/py<python>/venv.tar`,
# `compile/<version>/<gpu>/<weights>/cache.tar`, each with a manifest.json beside it; a VM's model as plain objects,
# every file of its Hugging Face snapshot under `model/<org>--<name>/weights/` (WEIGHTS_DIR) with the manifest
# written last, which vLLM streams from (pods keep `model/<org>--<name>/hub.tar`, the cache they mount).
ARTEFACT_PREFIXES = ("vllm/", "compile/", "model/")
# The locks: a publisher writes `claims/<artefact>` with a conditional create before it uploads, so that replicas
# booting together publish each artefact once.
CLAIMS_PREFIX = "claims/"
# Every prefix the VM identity may write under; nothing else in the bucket is writable by it.
WRITABLE_PREFIXES = (*ARTEFACT_PREFIXES, CLAIMS_PREFIX)
# What pods fetch and publish (eks, gke): the model's files alone, so their identity is granted `model/` and its
# claims and nothing else. Pods run vLLM from its image: the `vllm/` venv is a VM's install (paths under /opt/pixtral,
# the VM's Python), which a pod neither makes nor could run. vLLM's compile cache stays on each pod's own claim
# (VLLM_CACHE_ROOT), keyed by the GPU model: the fill runs in an init container before any GPU is looked at, so it
# could not name the `compile/` key to fetch.
POD_ARTEFACT_PREFIXES = ("model/",)
POD_WRITABLE_PREFIXES = (*POD_ARTEFACT_PREFIXES, *(f"{CLAIMS_PREFIX}{prefix}" for prefix in POD_ARTEFACT_PREFIXES))
# A claim outlives any upload (minutes): after a day its publisher has died, and the claim is released.
CLAIM_EXPIRY_DAYS = 1
# An upload a publisher started and never finished (its VM was replaced mid-way) keeps billing its parts until it is
# aborted: after a day none is still running.
INCOMPLETE_UPLOAD_DAYS = 1
# Lifecycle rules match prefixes and age, not "every version but the one in use": an artefact of a vLLM version or
# model the stack no longer runs goes by age, and so does the current one (the first boot after it expired pays one
# full cold start and publishes it again). 30 days bounds what a superseded set costs (about 35 GB: the venv, the
# weights and a compile cache, ~$0.80 a month at S3 Standard or GCS Standard regional list prices) to a month, while
# a stack that keeps running republishes once a month, at the price of one cold start.
ARTEFACT_RETENTION_DAYS = 30
# The longest URL the environment file can carry (bucket names are at most 63 characters on S3 and GCS alike), for
# the user-data size check that runs before the real name exists.
LONGEST_STORE_URL = "s3://" + "b" * 63


# Where a VM stack keeps the model's files, under the model's prefix, and what lists them (path and bytes, and the
# sha256 as published), written after every file.
WEIGHTS_DIR = "weights"
WEIGHTS_MANIFEST = "manifest.json"


def model_key(model: str) -> str:
    """The model's folder in the store: `mistralai/Pixtral-12B-2409` -> `mistralai--Pixtral-12B-2409` (the same as
    userdata/pixtral-artefacts.sh's model_prefix)."""
    return model.replace("/", "--")


def weights_url(store: str, model: str) -> str:
    """What a streamed boot gives vLLM as its model: the folder of the model's files in the store."""
    return f"{store}/model/{model_key(model)}/{WEIGHTS_DIR}"


def store_url(scheme: str, bucket: str) -> str:
    """What the boot reads: `s3://BUCKET` or `gs://BUCKET`, without a trailing slash."""
    return f"{scheme}://{bucket}"
