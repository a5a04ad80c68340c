"""Kubernetes replicas that follow vLLM's own load (docs/scaling.md): the autoscaler's numbers come from the target,
each pod keeps its own model cache, rollouts and scale-ins never cut a generation short, node pools follow."""

from __future__ import annotations

import copy
import hashlib
import json
import math

import jsonschema
import pytest
from conftest import opaque_secrets, pod_controller, resources_of, run_stack, stacks_of, target_of
from manifest_schemas import validate

from components.keda import KEDA_CHART_VERSION
from components.vllm_workload import GENERATION_LABEL
from pixtral_deploy.cloudinit import USERDATA_DIR
from pixtral_deploy.manifests import manifests
from pixtral_deploy.server import GUARD_FILE
from pixtralctl.resource_summary import key_settings

K8S_STACKS = stacks_of("kubernetes", "eks", "gke")
# The stacks as shipped with a fixed replica count: the tests add replicas or autoscale themselves (an autoscaled
# stack, which refuses `replicas`, has tests of its own in test_kubernetes_scaling.py).
K8S_STACKS = [s for s in K8S_STACKS if "pixtral:autoscale" not in run_stack(s)["config"]]
CLUSTER_STACKS = ["eks", "gke"]
PROMETHEUS = "http://prometheus.monitoring.svc:9090"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"


def autoscale(**fields) -> str:
    return json.dumps({"minReplicas": 2, "maxReplicas": 6, **fields})


def keda_settings(stack: str, **fields) -> dict[str, str]:
    """autoscale with KEDA: a Prometheus URL on kubernetes / eks, GKE's own managed Prometheus on gke."""
    settings = {"pixtral:autoscale": autoscale(**fields)}
    if target_of(stack) != "gke":
        settings["pixtral:prometheusUrl"] = PROMETHEUS
    return settings


def ok(stack: str, settings: dict[str, str] | None = None) -> dict:
    run = run_stack(stack, settings)
    assert run["error"] is None, run["error"]
    return run


def workload(run: dict) -> dict:
    return pod_controller(run)


def pod_spec(run: dict) -> dict:
    return workload(run)["inputs"]["spec"]["template"]["spec"]


# --- The autoscaler's numbers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", K8S_STACKS)
def test_scaled_object_keeps_vllms_queue_at_the_target_per_replica(stack):
    run = ok(stack, keda_settings(stack, targetQueuePerReplica=2.5, upscaleDelaySeconds=120,
                                  downscaleDelaySeconds=900))
    (scaled,) = resources_of(run, SCALED_OBJECT)
    spec = scaled["inputs"]["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 6)
    target = workload(run)
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": target["type"].rsplit(":", 1)[1],
                                      "name": target["inputs"]["metadata"]["name"]}
    (trigger,) = spec["triggers"]
    # AverageValue: the HPA divides the summed queue by the replicas, so desired = ceil(queue / 2.5).
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    assert trigger["metadata"]["threshold"] == "2.5"
    assert trigger["metadata"]["query"] == 'sum(vllm:num_requests_waiting{namespace="pixtral"})'
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 120}, "scaleDown": {"stabilizationWindowSeconds": 900}}
    if target_of(stack) != "gke":
        assert trigger["metadata"]["serverAddress"] == PROMETHEUS
    assert resources_of(run, HPA) == [], "KEDA makes the HPA itself"


def test_scaled_object_on_qps_takes_the_rate_of_vllms_request_counter_over_60_s():
    run = ok("k8s", keda_settings("k8s", targetQpsPerReplica=4))
    (scaled,) = resources_of(run, SCALED_OBJECT)
    (trigger,) = scaled["inputs"]["spec"]["triggers"]
    # vLLM 0.32.0 counts finished requests in `vllm:request_success` (exported with `_total`).
    assert trigger["metadata"]["query"] == 'sum(rate(vllm:request_success_total{namespace="pixtral"}[60s]))'
    assert trigger["metadata"]["threshold"] == "4"
    # The default delays are SkyServe's.
    assert scaled["inputs"]["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 300}, "scaleDown": {"stabilizationWindowSeconds": 1200}}


@pytest.mark.parametrize(("target", "metric", "average"), [
    ({"targetQueuePerReplica": 2.5}, "vllm_num_requests_waiting", "2500m"),
    ({"targetQpsPerReplica": 3}, "vllm_requests_per_second", "3"),
])
def test_hpa_reads_a_pods_metric_at_the_target_per_replica(target, metric, average):
    run = ok("k8s", {"pixtral:autoscale": autoscale(**target, downscaleDelaySeconds=600),
                     "pixtral:autoscaler": "hpa"})
    assert resources_of(run, SCALED_OBJECT) == []
    (hpa,) = resources_of(run, HPA)
    spec = hpa["inputs"]["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 6), "scale-down never below minReplicas"
    assert spec["metrics"] == [{"type": "Pods", "pods": {"metric": {"name": metric},
                                                         "target": {"type": "AverageValue", "averageValue": average}}}]
    assert spec["behavior"]["scaleDown"] == {"stabilizationWindowSeconds": 600}
    assert spec["scaleTargetRef"]["kind"] == "StatefulSet"


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_an_autoscaled_workload_leaves_the_replica_count_to_the_autoscaler(stack):
    # A replica count in the manifest would reset the autoscaler's choice on every `pulumi up`.
    assert "replicas" not in workload(ok(stack, keda_settings(stack, targetQueuePerReplica=3)))["inputs"]["spec"]
    assert workload(ok(stack, {"pixtral:replicas": "3"}))["inputs"]["spec"]["replicas"] == 3


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_two_and_fifty_max_replicas_declare_the_same_resources(stack):
    def declared(maximum: int) -> list[tuple[str, str]]:
        run = ok(stack, {**keda_settings(stack, targetQueuePerReplica=3), "pixtral:autoscale": json.dumps(
            {"minReplicas": 1, "maxReplicas": maximum, "targetQueuePerReplica": 3})})
        return sorted((r["type"], r["name"]) for r in run["resources"])

    assert declared(2) == declared(50)


def test_fixed_replicas_on_an_existing_cluster_keep_working_without_an_autoscaler():
    run = ok("k8s", {"pixtral:replicas": "3"})
    assert resources_of(run, SCALED_OBJECT) == resources_of(run, HPA) == []
    assert workload(run)["inputs"]["spec"]["replicas"] == 3
    assert resources_of(run, "kubernetes:core/v1:PersistentVolumeClaim") == [], "no ReadWriteMany claim needed"


# --- GKE sets up its own metrics --------------------------------------------------------------------------------

def test_gke_scrapes_vllm_with_the_api_key_into_managed_prometheus_and_keda_reads_it():
    run = ok("gke", {"pixtral:autoscale": autoscale(targetQueuePerReplica=3)})
    (secret,) = opaque_secrets(run)
    secret_name = secret["outputs"]["metadata"]["name"]
    (monitoring,) = resources_of(run, "kubernetes:monitoring.googleapis.com/v1:PodMonitoring")
    (endpoint,) = monitoring["inputs"]["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["port"] == "http"
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": {"secret": {"name": secret_name,
                                                                                         "key": "VLLM_API_KEY"}}}
    assert monitoring["inputs"]["spec"]["selector"]["matchLabels"].items() <= pod_labels(run).items()
    # The managed collectors may read exactly that Secret, nothing else.
    (role,) = resources_of(run, "kubernetes:rbac.authorization.k8s.io/v1:Role")
    assert role["inputs"]["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [secret_name],
                                        "verbs": ["get", "list", "watch"]}]
    (binding,) = resources_of(run, "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
    assert binding["inputs"]["subjects"] == [{"kind": "ServiceAccount", "name": "collector",
                                              "namespace": "gmp-system"}]
    # KEDA from its maintained chart, signing in to Managed Prometheus as a reader through Workload Identity.
    (keda,) = resources_of(run, "kubernetes:helm.sh/v3:Release")
    assert (keda["inputs"]["chart"], keda["inputs"]["version"]) == ("keda", KEDA_CHART_VERSION)
    assert keda["inputs"]["repositoryOpts"]["repo"] == "https://kedacore.github.io/charts"
    (reader,) = [a for a in resources_of(run, "gcp:serviceaccount/account:Account")
                 if a["inputs"]["accountId"].endswith("-keda")]
    email = reader["outputs"]["email"]
    assert keda["inputs"]["values"]["serviceAccount"]["operator"]["annotations"] == {
        "iam.gke.io/gcp-service-account": email}
    grants = [(g["inputs"]["role"], g["inputs"]["member"])
              for g in resources_of(run, "gcp:projects/iAMMember:IAMMember")
              if g["inputs"]["member"] == f"serviceAccount:{email}"]
    assert grants == [("roles/monitoring.viewer", f"serviceAccount:{email}")], "KEDA's identity reads metrics, only"
    (identity,) = [i for i in resources_of(run, "gcp:serviceaccount/iAMMember:IAMMember")
                   if i["inputs"]["serviceAccountId"] == reader["outputs"]["name"]]
    assert identity["inputs"]["member"] == "serviceAccount:pixtral-mock-project.svc.id.goog[keda/keda-operator]"
    (scaled,) = resources_of(run, SCALED_OBJECT)
    (trigger,) = scaled["inputs"]["spec"]["triggers"]
    assert trigger["metadata"]["serverAddress"] == (
        "https://monitoring.googleapis.com/v1/projects/pixtral-mock-project/location/global/prometheus")
    (auth,) = resources_of(run, "kubernetes:keda.sh/v1alpha1:TriggerAuthentication")
    assert auth["inputs"]["spec"] == {"podIdentity": {"provider": "gcp"}}
    assert trigger["authenticationRef"] == {"name": auth["inputs"]["metadata"]["name"]}
    (cluster,) = resources_of(run, "gcp:container/cluster:Cluster")
    assert cluster["inputs"]["monitoringConfig"]["managedPrometheus"] == {"enabled": True}


def pod_labels(run: dict) -> dict[str, str]:
    return workload(run)["inputs"]["spec"]["template"]["metadata"]["labels"]


# --- EKS installs KEDA on a cluster it creates, to query the user's Prometheus ---------------------------------

RELEASE = "kubernetes:helm.sh/v3:Release"
TRIGGER_AUTHENTICATION = "kubernetes:keda.sh/v1alpha1:TriggerAuthentication"


def keda_releases(run: dict) -> list[dict]:
    return [r for r in resources_of(run, RELEASE) if r["inputs"]["chart"] == "keda"]


def test_on_a_created_eks_cluster_keda_is_installed_before_what_needs_its_crds():
    run = run_stack("eks", keda_settings("eks", targetQueuePerReplica=3),
                    secrets={"pixtral:prometheusBasicAuth": "reader:a-password"})
    assert run["error"] is None, run["error"]
    (keda,) = keda_releases(run)
    (gke_keda,) = keda_releases(ok("gke", keda_settings("gke", targetQueuePerReplica=3)))
    inputs = keda["inputs"]
    assert (inputs["name"], inputs["namespace"], inputs["version"], inputs["repositoryOpts"]["repo"]) == (
        "keda", "keda", KEDA_CHART_VERSION, "https://kedacore.github.io/charts")
    assert inputs["version"] == gke_keda["inputs"]["version"], "one pin for every target"
    # No cloud identity on EKS: the Prometheus trigger calls the user's URL, never an AWS API.
    assert inputs["values"] == {"serviceAccount": {"operator": {"name": "keda-operator"}}}
    (scaled,) = resources_of(run, SCALED_OBJECT)
    (auth,) = resources_of(run, TRIGGER_AUTHENTICATION)
    for resource in (scaled, auth):
        assert f"{RELEASE}::{keda['name']}" in resource["depends_on"], f"{resource['type']} before KEDA's CRDs"
    (trigger,) = scaled["inputs"]["spec"]["triggers"]
    assert trigger["metadata"]["serverAddress"] == PROMETHEUS
    assert trigger["authenticationRef"] == {"name": auth["inputs"]["metadata"]["name"]}


@pytest.mark.parametrize("settings", [
    pytest.param({**keda_settings("eks", targetQueuePerReplica=3), "pixtral:clusterName": "theirs"}, id="reused"),
    pytest.param({"pixtral:autoscale": autoscale(targetQueuePerReplica=3), "pixtral:autoscaler": "hpa"}, id="hpa"),
    pytest.param({"pixtral:replicas": "2"}, id="fixed"),
])
def test_eks_installs_no_keda_where_nothing_of_the_programs_would_use_it(settings):
    """A reused cluster keeps its own KEDA (a second release would collide with it), an HPA needs none, and a fixed
    set nothing that scales it."""
    run = ok("eks", settings)
    assert keda_releases(run) == []
    says_needed = any("the cluster must run KEDA" in line for line in run["log"])
    assert says_needed == (settings.get("pixtral:autoscaler") != "hpa" and "pixtral:autoscale" in settings)


# --- Caches, rollouts, placement, termination -------------------------------------------------------------------

@pytest.mark.parametrize("stack", K8S_STACKS)
def test_each_pod_gets_its_own_read_write_once_cache_that_outlives_a_scale_in(stack):
    run = ok(stack, keda_settings(stack, targetQueuePerReplica=3))
    spec = workload(run)["inputs"]["spec"]
    assert workload(run)["type"] == "kubernetes:apps/v1:StatefulSet"
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert spec["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"
    assert resources_of(run, "kubernetes:core/v1:PersistentVolumeClaim") == []


def set_name(run: dict) -> str:
    return workload(run)["inputs"]["metadata"]["name"]


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_a_surge_rollout_puts_a_new_template_in_a_new_stateful_set_beside_the_old_one(stack):
    """pixtral:rollout surge (the default): a StatefulSet cannot start a pod beside the one it replaces, so each pod
    template gets a set of its own, named after it: a Pulumi resource of its own, which Pulumi creates and awaits
    until its pods are ready. The old set, no longer declared, is deleted at the end of the update, once that has
    succeeded; a failed or cancelled update leaves it serving (a replacement would be marked for deletion anyway)."""
    run = ok(stack, {"pixtral:replicas": "2"})
    first = set_name(run)
    generation = first.removeprefix("pixtral-")
    assert first != "pixtral" and len(generation) == 10
    assert workload(run)["name"] == first, "a new template is a new Pulumi resource, not a replacement of one"
    spec = workload(run)["inputs"]["spec"]
    # The set's own pods only (the Service, the budget and the spread still select every generation's pods).
    assert spec["selector"]["matchLabels"][GENERATION_LABEL] == generation
    assert pod_labels(run)[GENERATION_LABEL] == generation
    (service,) = resources_of(run, "kubernetes:core/v1:Service")
    assert GENERATION_LABEL not in service["inputs"]["spec"]["selector"], "both sets serve during a rollout"

    # A changed server description is a new set; a new replica count scales the same one (its claims stay), and
    # what the pods do not see (who may connect) leaves it alone. Each run is a process of its own: the name is a
    # function of the settings, not of the run.
    changed = ok(stack, {"pixtral:replicas": "2", "pixtral:maxModelLen": "16384"})
    assert set_name(changed) != first and workload(changed)["name"] == set_name(changed)
    assert set_name(ok(stack, {"pixtral:replicas": "5"})) == first
    assert set_name(ok(stack, {"pixtral:replicas": "2", "pixtral:allowedCidrs": '["10.0.0.0/8"]'})) == first

    options = workload(run)["options"]
    assert not options.get("deleteBeforeReplace"), "the old set must serve until the new one is ready"
    assert "pulumi.com/skipAwait" not in workload(run)["inputs"]["metadata"].get("annotations", {})
    # Pulumi awaits every pod the set's live replica count asks for: a first download and load, on a node the
    # cluster autoscaler may have to add first. Deleting the old set waits for its pods to drain.
    timeouts = options["customTimeouts"]
    assert (timeouts["create"], timeouts["update"]) == ("60m", "60m")
    grace = workload(run)["inputs"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert int(timeouts["delete"].removesuffix("m")) * 60 > grace, "a draining pod would outlast the delete wait"


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_a_rotated_key_rolls_the_same_set_one_pod_at_a_time(stack):
    """A new key is a new Secret, whose generated name only the deployment knows: the set stays (its name is known
    in every preview) and its pods roll in place, each ready before the next goes, on their own claims."""
    before = ok(stack, {"pixtral:replicas": "2"})
    rotated = run_stack(stack, {"pixtral:replicas": "2"}, secrets={"pixtral:apiKey": "rotated-key-0123456789abcdef"})
    assert rotated["error"] is None, rotated["error"]

    def key_secret_ref(run: dict) -> str:
        (key_env,) = [e for e in pod_spec(run)["containers"][0]["env"] if e["name"] == "VLLM_API_KEY"]
        return key_env["valueFrom"]["secretKeyRef"]["name"]

    # The new key is a new Secret under a new generated name, so the pods' template changes (they restart on it)...
    (secret,) = opaque_secrets(rotated)
    assert key_secret_ref(rotated) == secret["outputs"]["metadata"]["name"] != key_secret_ref(before)
    # ...while the set, named from what the program knows before the deployment, stays.
    assert set_name(rotated) == set_name(before)
    assert workload(rotated)["inputs"]["spec"]["updateStrategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"partition": 0}}


def test_the_set_name_is_known_before_the_deployment_knows_any_output():
    """The digest reads only what the program knows when it runs: a generated Secret name (an Output, unknown in a
    preview and new after a rotation) counts as a placeholder, so every preview shows the set by its real name."""
    import asyncio

    import pulumi

    from components.vllm_workload import _digest

    # An Output needs an event loop; a test of another file that ran asyncio.run() in this worker leaves none set.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def spec(secret_name, image="vllm/vllm-openai:v0.32.0"):
        return {"template": {"spec": {"containers": [{"image": image, "env": [
            {"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": secret_name}}}]}]}}}

    assert _digest(spec(pulumi.Output.from_input("pixtral-secrets-1a2b"))) == \
        _digest(spec(pulumi.Output.from_input("pixtral-secrets-9z8y")))
    assert _digest(spec("a")) != _digest(spec("a", image="vllm/vllm-openai:v0.33.0"))
    asyncio.set_event_loop(None)
    loop.close()


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_a_new_key_guard_is_a_new_set(stack):
    # The guard's code reaches the pods through a ConfigMap with a generated name; its digest in the template
    # makes a new guard a new template, so it rolls out as any changed setting does.
    annotations = workload(ok(stack))["inputs"]["spec"]["template"]["metadata"]["annotations"]
    guard = (USERDATA_DIR / GUARD_FILE).read_bytes()
    assert annotations["pixtral/guard-sha256"] == hashlib.sha256(guard).hexdigest()


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_an_autoscaler_turns_to_the_new_set_while_pulumi_awaits_it(stack):
    """The autoscaler's target is the new set's name, known before the set exists: the autoscaler sizes the new set
    to the load while `pulumi up` waits for it (the await counts the set's live replicas), and the old set goes
    only once that many pods are ready."""
    for settings in (keda_settings(stack, targetQueuePerReplica=3),
                     {"pixtral:autoscale": autoscale(targetQueuePerReplica=3), "pixtral:autoscaler": "hpa"}):
        if target_of(stack) == "gke" and "pixtral:autoscaler" in settings:
            continue  # gke scales with KEDA only
        run = ok(stack, settings)
        (scaler,) = resources_of(run, SCALED_OBJECT) + resources_of(run, HPA)
        assert scaler["inputs"]["spec"]["scaleTargetRef"]["name"] == set_name(run) != "pixtral"
        # Were it to wait for the set, the autoscaler would turn to it only after Pulumi's await had ended, at the
        # set's first replica, and the old set would go with the new one at that size.
        assert f"kubernetes:apps/v1:StatefulSet::{workload(run)['name']}" not in scaler["depends_on"]
        assert any(d.startswith("kubernetes:core/v1:Namespace::") for d in scaler["depends_on"])


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_an_in_place_rollout_keeps_one_set_and_takes_one_pod_out_at_a_time(stack):
    run = ok(stack, {"pixtral:replicas": "2", "pixtral:rollout": "inPlace"})
    assert set_name(run) == "pixtral"
    assert set_name(ok(stack, {"pixtral:replicas": "2", "pixtral:rollout": "inPlace",
                               "pixtral:maxModelLen": "16384"})) == "pixtral"
    spec = workload(run)["inputs"]["spec"]
    # One pod at a time, each ready before the next goes (RollingUpdate's own rule): no spare GPU needed, the
    # claims keep their weights. No `maxUnavailable`: behind an alpha gate in 1.34, the API server drops it, and
    # the next preview shows a change (the cluster tier's second preview caught it).
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert GENERATION_LABEL not in spec["selector"]["matchLabels"]


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_pods_scale_out_in_parallel_and_a_budget_guards_drains(stack):
    run = ok(stack, keda_settings(stack, targetQueuePerReplica=3))
    # Scale-out starts new pods at once, not each after the previous one's minutes-long start.
    assert workload(run)["inputs"]["spec"]["podManagementPolicy"] == "Parallel"
    (budget,) = resources_of(run, "kubernetes:policy/v1:PodDisruptionBudget")
    assert budget["inputs"]["spec"]["maxUnavailable"] == 1
    assert budget["inputs"]["spec"]["selector"]["matchLabels"].items() <= pod_labels(run).items()


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_with_a_shared_cache_a_new_pod_is_ready_before_an_old_one_goes(stack):
    run = ok(stack, {"pixtral:sharedCache": "true", "pixtral:replicas": "1"})
    assert workload(run)["type"] == "kubernetes:apps/v1:Deployment"
    assert workload(run)["inputs"]["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert workload(run)["options"]["customTimeouts"]["update"] == "60m", "pulumi up awaits the rollout"
    in_place = ok(stack, {"pixtral:sharedCache": "true", "pixtral:replicas": "1", "pixtral:rollout": "inPlace"})
    assert workload(in_place)["inputs"]["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_replicas_spread_across_nodes_and_zones(stack):
    run = ok(stack, keda_settings(stack, targetQueuePerReplica=3))
    constraints = {c["topologyKey"]: c for c in pod_spec(run)["topologySpreadConstraints"]}
    assert set(constraints) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for constraint in constraints.values():
        assert constraint["maxSkew"] == 1
        # Spreading is a preference: a pod never waits for it when a GPU is free elsewhere.
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
        assert constraint["labelSelector"]["matchLabels"].items() <= pod_labels(run).items()


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_the_cluster_autoscaler_never_moves_a_serving_pod_to_pack_nodes(stack):
    # Scale-down removes a GPU node once the pods' autoscaler has scaled its pod in; it never evicts a pod that
    # serves, which would cost a model load.
    template = workload(ok(stack, keda_settings(stack, targetQueuePerReplica=3)))["inputs"]["spec"]["template"]
    assert template["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    assert template["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"] == "true"


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_a_terminating_pod_finishes_its_generations(stack):
    run = ok(stack)
    container = pod_spec(run)["containers"][0]
    args = container["args"]
    drain = int(args[args.index("--shutdown-timeout") + 1])
    assert drain >= 32768 / 10, "vLLM would abort a long answer on SIGTERM (maxModelLen at the slowest decode)"
    sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod_spec(run)["terminationGracePeriodSeconds"] > sleep + drain


# --- Node pools follow load ------------------------------------------------------------------------------------

def gpu_pool(run: dict) -> dict:
    types = ("aws:eks/nodeGroup:NodeGroup", "gcp:container/nodePool:NodePool")
    (pool,) = [r for r in run["resources"] if r["type"] in types and r["name"].endswith("-gpu")]
    return pool


def pool_bounds(pool: dict) -> tuple[int, int]:
    inputs = pool["inputs"]
    if "scalingConfig" in inputs:
        return inputs["scalingConfig"]["minSize"], inputs["scalingConfig"]["maxSize"]
    return inputs["autoscaling"]["minNodeCount"], inputs["autoscaling"]["maxNodeCount"]


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
@pytest.mark.parametrize(("shared_cache", "rollout", "surge"), [
    # A surge rollout at the top of the range: a whole new set beside the old one, or one Deployment surge pod.
    (False, "surge", 7), (True, "surge", 1), (False, "inPlace", 0), (True, "inPlace", 0)])
def test_gpu_node_pool_scales_between_the_nodes_the_replica_range_needs(stack, shared_cache, rollout, surge):
    run = ok(stack, {**keda_settings(stack, targetQueuePerReplica=3), "pixtral:sharedCache": str(shared_cache).lower(),
                     "pixtral:rollout": rollout,
                     "pixtral:autoscale": json.dumps({"minReplicas": 3, "maxReplicas": 7,
                                                      "targetQueuePerReplica": 3})})
    gpus_per_node = {"eks": 1, "gke": 2}[stack]  # g6e.xlarge: 1 L40S; g2-standard-24: 2 L4
    gpus_per_pod = int(run["config"]["pixtral:gpusPerReplica"])
    pods_per_node = gpus_per_node // gpus_per_pod
    pool = gpu_pool(run)
    assert pool_bounds(pool) == (math.ceil(3 / pods_per_node), math.ceil((7 + surge) / pods_per_node))
    # The cluster autoscaler owns the current size; `pulumi up` must not reset it.
    assert pool["options"]["ignoreChanges"] in (["scalingConfig.desiredSize"], ["nodeCount"])


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
def test_gpu_node_pool_packs_several_pods_per_node_when_gpus_allow(stack):
    settings = {**keda_settings(stack, targetQueuePerReplica=3), "pixtral:gpusPerReplica": "1",
                "pixtral:tensorParallelSize": "1"}
    if stack == "eks":
        settings["pixtral:instanceType"] = "g6e.12xlarge"  # 4 L40S
    settings["pixtral:autoscale"] = json.dumps({"minReplicas": 1, "maxReplicas": 9, "targetQueuePerReplica": 3})
    per_node = {"eks": 4, "gke": 2}[stack]
    assert pool_bounds(gpu_pool(ok(stack, settings))) == (1, math.ceil(2 * 9 / per_node)), "9 replicas and 9 new"


# --- Refusals, before any resource -----------------------------------------------------------------------------

@pytest.mark.parametrize(("stack", "settings", "named"), [
    ("k8s", {"pixtral:autoscaler": "knative", "pixtral:autoscale": autoscale(targetQueuePerReplica=3)},
     "pixtral:autoscaler: knative is not allowed; expected one of keda, hpa"),
    ("k8s", {"pixtral:autoscale": autoscale()}, "pixtral:autoscale"),
    ("k8s", {"pixtral:autoscale": json.dumps({"minReplicas": 4, "maxReplicas": 2, "targetQpsPerReplica": 1})},
     "maxReplicas greater than or equal to minReplicas"),
    ("k8s", {"pixtral:autoscale": autoscale(targetQueuePerReplica=3)}, "pixtral:prometheusUrl is not set"),
    ("k8s", {"pixtral:autoscale": autoscale(targetQueuePerReplica=3), "pixtral:autoscaler": "hpa",
             "pixtral:prometheusUrl": PROMETHEUS}, "pixtral:prometheusUrl: http://prometheus"),
    ("k8s", {"pixtral:autoscaler": "hpa"}, "pixtral:autoscaler: hpa is not allowed; expected no value without "
                                            "pixtral:autoscale"),
    ("k8s", {"pixtral:autoscale": autoscale(targetQueuePerReplica=3, downscaleDelaySeconds=7200),
             "pixtral:prometheusUrl": PROMETHEUS}, "pixtral:autoscale: downscaleDelaySeconds 7200 is not allowed"),
    ("k8s", {"pixtral:prometheusUrl": "prometheus:9090", "pixtral:autoscale": autoscale(targetQueuePerReplica=3)},
     "pixtral:prometheusUrl: prometheus:9090 is not allowed; expected an http(s) URL"),
    ("k8s", {"pixtral:replicas": "2", "pixtral:autoscale": autoscale(targetQueuePerReplica=3)},
     "pixtral:replicas and pixtral:autoscale are both set"),
    ("gke", {"pixtral:autoscale": autoscale(targetQueuePerReplica=3), "pixtral:autoscaler": "hpa"},
     "pixtral:autoscaler: hpa is not allowed; expected keda on gke"),
    ("gke", {"pixtral:autoscale": autoscale(targetQueuePerReplica=3), "pixtral:prometheusUrl": PROMETHEUS},
     "pixtral:prometheusUrl only applies to target kubernetes or eks"),
    ("eks", {"pixtral:autoscale": autoscale(targetQueuePerReplica=3)}, "pixtral:prometheusUrl is not set"),
    ("k8s", {"pixtral:sharedCache": "maybe"}, "pixtral:sharedCache: maybe is not allowed"),
    ("k8s", {"pixtral:rollout": "blueGreen"}, "pixtral:rollout: blueGreen is not allowed; expected one of surge, "
                                              "inPlace"),
    # The VM fleets' keys: node pools take one type and no on-demand base here, and a Service's reach is
    # serviceType / allowedCidrs.
    ("eks", {"pixtral:onDemandBaseReplicas": "1"}, "pixtral:onDemandBaseReplicas only applies to target aws or gcp"),
    ("eks", {"pixtral:instanceTypes": '["g6e.xlarge"]'}, "pixtral:instanceTypes only applies to target aws"),
    ("gke", {"pixtral:internal": "true"}, "pixtral:internal only applies to target aws or gcp"),
])
def test_bad_autoscaling_settings_are_refused_naming_the_key_before_any_resource(stack, settings, named):
    run = run_stack(stack, settings)
    assert run["error"] and named in run["error"], run["error"]
    assert run["resources"] == [], "refused after resources were declared"


# --- The shipped autoscaled stack, and the vendored schemas ----------------------------------------------------

def test_the_autoscaled_kubernetes_stack_ships_keda_on_vllms_queue():
    run = ok("k8s-autoscale")
    (scaled,) = resources_of(run, SCALED_OBJECT)
    assert scaled["inputs"]["spec"]["triggers"][0]["metadata"]["query"].startswith("sum(vllm:num_requests_waiting")
    for document in manifests(run["resources"]):
        validate(document)


def test_custom_resource_validation_catches_a_misspelt_field():
    # Copies: the program's record is shared by every test in this process (conftest caches it).
    documents = copy.deepcopy(manifests(ok("k8s-autoscale")["resources"]))
    (scaled,) = [d for d in documents if d["kind"] == "ScaledObject"]
    scaled["spec"]["maxReplicasCount"] = scaled["spec"].pop("maxReplicaCount")
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled)
    gke = copy.deepcopy(manifests(ok("gke", {"pixtral:autoscale": autoscale(targetQueuePerReplica=3)})["resources"]))
    (monitoring,) = [d for d in gke if d["kind"] == "PodMonitoring"]
    monitoring["spec"]["endpoints"][0]["authorisation"] = monitoring["spec"]["endpoints"][0].pop("authorization")
    with pytest.raises(jsonschema.ValidationError):
        validate(monitoring)


@pytest.mark.parametrize(("stack", "settings"), [
    ("k8s-autoscale", {}),
    ("k8s", {"pixtral:autoscale": autoscale(targetQpsPerReplica=2), "pixtral:autoscaler": "hpa",
             "pixtral:sharedCache": "true"}),
    ("gke", {"pixtral:autoscale": autoscale(targetQueuePerReplica=3)}),
    ("eks", {"pixtral:autoscale": autoscale(targetQueuePerReplica=3), "pixtral:prometheusUrl": PROMETHEUS}),
])
def test_render_summarises_every_autoscaling_resource(stack, settings):
    # `pixtralctl render`'s review table: each resource type autoscaling declares shows its key settings.
    for resource in ok(stack, settings)["resources"]:
        assert key_settings(resource["type"], resource["inputs"]), f"{resource['type']} has no summary"
