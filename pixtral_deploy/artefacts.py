"""The stack's artefact store (issue #26, warm starts): one bucket per stack on the VM targets, in which the first
boot publishes the vLLM environment, vLLM's compile cache and the model's files, and from which every later boot
fetches them instead of asking PyPI and Hugging Face.

The key layout, the rights and the lifecycle are a contract between the buckets (components/aws_artefact_store.py,
components/gcp_artefact_store.py) and the boot scripts (userdata/): this module is its one home on the program's
side. The boot finds the store in /etc/pixtral/pixtral.env as `PIXTRAL_ARTEFACTS=s3://BUCKET` or `gs://BUCKET`;
absent, the boot never touches a store.
"""

from __future__ import annotations

import re

# The variable of the boot's environment file that names the store (no trailing slash).
ENV_VAR = "PIXTRAL_ARTEFACTS"
# What the boot publishes, each under its own prefix: `vllm/<version>-<extra>/py<python>/venv.tar`,
# `compile/<version>/<gpu>/<weights>/<args digest>/cache.tar`, each with a manifest.json beside it; a VM's model as
# plain objects, every file of its Hugging Face snapshot under `model/<org>--<name>/weights/` (WEIGHTS_DIR) with the
# manifest written last, which vLLM streams from (pods keep `model/<org>--<name>/hub.tar`, the cache they mount).
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


# A store of the user's (pixtral:artefactStore on `kubernetes`): `s3://BUCKET[/PREFIX]` or `gs://BUCKET[/PREFIX]`.
# The same layout sits under PREFIX. Bucket names follow each cloud's rules, as documented:
# S3 general purpose buckets (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html): 3-63
# characters of a-z 0-9 . -, starting and ending with a letter or digit, no "..", no IP address, none of the reserved
# prefixes and suffixes below. GCS (https://cloud.google.com/storage/docs/buckets#naming): a-z 0-9 - _ ., starting
# and ending with a letter or digit, 3-63 characters (up to 222 with dots, each dot-separated part at most 63), no IP
# address, not starting with "goog", not containing "google" (nor, by the same rule, its close misspellings, which
# no pattern here can list; GCS refuses those when the bucket is made, so an existing bucket's name has none).
STORE_SCHEMES = ("s3", "gs")
_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_S3_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_S3_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_GCS_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
# The prefix: folders of letters, digits and . _ - (no empty, "." or ".." folder), at most this long, so that its
# keys stay far below S3's and GCS's 1024-byte limit and the value reaches the scripts' environment as it was written.
_PREFIX_FOLDER = re.compile(r"[A-Za-z0-9._-]+")
MAX_PREFIX_CHARACTERS = 512
STORE_URL_ALLOWED = ("s3://BUCKET or gs://BUCKET, optionally followed by /PREFIX (folders of letters, digits and "
                     ". _ -), without credentials, ?query or #fragment")


def _bucket_problem(scheme: str, bucket: str) -> str | None:
    """Why `bucket` is no bucket name on that cloud, or None."""
    if _IP_ADDRESS.fullmatch(bucket):
        return "a bucket name, not an IP address"
    if scheme == "s3":
        if not _S3_BUCKET.fullmatch(bucket) or ".." in bucket:
            return ("an S3 bucket name: 3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter "
                    "or digit, no '..'")
        reserved = [p for p in _S3_RESERVED_PREFIXES if bucket.startswith(p)] + [
            s for s in _S3_RESERVED_SUFFIXES if bucket.endswith(s)]
        if reserved:
            return f"an S3 bucket name without the prefix or suffix {reserved[0]!r}, which S3 reserves"
        return None
    parts_too_long = any(len(part) > 63 for part in bucket.split("."))
    if (not _GCS_BUCKET.fullmatch(bucket) or parts_too_long or ".." in bucket
            or (len(bucket) > 63 and "." not in bucket)):
        return ("a GCS bucket name: lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or "
                "digit, 3-63 characters (up to 222 with dots, each dot-separated part at most 63)")
    if bucket.startswith("goog") or "google" in bucket:
        return "a GCS bucket name that neither starts with 'goog' nor contains 'google'"
    return None


def store_url_problem(value: str) -> tuple[str, str | None] | None:
    """(what is allowed, the value as it may be shown) when `value` is no store URL, else None. A value with
    credentials is shown without them."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in STORE_SCHEMES:
        return STORE_URL_ALLOWED, None
    location = rest.split("/", 1)[0]
    if "@" in location:
        return ("a URL without credentials (not shown here): the pods act as the cloud identity their service account "
                "is bound to (pixtral:artefactStoreIdentity, or the nodes' own)",
                f"{scheme}://<credentials>@{location.rpartition('@')[2]}")
    if any(c in value for c in "?#") or any(ord(c) < 33 or ord(c) > 126 for c in value):
        return STORE_URL_ALLOWED, None
    bucket, _, prefix = rest.partition("/")
    problem = _bucket_problem(scheme, bucket)
    if problem is not None:
        return problem, None
    prefix = prefix.removesuffix("/")
    if prefix and (len(prefix) > MAX_PREFIX_CHARACTERS or any(
            not _PREFIX_FOLDER.fullmatch(folder) or folder in (".", "..") for folder in prefix.split("/"))):
        return (f"a prefix of folders of letters, digits and . _ - separated by single '/' (no '.' or '..' folder), at "
                f"most {MAX_PREFIX_CHARACTERS} characters"), None
    return None


def user_store_url(value: str) -> str:
    """The store URL as the scripts read it: as written, without a trailing slash (`s3://BUCKET/PREFIX`)."""
    return value.removesuffix("/")


def split_store_url(url: str) -> tuple[str, str, str]:
    """(scheme, bucket, prefix) of `s3://BUCKET/PREFIX`; the prefix is "" or ends with "/", ready to put before a
    key."""
    scheme, _, rest = url.partition("://")
    bucket, _, prefix = rest.partition("/")
    return scheme, bucket, f"{prefix}/" if prefix else ""


# The cloud identity a user's store is reached as (pixtral:artefactStoreIdentity): the annotation of the pods'
# ServiceAccount that binds it, by the store's scheme. IRSA: an IAM role ARN (role names and path folders are
# 1-64 of [A-Za-z0-9+=,.@_-]; https://docs.aws.amazon.com/eks/latest/userguide/associate-service-account-role.html);
# GKE Workload Identity: a Google service account's email, account and project ids 6-30 of a-z 0-9 -, starting with
# a letter (https://cloud.google.com/kubernetes-engine/docs/how-to/workload-identity).
IDENTITY_ANNOTATIONS = {"s3": "eks.amazonaws.com/role-arn", "gs": "iam.gke.io/gcp-service-account"}
IDENTITY_SHAPES = {
    "s3": re.compile(r"arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/([\w+=,.@-]{1,64}/)*[\w+=,.@-]{1,64}", re.ASCII),
    "gs": re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z][a-z0-9-]{4,28}[a-z0-9]\.iam\.gserviceaccount\.com"),
}
IDENTITY_ALLOWED = {"s3": "an IAM role ARN such as arn:aws:iam::123456789012:role/pixtral-pods (IRSA)",
                    "gs": "a Google service account such as pixtral-pods@my-project.iam.gserviceaccount.com (GKE "
                          "Workload Identity)"}


def identity_scheme(identity: str) -> str | None:
    """The store scheme whose identity `identity` has the shape of, or None."""
    return next((scheme for scheme, shape in IDENTITY_SHAPES.items() if shape.fullmatch(identity)), None)
