"""The stack's artefact store (issue #26, pixtral:warmStarts): one private, encrypted bucket per VM stack that
`pulumi destroy` deletes, whose objects expire by the contract's rules, which only the stack's replicas may read and
write, named to the boot in its environment file. The replicas' AWS role is checked in tests/test_instance_role.py.
"""

from __future__ import annotations

import json

import pytest
from conftest import VM_STACKS, environment_file, resources_of, run_stack, stacks_of, target_of, vm_files

from pixtral_deploy.artefacts import (
    ARTEFACT_PREFIXES,
    ARTEFACT_RETENTION_DAYS,
    CLAIM_EXPIRY_DAYS,
    CLAIMS_PREFIX,
    ENV_VAR,
    INCOMPLETE_UPLOAD_DAYS,
    WRITABLE_PREFIXES,
)
from pixtral_deploy.catalog import region_of
from pixtral_deploy.spec import ConfigError, load_spec
from pixtral_deploy.targets import PODS, all_targets

S3_BUCKET = "aws:s3/bucket:Bucket"
GCS_BUCKET = "gcp:storage/bucket:Bucket"
BUCKETS = (S3_BUCKET, GCS_BUCKET)
GCS_MEMBER = "gcp:storage/bucketIAMMember:BucketIAMMember"
# The store's own settings, wherever a stack keeps one: VMs and the pods of eks and gke.
AWS = stacks_of("aws", "eks")
GCP = stacks_of("gcp", "gke")
GCP_VMS = stacks_of("gcp")
OFF = {"pixtral:warmStarts": "false"}
# What a replica boots from: it must not exist before the rights on the store do.
REPLICA_MACHINES = ("aws:ec2/instance:Instance", "aws:autoscaling/group:Group", "gcp:compute/instance:Instance",
                    "gcp:compute/instanceTemplate:InstanceTemplate")


def _ok(stack: str, settings: dict[str, str] | None = None) -> dict:
    run = run_stack(stack, settings)
    assert run["error"] is None, run["error"]
    return run


def _bucket(run: dict) -> dict:
    (bucket,) = [r for r in run["resources"] if r["type"] in BUCKETS]
    return bucket


def _store_url(run: dict) -> str:
    bucket = _bucket(run)
    if bucket["type"] == S3_BUCKET:
        return f"s3://{bucket['outputs']['bucket']}"
    return f"gs://{bucket['outputs']['name']}"


def _settings_of(run: dict, type_: str) -> dict:
    """The inputs of the one resource of `type_`, checked to configure the store's bucket."""
    (resource,) = resources_of(run, type_)
    assert resource["inputs"]["bucket"] == _bucket(run)["id"], f"{type_} configures another bucket"
    return resource["inputs"]


@pytest.mark.parametrize("stack", VM_STACKS)
def test_every_vm_stack_keeps_one_store_and_tells_the_boot_and_the_user_where(stack):
    run = _ok(stack)
    url = _store_url(run)
    assert environment_file(vm_files(run))[ENV_VAR] == url, "the boot must find the store in pixtral.env"
    assert run["outputs"]["artefacts"] == url
    assert not url.endswith("/")


@pytest.mark.parametrize("stack", VM_STACKS)
def test_without_warm_starts_there_is_no_bucket_no_right_and_no_store_for_the_boot(stack):
    run = _ok(stack, OFF)
    declared = {r["type"] for r in run["resources"]}
    assert not declared & {*BUCKETS, GCS_MEMBER}, declared & {*BUCKETS, GCS_MEMBER}
    assert not any(r["type"].startswith(("aws:s3/", "gcp:storage/")) for r in run["resources"])
    assert ENV_VAR not in environment_file(vm_files(run))
    assert "artefacts" not in run["outputs"]


@pytest.mark.parametrize("stack", VM_STACKS)
def test_the_store_is_destroyed_with_the_stack(stack):
    bucket = _bucket(_ok(stack))
    # Without forceDestroy `pulumi destroy` fails on a bucket that holds objects, and leaves it billed.
    assert bucket["inputs"]["forceDestroy"] is True
    assert bucket["parent"] == f"pixtral:{target_of(stack)}:ArtefactStore"


@pytest.mark.parametrize("stack", VM_STACKS)
def test_replicas_boot_only_once_they_may_use_the_store(stack):
    run = _ok(stack)
    rights = [f"{r['type']}::{r['name']}" for r in run["resources"]
              if r["type"] == GCS_MEMBER or (r["type"] == "aws:iam/rolePolicy:RolePolicy"
                                             and "s3:" in r["inputs"]["policy"])]
    assert rights, "no rights on the store are declared"
    machines = [r for r in run["resources"] if r["type"] in REPLICA_MACHINES]
    assert machines
    for machine in machines:
        assert set(rights) <= set(machine["depends_on"]), f"{machine['name']} may boot before {rights}"


@pytest.mark.parametrize("stack", AWS)
def test_s3_store_is_private_owner_enforced_encrypted_and_tls_only(stack):
    run = _ok(stack)
    block = _settings_of(run, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                          "restrictPublicBuckets")), block
    ownership = _settings_of(run, "aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    assert ownership["rule"]["objectOwnership"] == "BucketOwnerEnforced", "ACLs must be off"
    encryption = _settings_of(run, "aws:s3/bucketServerSideEncryptionConfiguration:"
                                   "BucketServerSideEncryptionConfiguration")
    assert [r["applyServerSideEncryptionByDefault"]["sseAlgorithm"] for r in encryption["rules"]] == ["AES256"]
    (statement,) = json.loads(_settings_of(run, "aws:s3/bucketPolicy:BucketPolicy")["policy"])["Statement"]
    arn = _bucket(run)["outputs"]["arn"]
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == ("Deny", "*", "s3:*")
    assert sorted(statement["Resource"]) == [arn, f"{arn}/*"]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def _s3_expiry_days(rules: list[dict], key: str) -> list[int]:
    """The expirations of enabled rules that apply to object `key`."""
    return [rule["expiration"]["days"] for rule in rules if rule["status"] == "Enabled" and "expiration" in rule
            and key.startswith(rule["filter"].get("prefix", ""))]


@pytest.mark.parametrize("stack", AWS)
def test_s3_lifecycle_releases_claims_aborts_uploads_and_expires_artefacts(stack):
    rules = _settings_of(_ok(stack), "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")["rules"]
    assert _s3_expiry_days(rules, f"{CLAIMS_PREFIX}model/mistralai--Pixtral-12B-2409") == [CLAIM_EXPIRY_DAYS]
    for prefix in ARTEFACT_PREFIXES:
        assert _s3_expiry_days(rules, f"{prefix}x/manifest.json") == [ARTEFACT_RETENTION_DAYS], prefix
    aborts = [rule for rule in rules if "abortIncompleteMultipartUpload" in rule]
    assert [(rule["filter"], rule["abortIncompleteMultipartUpload"]["daysAfterInitiation"]) for rule in aborts] \
        == [({}, INCOMPLETE_UPLOAD_DAYS)], "every unfinished upload in the bucket is aborted"


def _gcs_delete_days(rules: list[dict], key: str) -> list[int]:
    return [rule["condition"]["age"] for rule in rules if rule["action"]["type"] == "Delete"
            and any(key.startswith(p) for p in rule["condition"].get("matchesPrefixes") or [""])]


@pytest.mark.parametrize("stack", GCP)
def test_gcs_lifecycle_releases_claims_aborts_uploads_and_expires_artefacts(stack):
    rules = _bucket(_ok(stack))["inputs"]["lifecycleRules"]
    assert _gcs_delete_days(rules, f"{CLAIMS_PREFIX}model/mistralai--Pixtral-12B-2409") == [CLAIM_EXPIRY_DAYS]
    for prefix in ARTEFACT_PREFIXES:
        assert _gcs_delete_days(rules, f"{prefix}x/manifest.json") == [ARTEFACT_RETENTION_DAYS], prefix
    aborts = [rule["condition"] for rule in rules if rule["action"]["type"] == "AbortIncompleteMultipartUpload"]
    assert aborts == [{"age": INCOMPLETE_UPLOAD_DAYS}], "every unfinished upload in the bucket is aborted"


@pytest.mark.parametrize("stack", VM_STACKS)
def test_nothing_the_replicas_write_stays_forever(stack):
    run = _ok(stack)
    bucket = _bucket(run)
    for prefix in WRITABLE_PREFIXES:
        key = f"{prefix}anything"
        if bucket["type"] == S3_BUCKET:
            rules = _settings_of(run, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")["rules"]
            assert _s3_expiry_days(rules, key), f"{key} never expires"
        else:
            assert _gcs_delete_days(bucket["inputs"]["lifecycleRules"], key), f"{key} never expires"


@pytest.mark.parametrize("stack", GCP)
def test_gcs_store_is_private_and_keeps_no_deleted_copies(stack):
    inputs = _bucket(_ok(stack))["inputs"]
    assert inputs["uniformBucketLevelAccess"] is True, "object ACLs must be off: IAM alone decides"
    assert inputs["publicAccessPrevention"] == "enforced"
    # Encrypted at rest with Google-managed keys (Cloud Storage's default): no key of the user's is named.
    assert "encryption" not in inputs
    # Soft delete would keep every expired or destroyed 25 GB archive billed for another week.
    assert inputs["softDeletePolicy"] == {"retentionDurationSeconds": 0}


@pytest.mark.parametrize(("stack", "settings"), [(s, {}) for s in GCP_VMS] + [
    ("gcp-fleet", {"pixtral:zones": '["europe-west4-a", "europe-west4-b"]'})], ids=[*GCP_VMS, "gcp-fleet-zones"])
def test_gcs_store_is_in_the_replicas_region(stack, settings):
    run = _ok(stack, settings)
    region = run["outputs"].get("region") or region_of(run["outputs"]["zone"])
    assert _bucket(run)["inputs"]["location"] == region.upper()


@pytest.mark.parametrize("stack", GCP_VMS)
def test_gcp_service_account_reads_and_creates_in_its_stacks_bucket_only(stack):
    run = _ok(stack)
    (account,) = resources_of(run, "gcp:serviceaccount/account:Account")
    members = resources_of(run, GCS_MEMBER)
    assert {m["inputs"]["bucket"] for m in members} == {_bucket(run)["outputs"]["name"]}
    assert {m["inputs"]["member"] for m in members} == {f"serviceAccount:{account['outputs']['email']}"}
    # Creator cannot overwrite or delete: the claims' conditional creates rely on it. No admin or user role.
    assert sorted(m["inputs"]["role"] for m in members) == ["roles/storage.objectCreator",
                                                             "roles/storage.objectViewer"]
    project_roles = [m["inputs"]["role"] for m in resources_of(run, "gcp:projects/iAMMember:IAMMember")]
    assert not [role for role in project_roles if role.startswith("roles/storage.")], project_roles


@pytest.mark.parametrize("target", [t.name for t in all_targets() if PODS(t) and not t.creates_machines])
def test_an_existing_cluster_target_refuses_warm_starts_without_a_bucket_of_the_users(target):
    raw = {"target": target, "warmStarts": "true", "gpuType": "nvidia-l40s"}
    with pytest.raises(ConfigError) as refused:
        load_spec(raw)
    assert str(refused.value).startswith("pixtral:warmStarts: true is not allowed without pixtral:artefactStore on "
                                         f"target {target}; expected pixtral:artefactStore set to a bucket of yours"), \
        str(refused.value)


def test_a_kubernetes_stack_without_warm_starts_declares_no_store():
    run = _ok("k8s", OFF)
    assert not any(r["type"] in BUCKETS for r in run["resources"]) and "artefacts" not in run["outputs"]


@pytest.mark.parametrize("stack", stacks_of("kubernetes"))
def test_existing_cluster_stacks_keep_no_store(stack):
    run = _ok(stack)
    assert not any(r["type"] in BUCKETS for r in run["resources"]) and "artefacts" not in run["outputs"]
    assert load_spec({k.removeprefix("pixtral:"): v for k, v in run["config"].items()
                      if k.startswith("pixtral:")}).warm_starts is False


@pytest.mark.parametrize("value", ["yes", "1", "on"])
def test_warm_starts_takes_true_or_false_only(value):
    with pytest.raises(ConfigError) as refused:
        load_spec({"target": "aws", "warmStarts": value})
    assert "pixtral:warmStarts" in str(refused.value) and "true or false" in str(refused.value)
