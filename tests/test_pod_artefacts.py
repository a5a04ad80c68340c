"""Warm starts for pods (issue #26, pixtral:warmStarts on eks and gke): the stack's store, the cloud identity the
pods' service account acts as, and the pods' fill (init container) and publish (native sidecar). The store's own
settings (private, encrypted, lifecycle) are checked for these stacks in tests/test_artefact_store.py; parliament and
checkov read the new IAM documents in tests/test_cloud_scan.py. The scripts the containers run are run for real in
tests/test_pod_artefact_scripts.py.
"""

from __future__ import annotations

import fnmatch
import json
import re

import pytest
from conftest import pod_controller, replicas_serve_tls, resources_of, run_stack, shellcheck_findings, stacks_of

from components.pod_artefacts import (
    POD_SCRIPTS,
    SCRIPTS_MOUNT,
    SERVICE_ACCOUNT,
    SIDECAR_MIN_KUBERNETES,
    STORE_IMAGES,
    scripts_digest,
)
from pixtral_deploy.catalog import region_of
from pixtral_deploy.cloudinit import USERDATA_DIR
from pixtral_deploy.spec import KUBERNETES_VERSION

EKS = stacks_of("eks")
GKE = stacks_of("gke")
POD_STORE_STACKS = EKS + GKE
OFF = {"pixtral:warmStarts": "false"}
API_KEY = "sk-pods-store-known-key"
HF_TOKEN = "hf_pods_store_known_token_0123456789"
MODEL = "model/mistralai--Pixtral-12B-2409"
# Keys of every artefact a VM or a pod publishes, and the claims on them.
KEYS = {"venv": "vllm/0.32.0/py3.12/venv.tar", "compile": "compile/0.32.0/nvidia-l4-x1/cache.tar",
        "model": f"{MODEL}/hub.tar", "manifest": f"{MODEL}/manifest.json", "model claim": f"claims/{MODEL}",
        "venv claim": "claims/vllm/0.32.0/py3.12"}
POD_READABLE = {"model", "manifest"}
POD_WRITABLE = {"model", "manifest", "model claim"}
S3_WRITES = ("s3:PutObject", "s3:AbortMultipartUpload")


def _ok(stack: str, settings: dict[str, str] | None = None) -> dict:
    run = run_stack(stack, settings, secrets={"pixtral:apiKey": API_KEY, "pixtral:hfToken": HF_TOKEN})
    assert run["error"] is None, run["error"]
    return run


def _pod_spec(run: dict) -> dict:
    return pod_controller(run)["inputs"]["spec"]["template"]["spec"]


def _init_containers(run: dict) -> dict[str, dict]:
    return {c["name"]: c for c in _pod_spec(run).get("initContainers", [])}


def _env(container: dict) -> dict[str, str]:
    return {v["name"]: v.get("value") for v in container["env"]}


def _as_list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _pods_role(run: dict) -> tuple[dict, list[dict]]:
    """The role the pods' association names, and the statements of its inline policies."""
    (association,) = [a for a in resources_of(run, "aws:eks/podIdentityAssociation:PodIdentityAssociation")
                      if a["inputs"]["serviceAccount"] == SERVICE_ACCOUNT]
    (role,) = [r for r in resources_of(run, "aws:iam/role:Role")
               if r["outputs"]["arn"] == association["inputs"]["roleArn"]]
    references = {role["outputs"]["name"], f"{role['name']}-id", role["outputs"].get("id")}
    statements = [s for p in resources_of(run, "aws:iam/rolePolicy:RolePolicy") if p["inputs"]["role"] in references
                  for s in json.loads(p["inputs"]["policy"])["Statement"]]
    assert not resources_of(run, "aws:iam/rolePolicyAttachment:RolePolicyAttachment") or all(
        a["inputs"]["role"] not in references
        for a in resources_of(run, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")), "a managed policy widens it"
    return role, statements


def _s3_allowed(statements: list[dict], action: str, bucket_arn: str, key: str) -> bool:
    target = f"{bucket_arn}/{key}"
    return any(s["Effect"] == "Allow" and any(fnmatch.fnmatchcase(action, a) for a in _as_list(s["Action"]))
               and any(fnmatch.fnmatchcase(target, r) for r in _as_list(s["Resource"])) for s in statements)


@pytest.mark.parametrize("stack", POD_STORE_STACKS)
def test_pods_and_the_user_are_told_the_one_store(stack):
    run = _ok(stack)
    (bucket,) = [r for r in run["resources"] if r["type"] in ("aws:s3/bucket:Bucket", "gcp:storage/bucket:Bucket")]
    url = f"s3://{bucket['outputs']['bucket']}" if "s3" in bucket["type"] else f"gs://{bucket['outputs']['name']}"
    assert run["outputs"]["artefacts"] == url
    for container in _init_containers(run).values():
        assert _env(container)["PIXTRAL_ARTEFACTS"] == url, container["name"]


@pytest.mark.parametrize("stack", POD_STORE_STACKS)
def test_without_warm_starts_pods_have_no_store_no_identity_and_no_extra_container(stack):
    run = _ok(stack, OFF)
    declared = {r["type"] for r in run["resources"]}
    assert not [t for t in declared if t.startswith(("aws:s3/", "gcp:storage/"))], declared
    assert "kubernetes:core/v1:ServiceAccount" not in declared
    spec = _pod_spec(run)
    assert "initContainers" not in spec and "serviceAccountName" not in spec
    assert "artefacts" not in run["outputs"]


@pytest.mark.parametrize("stack", POD_STORE_STACKS)
@pytest.mark.parametrize("cache", ["per pod", "shared"])
def test_a_pod_fills_its_claim_first_then_publishes_beside_vllm(stack, cache):
    run = _ok(stack, {"pixtral:sharedCache": "true"} if cache == "shared" else {})
    spec = _pod_spec(run)
    fill, publish = spec["initContainers"]
    (vllm,) = spec["containers"]
    # The fill must end before vLLM starts (a plain init container); the publish runs beside it for the pod's life.
    assert fill["name"] == "fill-cache" and "restartPolicy" not in fill
    assert publish["name"] == "publish-cache" and publish["restartPolicy"] == "Always"
    assert fill["command"] == ["bash", f"{SCRIPTS_MOUNT}/pod-fill-cache.sh"]
    assert publish["command"] == ["bash", f"{SCRIPTS_MOUNT}/pod-publish.sh"]
    vllm_home = _env(vllm)["HF_HOME"]
    for container in (fill, publish):
        assert _env(container)["HF_HOME"] == vllm_home, "the fill must write where vLLM reads"
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts["/cache"] == "cache", "the fill must write to the pod's own cache claim"
    scheme = "https" if replicas_serve_tls(run) else "http"
    port = vllm["ports"][0]["containerPort"]
    assert _env(publish)["PIXTRAL_HEALTH_URL"] == f"{scheme}://127.0.0.1:{port:.0f}/health"


@pytest.mark.parametrize("stack", POD_STORE_STACKS)
def test_the_scripts_come_from_a_config_map_with_the_vms_own_library(stack):
    run = _ok(stack)
    spec = _pod_spec(run)
    (volume,) = [v for v in spec["volumes"] if v["name"] == "artefact-scripts"]
    (config_map,) = [c for c in resources_of(run, "kubernetes:core/v1:ConfigMap")
                     if c["outputs"]["metadata"]["name"] == volume["configMap"]["name"]]
    assert config_map["inputs"]["data"] == {name: (USERDATA_DIR / name).read_text() for name in POD_SCRIPTS}
    # The ConfigMap's generated name counts as unknown in the set's digest: the scripts' own digest in the template
    # is what makes changed scripts a new pod template (and, under rollout surge, a new set).
    annotations = pod_controller(run)["inputs"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["pixtral/artefact-scripts-sha256"] == scripts_digest()
    for container in spec["initContainers"]:
        mount = next(m for m in container["volumeMounts"] if m["name"] == "artefact-scripts")
        assert mount == {"name": "artefact-scripts", "mountPath": SCRIPTS_MOUNT, "readOnly": True}


@pytest.mark.parametrize("stack", POD_STORE_STACKS)
def test_store_containers_run_a_pinned_cli_image_as_the_workloads_unprivileged_user(stack):
    run = _ok(stack)
    spec = _pod_spec(run)
    (vllm,) = spec["containers"]
    scheme = _env(spec["initContainers"][0])["PIXTRAL_ARTEFACTS"].split("://")[0]
    for container in spec["initContainers"]:
        image = container["image"]
        assert image == STORE_IMAGES[scheme], f"{container['name']} runs {image}, not the pinned {scheme} CLI"
        assert re.search(r":\d+\.\d+\.\d+(-\w+)?$", image), f"{image} is not pinned to a release"
        context = container["securityContext"]
        # Pod Security's restricted profile, as vLLM's container meets it (the namespace enforces it).
        assert context == vllm["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] >= 1000
        assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}
        assert "memory" in container["resources"]["limits"]
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


@pytest.mark.parametrize("stack", POD_STORE_STACKS)
def test_no_secret_reaches_the_store_containers(stack):
    run = _ok(stack)
    for container in _pod_spec(run)["initContainers"]:
        text = json.dumps(container)
        assert API_KEY not in text and HF_TOKEN not in text, container["name"]
        assert "secretKeyRef" not in text, f"{container['name']} needs no secret of the stack's"


def test_the_clusters_the_program_makes_run_native_sidecars():
    assert tuple(map(int, KUBERNETES_VERSION.split("."))) >= SIDECAR_MIN_KUBERNETES


@pytest.mark.parametrize("stack", POD_STORE_STACKS)
def test_pods_start_only_once_their_identity_may_use_the_store(stack):
    run = _ok(stack)
    controller = pod_controller(run)
    rights = [f"{r['type']}::{r['name']}" for r in run["resources"] if r["type"] in (
        "gcp:storage/bucketIAMMember:BucketIAMMember", "gcp:serviceaccount/iAMMember:IAMMember",
        "kubernetes:core/v1:ServiceAccount")
        or (r["type"] == "aws:eks/podIdentityAssociation:PodIdentityAssociation"
            and r["inputs"]["serviceAccount"] == SERVICE_ACCOUNT)
        or (r["type"] == "aws:iam/rolePolicy:RolePolicy" and "s3:" in r["inputs"]["policy"])]
    assert len(rights) >= 3, rights
    missing = set(rights) - set(controller["depends_on"])
    assert not missing, f"the pods may start before {missing}"
    assert _pod_spec(run)["serviceAccountName"] == SERVICE_ACCOUNT


@pytest.mark.parametrize("stack", EKS)
def test_eks_pods_role_reads_and_publishes_the_model_and_nothing_else(stack):
    run = _ok(stack)
    (bucket,) = resources_of(run, "aws:s3/bucket:Bucket")
    arn = bucket["outputs"]["arn"]
    _, statements = _pods_role(run)
    for what, key in KEYS.items():
        assert _s3_allowed(statements, "s3:GetObject", arn, key) == (what in POD_READABLE), f"read {key}"
        for action in S3_WRITES:
            assert _s3_allowed(statements, action, arn, key) == (what in POD_WRITABLE), f"{action} {key}"
    actions = {a for s in statements for a in _as_list(s["Action"])}
    assert actions == {"s3:GetObject", "s3:ListBucket", *S3_WRITES}, actions
    other_buckets = [r for s in statements for r in _as_list(s["Resource"]) if not r.startswith(arn)]
    assert not other_buckets, other_buckets


@pytest.mark.parametrize("stack", EKS)
def test_eks_pods_role_is_handed_only_to_this_clusters_server_pods(stack):
    run = _ok(stack)
    role, _ = _pods_role(run)
    (statement,) = json.loads(role["inputs"]["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert sorted(statement["Action"]) == ["sts:AssumeRole", "sts:TagSession"]
    cluster = run["outputs"]["clusterName"]
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"].endswith(f":cluster/{cluster}")
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"]
    (association,) = [a for a in resources_of(run, "aws:eks/podIdentityAssociation:PodIdentityAssociation")
                      if a["inputs"]["roleArn"] == role["outputs"]["arn"]]
    controller = pod_controller(run)
    assert association["inputs"]["clusterName"] == cluster
    assert association["inputs"]["namespace"] == controller["inputs"]["metadata"]["namespace"]
    assert association["inputs"]["serviceAccount"] == _pod_spec(run)["serviceAccountName"]


def _cel_allows(expression: str, resource: str) -> bool:
    """The two forms pod_conditions writes (`resource.name == "X"`, `resource.name.startsWith("X")`), joined by
    `||`; anything else fails the test rather than being guessed at."""
    results = []
    for term in expression.split(" || "):
        if match := re.fullmatch(r'resource\.name == "([^"]+)"', term):
            results.append(resource == match[1])
        elif match := re.fullmatch(r'resource\.name\.startsWith\("([^"]+)"\)', term):
            results.append(resource.startswith(match[1]))
        else:
            pytest.fail(f"unexpected condition term {term!r}")
    return any(results)


@pytest.mark.parametrize("stack", GKE)
def test_gke_pods_account_reads_and_creates_the_model_only_in_its_bucket(stack):
    run = _ok(stack)
    (bucket,) = resources_of(run, "gcp:storage/bucket:Bucket")
    name = bucket["outputs"]["name"]
    (account,) = [a for a in resources_of(run, "gcp:serviceaccount/account:Account")
                  if a["name"] == "pixtral-pods-account"]
    member = f"serviceAccount:{account['outputs']['email']}"
    grants = {m["inputs"]["role"]: m["inputs"] for m in resources_of(run, "gcp:storage/bucketIAMMember:BucketIAMMember")
              if m["inputs"]["member"] == member}
    assert set(grants) == {"roles/storage.objectViewer", "roles/storage.objectCreator"}
    assert {g["bucket"] for g in grants.values()} == {name}
    for what, key in KEYS.items():
        resource = f"projects/_/buckets/{name}/objects/{key}"
        viewer = grants["roles/storage.objectViewer"]["condition"]["expression"]
        creator = grants["roles/storage.objectCreator"]["condition"]["expression"]
        assert _cel_allows(viewer, resource) == (what in POD_READABLE), f"read {key}"
        assert _cel_allows(creator, resource) == (what in POD_WRITABLE), f"create {key}"
    project_roles = [m["inputs"] for m in resources_of(run, "gcp:projects/iAMMember:IAMMember")
                     if m["inputs"]["member"] == member]
    assert not project_roles, project_roles


@pytest.mark.parametrize("stack", GKE)
def test_gke_server_pods_act_as_the_account_through_workload_identity(stack):
    run = _ok(stack)
    (account,) = [a for a in resources_of(run, "gcp:serviceaccount/account:Account")
                  if a["name"] == "pixtral-pods-account"]
    namespace = pod_controller(run)["inputs"]["metadata"]["namespace"]
    (binding,) = [b for b in resources_of(run, "gcp:serviceaccount/iAMMember:IAMMember")
                  if b["inputs"]["serviceAccountId"] == account["outputs"]["name"]]
    project = run["config"]["gcp:project"]
    assert binding["inputs"]["role"] == "roles/iam.workloadIdentityUser"
    assert binding["inputs"]["member"] == f"serviceAccount:{project}.svc.id.goog[{namespace}/{SERVICE_ACCOUNT}]"
    (service_account,) = resources_of(run, "kubernetes:core/v1:ServiceAccount")
    metadata = service_account["inputs"]["metadata"]
    assert (metadata["name"], metadata["namespace"]) == (SERVICE_ACCOUNT, namespace)
    assert metadata["annotations"] == {"iam.gke.io/gcp-service-account": account["outputs"]["email"]}
    assert service_account["inputs"]["automountServiceAccountToken"] is False


@pytest.mark.parametrize("stack", GKE)
def test_gke_store_is_in_the_gpu_nodes_region(stack):
    run = _ok(stack)
    (bucket,) = resources_of(run, "gcp:storage/bucket:Bucket")
    assert bucket["inputs"]["location"] == region_of(run["config"]["gcp:zone"]).upper()


def test_pod_scripts_pass_shellcheck():
    assert shellcheck_findings([str(USERDATA_DIR / name) for name in POD_SCRIPTS]) is None
