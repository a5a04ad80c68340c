"""The cluster tier (`pytest -m cluster`): the real Pulumi engine and Kubernetes provider run the program against a
real API server, scheduler and controller manager on loopback (tests/cluster), with kwok's fake GPU nodes.

Built by .ci/install-cluster into $PIXTRAL_CLUSTER_DIR (default ~/.cache/pixtral-cluster); without the binaries the
tier is skipped, and fails in CI (PIXTRAL_REQUIRE_TOOLS=1). The tests of one stack run in file order: each starts
from the state the one before left.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pixtral_deploy.manifests import manifests
from pixtralctl import status_codes
from tests.cluster import cluster_dir, install_hint, plane
from tests.cluster.kube import ApiError, Kube, wait_until
from tests.cluster.project import PROJECT_DIR, Project
from tests.cluster.recorder import Recorder
from tests.conftest import run_stack

pytestmark = pytest.mark.cluster

CRDS = PROJECT_DIR / "tests" / "crds"
NAMESPACE = "pixtral"
SERVICE = "pixtral"
# The pulumi-tls and pulumi-random provider modules are not served by the Go module proxy (README, "Proof"): the
# stacks run for real with a configured key and plain HTTP, so that neither provider is loaded.
NO_TLS_OR_RANDOM = {"pixtral:tls": "false"}


# .ci/run builds the binaries beside the other tests and names the file the build's exit status goes to: the tier
# waits for it. A cold build takes ~21 minutes on a 2-core machine beside the tests (docs/development.md); an hour
# is a hang.
BUILD_STATUS_ENV = "PIXTRAL_CLUSTER_BUILD_STATUS"
BUILD_WAIT_S = 3600


def _await_build() -> None:
    status = os.environ.get(BUILD_STATUS_ENV)
    if not status:
        return
    deadline = time.monotonic() + BUILD_WAIT_S
    while not os.path.exists(status):
        if time.monotonic() > deadline:
            pytest.fail(f"the cluster binaries' build ({install_hint(cluster_dir())}) has not ended within "
                        f"{BUILD_WAIT_S} s")
        time.sleep(10)
    code = Path(status).read_text().strip()
    if code != "0":
        log = Path(status).with_suffix(".log")
        tail = "\n".join(log.read_text().splitlines()[-40:]) if log.exists() else "(no log)"
        pytest.fail(f"the cluster binaries' build ({install_hint(cluster_dir())}) failed (exit {code}):\n{tail}")


def _require_binaries() -> Path:
    _await_build()
    dir_ = cluster_dir()
    missing = plane.binaries_missing(dir_ / "bin")
    if missing:
        message = f"the cluster tier's binaries are missing ({', '.join(missing)}): {install_hint(dir_)}"
        if os.environ.get("PIXTRAL_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return dir_


@pytest.fixture(scope="module")
def cluster_home() -> Path:
    return _require_binaries()


@pytest.fixture(scope="module")
def running(cluster_home: Path):
    started = plane.start(cluster_home)
    yield started
    plane.stop(started.run)


@pytest.fixture(scope="module")
def kube(running: plane.Plane) -> Kube:
    return running.kube()


def _new_key() -> str:
    return "tier-" + secrets.token_hex(16)


def _project(tmp_path_factory, running: plane.Plane, home: Path, stack: str, settings: dict[str, str],
             api_key: str) -> Project:
    project = Project.create(tmp_path_factory.mktemp(f"stack-{stack}"), stack, running, home / "bin")
    for key, value in {**NO_TLS_OR_RANDOM, **settings}.items():
        project.config(key, value)
    project.config("pixtral:apiKey", api_key, secret=True)
    return project


@pytest.fixture(scope="module")
def k8s(tmp_path_factory, running: plane.Plane, cluster_home: Path) -> dict:
    """Stack `k8s` after its first `pulumi up --yes` (a preview, then the update), two replicas."""
    key = _new_key()
    project = _project(tmp_path_factory, running, cluster_home, "k8s", {"pixtral:replicas": "2"}, key)
    started = time.monotonic()
    project.program("up", "--yes")
    return {"project": project, "api_key": key, "up_seconds": time.monotonic() - started,
            "declared": project.state_objects()}


def _path(kube: Kube, obj: dict) -> str:
    return kube.resource(obj["apiVersion"], obj["kind"]).path(obj["namespace"], obj["name"])


def _live_sets(kube: Kube) -> dict[str, dict]:
    sets = kube.list(kube.resource("apps/v1", "StatefulSet"), NAMESPACE)
    return {s["metadata"]["name"]: s for s in sets if not s["metadata"].get("deletionTimestamp")}


def _serving_set(kube: Kube) -> dict:
    sets = _live_sets(kube)
    assert len(sets) == 1, f"expected one serving StatefulSet, found {sorted(sets)}"
    return next(iter(sets.values()))


# 1. The first `pulumi up`: every declared object exists, the pods run on the GPU nodes, the outputs read back.

def test_up_creates_every_object_the_program_declares(k8s, kube):
    declared = k8s["declared"]
    kinds = {obj["kind"] for obj in declared}
    assert {"Namespace", "StatefulSet", "Service", "Secret", "ConfigMap", "PodDisruptionBudget"} <= kinds, kinds
    for obj in declared:
        live = kube.get(_path(kube, obj))
        assert live is not None, f"{obj['kind']} {obj['namespace']}/{obj['name']} is in the state, not the cluster"
        assert live["metadata"]["uid"] == obj["uid"]
    serving = _serving_set(kube)
    assert serving["status"].get("readyReplicas") == 2
    pods = kube.list(kube.resource("v1", "Pod"), NAMESPACE, selector="app.kubernetes.io/name=pixtral")
    assert len(pods) == 2
    # One GPU each, so two nodes: the scheduler placed them by the GPU request, past the nodes' GPU taint.
    assert len({pod["spec"]["nodeName"] for pod in pods}) == 2
    claims = kube.list(kube.resource("v1", "PersistentVolumeClaim"), NAMESPACE)
    assert {claim["status"]["phase"] for claim in claims} == {"Bound"}


def test_stack_outputs_read_back(k8s, kube):
    project: Project = k8s["project"]
    service = kube.get(kube.resource("v1", "Service").path(NAMESPACE, SERVICE))
    address = service["status"]["loadBalancer"]["ingress"][0]["ip"]
    port = service["spec"]["ports"][0]["port"]
    endpoint = project.cli("stack", "output", "endpoint", "--stack", "k8s").stdout.strip()
    assert endpoint == f"http://{address}:{port}"
    assert project.cli("stack", "output", "apiKey", "--stack", "k8s").stdout.strip() == "[secret]"
    shown = project.cli("stack", "output", "apiKey", "--show-secrets", "--stack", "k8s").stdout.strip()
    assert shown == k8s["api_key"]


def _pixtralctl(project: Project, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pixtralctl", *args, "--stack", project.stack], cwd=project.root,
                          env=project.env, capture_output=True, text=True, timeout=120)


def test_pixtralctl_status_lists_the_pods_from_the_api_server(k8s, kube):
    """status reads the pods and nodes through kubectl: what kwok's pods do have (node, zone, Ready) is real."""
    done = _pixtralctl(k8s["project"], "status", "--json")
    assert done.returncode == status_codes.SUCCESS, done.stderr
    listed = {replica["name"]: replica for replica in json.loads(done.stdout)}
    pods = kube.list(kube.resource("v1", "Pod"), NAMESPACE, selector="app.kubernetes.io/name=pixtral")
    assert sorted(listed) == sorted(pod["metadata"]["name"] for pod in pods)
    for pod in pods:
        replica = listed[pod["metadata"]["name"]]
        assert replica["health"] == "ready"
        assert replica["state"].startswith(f"Running on {pod['spec']['nodeName']}, 1/1 ready")
        assert replica["zone"] in ("zone-0", "zone-1")


def test_pixtralctl_wait_reaches_the_stack_endpoint_where_nothing_serves(k8s):
    """wait reads the real outputs and probes the load balancer's address; kwok's pods serve nothing, so it reports
    that no answer came, naming the endpoint (the stand-in's loopback address) once its timeout runs out."""
    endpoint = k8s["project"].outputs()["endpoint"]
    done = _pixtralctl(k8s["project"], "wait", "--timeout", "3", "--interval", "1")
    assert done.returncode == status_codes.CHECK_FAILED, done.stdout + done.stderr
    assert f"no answer from {endpoint}" in done.stdout


# 2. A second run changes nothing.

def test_preview_after_up_expects_no_changes(k8s):
    k8s["project"].program("preview", "--expect-no-changes")


# 3. Rollouts.

def _recorded_up(project: Project, kube: Kube) -> Recorder:
    serving = _serving_set(kube)["metadata"]["name"]
    with Recorder(kube, NAMESPACE, SERVICE) as recorder:
        wait_until("the watches' first events", lambda: recorder.first(serving, lambda s: True) is not None
                   and recorder.endpoints, 30)
        start = max(seq for seq, _ in recorder.sets + recorder.endpoints)
        project.up()
    recorder.start = start
    return recorder


def test_rotated_key_rolls_the_serving_set_in_place_one_pod_at_a_time(k8s, kube):
    project: Project = k8s["project"]
    before = _serving_set(kube)
    old_secret = before["spec"]["template"]["spec"]["containers"][0]["env"]
    k8s["api_key"] = _new_key()
    project.config("pixtral:apiKey", k8s["api_key"], secret=True)
    recorder = _recorded_up(project, kube)
    after = _serving_set(kube)
    assert after["metadata"]["name"] == before["metadata"]["name"]
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["spec"]["template"]["spec"]["containers"][0]["env"] != old_secret
    assert after["status"]["readyReplicas"] == after["status"]["updatedReplicas"] == 2
    counts = recorder.ready_endpoints_after(recorder.start)
    assert counts and min(counts) >= 1, f"the Service had no ready endpoint during the roll: {counts}"
    assert project.outputs()["apiKey"] == k8s["api_key"]


def test_surge_rollout_readies_the_new_set_before_deleting_the_old(k8s, kube):
    project: Project = k8s["project"]
    old = _serving_set(kube)["metadata"]["name"]
    project.config("pixtral:maxModelLen", "16384")
    recorder = _recorded_up(project, kube)
    new = _serving_set(kube)["metadata"]["name"]
    assert new != old
    new_ready = recorder.first(new, lambda s: s.replicas == 2 and s.ready == 2)
    old_deleting = recorder.first(old, lambda s: s.deleting)
    assert new_ready is not None and old_deleting is not None, recorder.sets
    assert new_ready < old_deleting, "the old set was deleted before the new one was ready"
    counts = recorder.ready_endpoints_after(recorder.start)
    assert counts and min(counts) >= 1, f"the Service had no ready endpoint during the rollout: {counts}"
    assert max(counts) == 4, "both sets' pods should have served together for a moment"
    args = _serving_set(kube)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "16384" in " ".join(args)


def _cordon(kube: Kube, nodes: list[str], unschedulable: bool) -> None:
    for node in nodes:
        kube.request("PATCH", kube.resource("v1", "Node").path(None, node), {"spec": {"unschedulable": unschedulable}},
                     content_type="application/merge-patch+json")


def test_cancelled_surge_leaves_the_serving_set_in_place(k8s, kube, tmp_path):
    """No free GPU (the spare nodes cordoned): the new set's pods stay Pending; cancelling `pulumi up` (SIGINT, as
    Ctrl-C) leaves the old set serving. Reverting the setting and running `up` again removes the stuck set."""
    project: Project = k8s["project"]
    serving = _serving_set(kube)
    old = serving["metadata"]["name"]
    pods = kube.list(kube.resource("v1", "Pod"), NAMESPACE, selector="app.kubernetes.io/name=pixtral")
    busy = {pod["spec"]["nodeName"] for pod in pods}
    spare = [name for name in plane.ready_nodes(kube) if name not in busy]
    _cordon(kube, spare, True)
    try:
        project.config("pixtral:maxModelLen", "8192")
        log = tmp_path / "up.log"
        running_up = project.start_program("up", "--yes", "--skip-preview", log=log)
        stuck = wait_until("the new set's pods to wait for a GPU", lambda: [
            name for name in _live_sets(kube) if name != old], 180)
        time.sleep(5)  # the provider is now awaiting the new set's readiness
        running_up.send_signal(2)
        code = running_up.wait(timeout=180)
        assert code != 0, log.read_text()
        sets = _live_sets(kube)
        assert old in sets and sets[old]["status"].get("readyReplicas") == 2, log.read_text()
        assert sets[stuck[0]]["status"].get("readyReplicas", 0) == 0
        endpoints = kube.list(kube.resource("discovery.k8s.io/v1", "EndpointSlice"), NAMESPACE,
                              selector=f"kubernetes.io/service-name={SERVICE}")
        ready = sum(1 for s in endpoints for e in s.get("endpoints") or [] if e["conditions"].get("ready"))
        assert ready == 2
    finally:
        _cordon(kube, spare, False)
    project.config("pixtral:maxModelLen", "16384")
    project.up()
    assert list(_live_sets(kube)) == [old]


def test_in_place_rollout_updates_one_set_pod_by_pod(k8s, kube):
    project: Project = k8s["project"]
    project.config("pixtral:rollout", "inPlace")
    project.up()
    assert list(_live_sets(kube)) == ["pixtral"]
    uid = _serving_set(kube)["metadata"]["uid"]
    project.config("pixtral:maxModelLen", "12288")
    recorder = _recorded_up(project, kube)
    assert recorder.set_names() == ["pixtral"]
    live = _serving_set(kube)
    assert live["metadata"]["uid"] == uid
    assert "12288" in " ".join(live["spec"]["template"]["spec"]["containers"][0]["args"])
    # Pod by pod: the set never had both replicas unready at once, and the Service always had an endpoint.
    # Only this rollout's states (from `start`): the watches' first events show the set as it was before the up.
    states = [(seq, state) for seq, state in recorder.sets if state.name == "pixtral" and seq >= recorder.start]
    ready_counts = [state.ready for _, state in states]
    assert min(ready_counts) == 1, [(seq, s.event, s.replicas, s.ready, s.updated) for seq, s in states]
    counts = recorder.ready_endpoints_after(recorder.start)
    assert counts and min(counts) >= 1, counts


# 6. Destroy leaves nothing (run last for this stack).

def _remaining(kube: Kube, declared: list[dict]) -> list[str]:
    left = []
    for obj in declared:
        live = kube.get(_path(kube, obj))
        if live is not None and not live["metadata"].get("deletionTimestamp"):
            left.append(f"{obj['kind']} {obj['namespace']}/{obj['name']}")
    return left


def test_destroy_leaves_no_object_and_stack_rm_succeeds(k8s, kube):
    project: Project = k8s["project"]
    declared = k8s["declared"] + project.state_objects()
    project.cli("destroy", "--yes", "--stack", "k8s")
    _gone(kube, NAMESPACE)
    assert _remaining(kube, declared) == []
    # Every kind the server serves, cluster-scoped ones too: nothing carries the program's labels any more.
    for resource in kube.kinds():
        if resource.kind in ("Event", "Lease", "EndpointSlice", "ComponentStatus", "Binding"):
            continue
        labelled = kube.list(resource, None, selector="app.kubernetes.io/name=pixtral")
        assert labelled == [], f"{resource.kind}: {[o['metadata']['name'] for o in labelled]}"
    project.cli("stack", "rm", "--yes", "--stack", "k8s")
    assert "k8s" not in project.cli("stack", "ls", "--json").stdout


# 4. k8s-autoscale with KEDA's CRDs: ScaledObject, PDB and spread constraints, then the hpa variant.

def _established(kube: Kube, crd: dict) -> bool:
    live = kube.get(kube.resource(crd["apiVersion"], crd["kind"]).path(None, crd["metadata"]["name"])) or {}
    conditions = live.get("status", {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def _install_crds(kube: Kube, names: tuple[str, ...]) -> None:
    for name in names:
        crd = yaml.safe_load((CRDS / name).read_text())
        crd.pop("status", None)
        if kube.get(kube.resource(crd["apiVersion"], crd["kind"]).path(None, crd["metadata"]["name"])) is None:
            kube.create(crd)
        wait_until(f"{crd['metadata']['name']} established", lambda crd=crd: _established(kube, crd), 60)


def _gone(kube: Kube, namespace: str) -> None:
    wait_until(f"namespace {namespace} to go", lambda: kube.get(f"/api/v1/namespaces/{namespace}") is None, 180)


KEDA_CRDS = ("keda.sh_scaledobjects.yaml", "keda.sh_triggerauthentications.yaml")


def test_autoscale_stack_is_accepted_by_the_api_server(tmp_path_factory, running, cluster_home, kube):
    _install_crds(kube, KEDA_CRDS)
    project = _project(tmp_path_factory, running, cluster_home, "k8s-autoscale", {}, _new_key())
    project.up()
    scaled = kube.list(kube.resource("keda.sh/v1alpha1", "ScaledObject"), NAMESPACE)
    assert len(scaled) == 1
    target = scaled[0]["spec"]["scaleTargetRef"]
    assert target["name"] in _live_sets(kube)
    pdbs = kube.list(kube.resource("policy/v1", "PodDisruptionBudget"), NAMESPACE)
    assert len(pdbs) == 1
    pod_spec = _serving_set(kube)["spec"]["template"]["spec"]
    assert {c["topologyKey"] for c in pod_spec["topologySpreadConstraints"]} == {
        "kubernetes.io/hostname", "topology.kubernetes.io/zone"}

    project.config("pixtral:autoscaler", "hpa")
    project.cli("config", "rm", "pixtral:prometheusUrl", "--stack", "k8s-autoscale")
    project.up()
    assert kube.list(kube.resource("keda.sh/v1alpha1", "ScaledObject"), NAMESPACE) == []
    hpas = kube.list(kube.resource("autoscaling/v2", "HorizontalPodAutoscaler"), NAMESPACE)
    assert len(hpas) == 1 and hpas[0]["spec"]["scaleTargetRef"]["name"] in _live_sets(kube)
    project.cli("destroy", "--yes", "--stack", "k8s-autoscale")
    _gone(kube, NAMESPACE)


# 5. Every object of every Kubernetes stack, from the mock run, through a server-side dry run.

def _whole_numbers(value):
    """The mock engine hands every number back as a float (replicas: 1.0); the manifests a cluster reads have ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


# autoscale.minReplicas 0: the KEDA HTTP add-on's InterceptorRoute (its CRD's CEL rules run in the API server), the
# ScaledObject's external-push trigger, and the entry Service in the add-on's namespace.
SCALE_TO_ZERO = {"pixtral:autoscale": json.dumps({"minReplicas": 0, "maxReplicas": 3, "targetQueuePerReplica": 2}),
                 "pixtral:tls": "false"}


@pytest.mark.parametrize(("stack", "settings"), [
    ("k8s", {}), ("k8s-autoscale", {}), ("eks", {}), ("gke", {}),
    ("k8s-autoscale", SCALE_TO_ZERO), ("gke", SCALE_TO_ZERO), ("gke", {**SCALE_TO_ZERO, "pixtral:tls": "true"}),
], ids=["k8s", "k8s-autoscale", "eks", "gke", "k8s-autoscale-to-zero", "gke-to-zero", "gke-to-zero-tls"])
def test_every_object_passes_a_server_side_dry_run(stack, settings, kube):
    _install_crds(kube, (*KEDA_CRDS, "monitoring.googleapis.com_podmonitorings.yaml",
                         "http.keda.sh_interceptorroutes.yaml"))
    documents = [_whole_numbers(doc) for doc in manifests(run_stack(stack, settings)["resources"],
                                                           redact_secrets=False)]
    assert documents
    # A namespace the program does not create (the add-on's, `keda`) is the cluster's: it exists before.
    declared = {doc["metadata"]["name"] for doc in documents if doc["kind"] == "Namespace"}
    documents += [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                  for name in sorted({doc["metadata"].get("namespace") for doc in documents} - declared - {None})]
    namespaces = [doc for doc in documents if doc["kind"] == "Namespace"]
    rest = [doc for doc in documents if doc["kind"] != "Namespace"]
    errors = []
    for namespace in namespaces:
        kube.create(namespace, dry_run=True)
    created = []
    try:
        # Namespaced objects are checked inside their namespace, so it exists for real while they are.
        for namespace in namespaces:
            if kube.get(f"/api/v1/namespaces/{namespace['metadata']['name']}") is None:
                kube.create(namespace)
                created.append(namespace["metadata"]["name"])
        for doc in rest:
            try:
                kube.create(doc, dry_run=True)
            except ApiError as error:
                errors.append(f"{doc['kind']} {doc['metadata'].get('name')}: {error}")
    finally:
        for name in created:
            kube.request("DELETE", f"/api/v1/namespaces/{name}")
            _gone(kube, name)
    assert errors == []
