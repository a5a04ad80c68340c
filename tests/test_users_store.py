"""Warm starts on `kubernetes` from a bucket of the user's (issue #26, pixtral:artefactStore): the pods fill their cache
claim from it and publish to it as eks and gke pods do, as the cloud identity the user binds to their ServiceAccount;
without it nothing changes; every wrong setting is refused by name before anything is declared. The scripts run for
real under a prefix in tests/test_pod_artefact_scripts.py; eks / gke's own stores in tests/test_pod_artefacts.py.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from conftest import pod_controller, resources_of, run_stack
from manifest_schemas import validate

from components.aws_artefact_store import pod_rights
from components.gcp_artefact_store import pod_conditions
from components.pod_artefacts import BUNDLED_PYTHONS, SCRIPTS_MOUNT, SERVICE_ACCOUNT, STORE_IMAGES
from pixtral_deploy.manifests import manifests
from pixtral_deploy.spec import ConfigError, load_spec

DOCS = Path(__file__).resolve().parent.parent / "docs/kubernetes.md"
API_KEY = "sk-users-store-known-key"
HF_TOKEN = "hf_users_store_known_token_0123456789"
ROLE = "arn:aws:iam::123456789012:role/teams/pixtral-pods"
GSA = "pixtral-pods@vision-models.iam.gserviceaccount.com"
S3 = {"pixtral:artefactStore": "s3://team-models/vision/pixtral", "pixtral:artefactStoreRegion": "eu-west-1",
      "pixtral:artefactStoreIdentity": ROLE, "pixtral:namespace": "vision"}
GS = {"pixtral:artefactStore": "gs://team-models", "pixtral:artefactStoreIdentity": GSA}


def _ok(settings: dict[str, str] | None = None) -> dict:
    run = run_stack("k8s", settings, secrets={"pixtral:apiKey": API_KEY, "pixtral:hfToken": HF_TOKEN})
    assert run["error"] is None, run["error"]
    return run


def _pod_spec(run: dict) -> dict:
    return pod_controller(run)["inputs"]["spec"]["template"]["spec"]


def _env(container: dict) -> dict[str, str]:
    return {v["name"]: v.get("value") for v in container["env"]}


def _service_account(run: dict) -> dict:
    (account,) = resources_of(run, "kubernetes:core/v1:ServiceAccount")
    return account["inputs"]


@pytest.mark.parametrize("settings", [S3, GS], ids=["s3", "gs"])
def test_pods_fill_from_and_publish_to_the_users_bucket_as_eks_and_gke_pods_do(settings):
    run = _ok(settings)
    spec = _pod_spec(run)
    fill, publish = spec["initContainers"]
    (vllm,) = spec["containers"]
    url = settings["pixtral:artefactStore"]
    scheme = url.split("://")[0]
    assert fill["name"] == "fill-cache" and "restartPolicy" not in fill
    assert publish["name"] == "publish-cache" and publish["restartPolicy"] == "Always"
    assert fill["command"] == ["bash", f"{SCRIPTS_MOUNT}/pod-fill-cache.sh"]
    assert publish["command"] == ["bash", f"{SCRIPTS_MOUNT}/pod-publish.sh"]
    for container in (fill, publish):
        env = _env(container)
        assert container["image"] == STORE_IMAGES[scheme], container["name"]
        assert env["PIXTRAL_ARTEFACTS"] == url, "the scripts must reach the bucket and prefix the user named"
        assert env["HF_HOME"] == _env(vllm)["HF_HOME"], "the fill must write where vLLM reads"
        assert env.get("PIXTRAL_AWS_REGION") == settings.get("pixtral:artefactStoreRegion")
        assert env.get("PIXTRAL_TOOL_PYTHON") == BUNDLED_PYTHONS.get(scheme)
        assert container["securityContext"] == vllm["securityContext"]
    assert spec["serviceAccountName"] == SERVICE_ACCOUNT
    assert run["outputs"]["artefacts"] == url


@pytest.mark.parametrize(("settings", "annotation"), [(S3, "eks.amazonaws.com/role-arn"),
                                                      (GS, "iam.gke.io/gcp-service-account")], ids=["irsa", "wi"])
def test_the_pods_service_account_carries_the_users_identity_and_is_named_in_the_outputs(settings, annotation):
    run = _ok(settings)
    account = _service_account(run)
    namespace = settings.get("pixtral:namespace", "pixtral")
    assert (account["metadata"]["name"], account["metadata"]["namespace"]) == (SERVICE_ACCOUNT, namespace)
    assert account["metadata"]["annotations"] == {annotation: settings["pixtral:artefactStoreIdentity"]}
    assert account["automountServiceAccountToken"] is False
    assert run["outputs"]["serviceAccount"] == f"{namespace}/{SERVICE_ACCOUNT}"
    assert pod_controller(run)["inputs"]["metadata"]["namespace"] == namespace


@pytest.mark.parametrize("settings", [S3, GS], ids=["s3", "gs"])
def test_pulumi_up_says_which_service_account_needs_which_rights_on_the_bucket(settings):
    (line,) = [line for line in _ok(settings)["log"] if "pixtral:artefactStore" in line]
    namespace = settings.get("pixtral:namespace", "pixtral")
    assert line.startswith(f"info: pixtral:artefactStore {settings['pixtral:artefactStore']}: the pods read and "
                           f"publish the model there as {settings['pixtral:artefactStoreIdentity']} (ServiceAccount "
                           f"{namespace}/{SERVICE_ACCOUNT}); grant it read under model/"), line


def test_without_an_identity_the_service_account_is_not_annotated():
    # EKS Pod Identity, Workload Identity Federation or the nodes' own identity: nothing to annotate.
    run = _ok({"pixtral:artefactStore": "s3://team-models", "pixtral:artefactStoreRegion": "us-east-1"})
    assert not _service_account(run)["metadata"].get("annotations")
    assert _pod_spec(run)["serviceAccountName"] == SERVICE_ACCOUNT


@pytest.mark.parametrize("settings", [S3, GS], ids=["s3", "gs"])
def test_a_users_bucket_declares_no_cloud_resource_and_the_pods_wait_for_their_service_account(settings):
    run = _ok(settings)
    clouds = [r["type"] for r in run["resources"] if r["type"].startswith(("aws:", "gcp:"))]
    assert not clouds, f"the program has no cloud account on target kubernetes: {clouds}"
    (account,) = [r for r in run["resources"] if r["type"] == "kubernetes:core/v1:ServiceAccount"]
    assert f"{account['type']}::{account['name']}" in pod_controller(run)["depends_on"]


@pytest.mark.parametrize("settings", [S3, GS], ids=["s3", "gs"])
def test_the_manifests_with_a_users_bucket_pass_kubernetes_schema_validation(settings):
    documents = manifests(_ok(settings)["resources"])
    for document in documents:
        validate(document)  # strict: an unknown field is an error, not pruned by the API server
    assert {"ServiceAccount", "ConfigMap", "StatefulSet"} <= {d["kind"] for d in documents}


@pytest.mark.parametrize("settings", [S3, GS], ids=["s3", "gs"])
def test_no_secret_reaches_the_store_containers_on_kubernetes(settings):
    for container in _pod_spec(_ok(settings))["initContainers"]:
        text = json.dumps(container)
        assert API_KEY not in text and HF_TOKEN not in text and "secretKeyRef" not in text, container["name"]


@pytest.mark.parametrize("off", [None, {"pixtral:warmStarts": "false"}], ids=["unset", "warmStarts false"])
def test_without_a_bucket_a_kubernetes_stack_is_what_it_was(off):
    run, with_store = _ok(off), _ok(GS)
    spec = _pod_spec(run)
    assert "initContainers" not in spec and "serviceAccountName" not in spec
    assert "artefacts" not in run["outputs"] and "serviceAccount" not in run["outputs"]
    # The store adds its ServiceAccount and the scripts' ConfigMap, and takes nothing away.
    assert Counter(r["type"] for r in with_store["resources"]) - Counter(r["type"] for r in run["resources"]) == \
        Counter({"kubernetes:core/v1:ServiceAccount": 1, "kubernetes:core/v1:ConfigMap": 1})
    assert not Counter(r["type"] for r in run["resources"]) - Counter(r["type"] for r in with_store["resources"])
    # The pods are the same but for the store's containers, service account, scripts and their digest (and so the
    # template's generation, a digest of the template).
    def without_store(template: dict) -> dict:
        metadata = template["metadata"]
        spec = {k: v for k, v in template["spec"].items() if k not in ("initContainers", "serviceAccountName")}
        return {"metadata": {
            "annotations": {k: v for k, v in metadata["annotations"].items() if k != "pixtral/artefact-scripts-sha256"},
            "labels": {k: v for k, v in metadata["labels"].items() if k != "pixtral/generation"}},
            "spec": {**spec, "volumes": [v for v in spec["volumes"] if v["name"] != "artefact-scripts"]}}

    stored, plain = (pod_controller(r)["inputs"]["spec"]["template"] for r in (with_store, run))
    assert without_store(stored) == without_store(plain)
    assert set(stored["metadata"]) == set(plain["metadata"]) == {"annotations", "labels"}


def _refusal(settings: dict[str, str]) -> str:
    raw = {"target": "kubernetes", "gpuType": "nvidia-l40s", **settings}
    with pytest.raises(ConfigError) as refused:
        load_spec(raw)
    return str(refused.value)


S3_NAME = ("an S3 bucket name: 3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or "
           "digit, no '..'")
GCS_NAME = ("a GCS bucket name: lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or "
            "digit, 3-63 characters (up to 222 with dots, each dot-separated part at most 63)")
URL = ("s3://BUCKET or gs://BUCKET, optionally followed by /PREFIX (folders of letters, digits and . _ -), without "
       "credentials, ?query or #fragment")
PREFIX = ("a prefix of folders of letters, digits and . _ - separated by single '/' (no '.' or '..' folder), at "
          "most 512 characters")
BAD_STORES = [
    ("https://team-models.s3.amazonaws.com/x", URL),
    ("team-models", URL),
    ("s3://Team-Models", S3_NAME),
    ("s3://ab", S3_NAME),
    ("s3://team_models", S3_NAME),
    ("s3://team..models", S3_NAME),
    ("s3://team-models-", S3_NAME),
    ("s3://" + "b" * 64, S3_NAME),
    ("s3://192.168.5.4", "a bucket name, not an IP address"),
    ("s3://xn--models", "an S3 bucket name without the prefix or suffix 'xn--', which S3 reserves"),
    ("s3://models-s3alias", "an S3 bucket name without the prefix or suffix '-s3alias', which S3 reserves"),
    ("gs://Team", GCS_NAME),
    ("gs://" + "b" * 64, GCS_NAME),
    ("gs://google-models", "a GCS bucket name that neither starts with 'goog' nor contains 'google'"),
    ("gs://goog-models", "a GCS bucket name that neither starts with 'goog' nor contains 'google'"),
    ("s3://team-models?versionId=3", URL),
    ("s3://team-models/x#frag", URL),
    ("s3://team-models/a b", URL),
    ("s3://team-models//pixtral", PREFIX),
    ("s3://team-models/../pixtral", PREFIX),
    ("s3://team-models/pix$tral", PREFIX),
    ("s3://team-models/" + "p" * 513, PREFIX),
]


@pytest.mark.parametrize(("value", "allowed"), BAD_STORES, ids=[v[:40] for v, _ in BAD_STORES])
def test_a_bad_store_url_is_refused_naming_the_key_the_value_and_what_is_allowed(value, allowed):
    message = _refusal({"artefactStore": value, "artefactStoreRegion": "us-east-1"})
    assert re.fullmatch(rf"pixtral:artefactStore: '?{re.escape(value[:200])}.*? is not allowed; expected "
                        rf"{re.escape(allowed)}", message), message


def test_credentials_in_the_store_url_are_refused_without_being_shown():
    message = _refusal({"artefactStore": "s3://AKIAEXAMPLE:s3cr3t@team-models/pixtral"})
    assert message == ("pixtral:artefactStore: s3://<credentials>@team-models is not allowed; expected a URL without "
                       "credentials (not shown here): the pods act as the cloud identity their service account is "
                       "bound to (pixtral:artefactStoreIdentity, or the nodes' own)")
    assert "s3cr3t" not in message and "AKIAEXAMPLE" not in message


@pytest.mark.parametrize("value", ["s3://team-models", "s3://team-models/", "s3://a.b-c.models/x_y/v1.2/",
                                   "gs://team_models.example.com/p", "gs://" + "b" * 63])
def test_good_store_urls_are_taken_as_written_without_a_trailing_slash(value):
    settings = {"target": "kubernetes", "gpuType": "nvidia-l40s", "artefactStore": value}
    if value.startswith("s3://"):
        settings["artefactStoreRegion"] = "us-east-1"
    spec = load_spec(settings)
    assert spec.warm_starts is True
    assert spec.kubernetes.users_store.url == value.removesuffix("/")


REFUSED_COMBINATIONS = [
    ({"artefactStore": "s3://team-models"},
     "pixtral:artefactStoreRegion is not set; pixtral:artefactStore s3://team-models is an S3 bucket, and the AWS CLI "
     "in the pods signs its requests for the bucket's region: set it (e.g. `pulumi config set "
     "pixtral:artefactStoreRegion us-east-1`)"),
    ({"artefactStore": "gs://team-models", "artefactStoreRegion": "us-east-1"},
     "pixtral:artefactStoreRegion: us-east-1 is not allowed; expected no value with pixtral:artefactStore "
     "gs://team-models: a region is for an s3:// bucket; gcloud finds a GCS bucket's location itself"),
    ({"artefactStoreRegion": "us-east-1"},
     "pixtral:artefactStoreRegion: us-east-1 is not allowed; expected no value without pixtral:artefactStore, the "
     "bucket it belongs to"),
    ({"artefactStoreIdentity": ROLE},
     f"pixtral:artefactStoreIdentity: {ROLE} is not allowed; expected no value without pixtral:artefactStore, the "
     "bucket it belongs to"),
    ({"artefactStore": "gs://team-models", "artefactStoreIdentity": ROLE},
     f"pixtral:artefactStoreIdentity: {ROLE} is not allowed; expected a Google service account such as "
     "pixtral-pods@my-project.iam.gserviceaccount.com (GKE Workload Identity) with pixtral:artefactStore "
     "gs://team-models: the identity must be of the bucket's cloud"),
    ({"artefactStore": "s3://team-models", "artefactStoreRegion": "us-east-1", "artefactStoreIdentity": GSA},
     f"pixtral:artefactStoreIdentity: {GSA} is not allowed; expected an IAM role ARN such as "
     "arn:aws:iam::123456789012:role/pixtral-pods (IRSA) with pixtral:artefactStore s3://team-models: the identity "
     "must be of the bucket's cloud"),
    ({"warmStarts": "true"},
     "pixtral:warmStarts: true is not allowed without pixtral:artefactStore on target kubernetes; expected "
     "pixtral:artefactStore set to a bucket of yours (s3://BUCKET[/PREFIX] or gs://BUCKET[/PREFIX]), which turns warm "
     "starts on: the program has no cloud account here to make the stack's own"),
    ({"warmStarts": "false", "artefactStore": "gs://team-models"},
     "pixtral:warmStarts: false is not allowed with pixtral:artefactStore gs://team-models; expected one of the two: "
     "remove pixtral:artefactStore for no store, or remove pixtral:warmStarts to use it"),
    ({"artefactStore": "s3://team-models", "artefactStoreRegion": "Frankfurt"},
     "pixtral:artefactStoreRegion: Frankfurt is not allowed; expected an AWS region such as us-east-1"),
    ({"artefactStore": "s3://team-models", "artefactStoreRegion": "us-east-1",
      "artefactStoreIdentity": "arn:aws:iam::1234:role/pods"},
     "pixtral:artefactStoreIdentity: arn:aws:iam::1234:role/pods is not allowed; expected an IAM role ARN such as "
     "arn:aws:iam::123456789012:role/pixtral-pods (IRSA), or a Google service account such as "
     "pixtral-pods@my-project.iam.gserviceaccount.com (GKE Workload Identity)"),
    ({"artefactStore": "gs://team-models", "artefactStoreIdentity": "pixtral-pods@vision-models.example.com"},
     "pixtral:artefactStoreIdentity: pixtral-pods@vision-models.example.com is not allowed; expected an IAM role ARN "
     "such as arn:aws:iam::123456789012:role/pixtral-pods (IRSA), or a Google service account such as "
     "pixtral-pods@my-project.iam.gserviceaccount.com (GKE Workload Identity)"),
]


@pytest.mark.parametrize(("settings", "message"), REFUSED_COMBINATIONS,
                         ids=[",".join(f"{k}={v}"[:30] for k, v in s.items()) for s, _ in REFUSED_COMBINATIONS])
def test_every_setting_of_the_users_store_is_used_or_refused_by_name(settings, message):
    assert _refusal(settings) == message


def test_a_refused_store_declares_nothing():
    run = run_stack("k8s", {"pixtral:artefactStore": "s3://team-models"})
    assert run["error"].startswith("pixtral:artefactStoreRegion is not set"), run["error"]
    assert run["resources"] == []


@pytest.mark.parametrize("target", ["eks", "gke"])
@pytest.mark.parametrize("key", ["artefactStore", "artefactStoreRegion", "artefactStoreIdentity"])
def test_clusters_the_program_makes_refuse_a_users_store_naming_their_own(target, key):
    value = {"artefactStore": "s3://team-models", "artefactStoreRegion": "us-east-1", "artefactStoreIdentity": ROLE}
    run = run_stack(target, {f"pixtral:{key}": value[key]})
    assert run["error"] == (f"pixtral:{key} only applies to target kubernetes, not to pixtral:target {target} (the "
                            "program makes the stack's own artefact store on that target: pixtral:warmStarts); "
                            "remove it from this stack")


def _docs_block(after: str, language: str) -> str:
    text = DOCS.read_text()
    start = text.index(f"```{language}\n", text.index(after)) + len(language) + 4
    return text[start:text.index("```", start)]


def test_the_docs_grant_a_users_s3_bucket_exactly_the_eks_pods_rights_under_the_prefix():
    documented = json.loads(_docs_block("**S3.** This policy", "json"))
    assert documented == pod_rights("arn:aws:s3:::BUCKET", "PREFIX/")


def test_the_docs_grant_a_users_gcs_bucket_exactly_the_gke_pods_conditions_under_the_prefix():
    commands = _docs_block("**GCS.** The bucket must use", "sh")
    documented = dict(re.findall(r"--role=(roles/storage\.\w+) \\\n\s+--condition='title=[^,]+,expression=([^']+)'",
                                 commands))
    assert documented == pod_conditions("BUCKET", "PREFIX/")
    assert "--member=\"serviceAccount:PROJECT.svc.id.goog[NAMESPACE/pixtral-server]\"" in commands
