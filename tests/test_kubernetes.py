"""The Kubernetes targets: one workload, the same vLLM command line as the VMs, valid and reviewed manifests."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from conftest import (
    PROJECT_DIR,
    VM_STACKS,
    opaque_secrets,
    pod_controller,
    replicas_serve_tls,
    required_tool,
    resources_of,
    run_stack,
    stacks_of,
    target_of,
)
from manifest_schemas import validate

from pixtral_deploy import targets
from pixtral_deploy.cloudinit import declared_user_data
from pixtral_deploy.manifests import REDACTED, manifests
from pixtral_deploy.server import GUARD_FILE, vllm_command
from pixtral_deploy.spec import KUBERNETES_VERSION

# The stacks as shipped with a fixed replica count: the tests add replicas or autoscale themselves (an autoscaled
# stack, which refuses `replicas`, has tests of its own in test_kubernetes_scaling.py).
K8S_STACKS = [s for s in stacks_of(*targets.of_platform("kubernetes"))
              if "pixtral:autoscale" not in run_stack(s)["config"]]
SKIPS_FILE = Path(__file__).parent / "checkov-skips.yaml"


# Variants every manifest check also covers: autoscaled through KEDA and through an HPA, and a shared cache.
AUTOSCALE = '{"minReplicas": 2, "maxReplicas": 5, "targetQueuePerReplica": 3}'
VARIANTS = ({"pixtral:autoscale": AUTOSCALE, "pixtral:prometheusUrl": "http://prometheus.monitoring.svc:9090"},
            {"pixtral:autoscale": AUTOSCALE, "pixtral:autoscaler": "hpa", "pixtral:sharedCache": "true"})


def variants(stack: str) -> list[dict[str, str]]:
    """The stack as shipped, and the variants its target takes (GKE: KEDA only, without a URL)."""
    if target_of(stack) != "gke":
        return [{}, *VARIANTS]
    return [{}, {"pixtral:autoscale": AUTOSCALE}, {"pixtral:sharedCache": "true", "pixtral:replicas": "2"}]


def _deployment_of(run: dict) -> dict:
    return pod_controller(run)["inputs"]


def _container(run: dict) -> dict:
    (container,) = _deployment_of(run)["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_container_serves_what_the_stack_asks_for(stack):
    # What a user set reaches vLLM's own flags in the pod, as vLLM's parser will read them (last value wins).
    asked = {"pixtral:maxModelLen": "12288", "pixtral:maxImagesPerPrompt": "3", "pixtral:servedModelName": "pix",
             "pixtral:port": "9002"}
    container = _container(run_stack(stack, asked))
    assert container["command"] == vllm_command("python3")
    args = container["args"]
    flags = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
    assert (flags["--max-model-len"], flags["--limit-mm-per-prompt"], flags["--served-model-name"],
            flags["--port"]) == ("12288", '{"image":3}', "pix", "9002")
    assert flags["--model"] == "mistralai/Pixtral-12B-2409"
    assert [port["containerPort"] for port in container["ports"]] == [9002]


@pytest.mark.parametrize("stack", K8S_STACKS)
@pytest.mark.parametrize("vm_stack", VM_STACKS)
def test_pod_and_vm_get_identical_vllm_arguments_for_the_same_server(stack, vm_stack):
    # The same server settings on a VM and in a pod: the arguments must match flag for flag.
    shared = {"pixtral:maxImagesPerPrompt": "2", "pixtral:port": "9001", "pixtral:maxModelLen": "16384",
              "pixtral:quantization": "fp8", "pixtral:tensorParallelSize": "1", "pixtral:gpusPerReplica": "1"}
    vm_settings = {k: v for k, v in shared.items() if k != "pixtral:gpusPerReplica"}
    if not replicas_serve_tls(run_stack(vm_stack)):
        # The VMs' vLLM serves plain HTTP (no --ssl-* flags: tls false, or behind the AWS fleet's HTTPS balancer):
        # compare with a pod that does too.
        shared = {**shared, "pixtral:tls": "false"}
    pod_args = _container(run_stack(stack, shared))["args"]
    vm_run = run_stack(vm_stack, vm_settings)
    # A fleet's templates (standard and Spot) boot one document.
    (user_data,) = {declared_user_data(r) for r in vm_run["resources"] if declared_user_data(r)}
    (args_file,) = [f for f in yaml.safe_load(user_data)["write_files"] if f["path"] == "/etc/pixtral/vllm.args"]
    assert args_file["content"].splitlines() == pod_args


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_api_key_reaches_vllm_from_the_secret_never_as_an_argument(stack):
    run = run_stack(stack, secrets={"pixtral:apiKey": "sk-k8s-known-key"})
    container = _container(run)
    assert "sk-k8s-known-key" not in json.dumps(container)
    (key_env,) = [e for e in container["env"] if e["name"] == "VLLM_API_KEY"]
    (secret,) = opaque_secrets(run)
    assert key_env["valueFrom"]["secretKeyRef"] == {"name": secret["outputs"]["metadata"]["name"],
                                                    "key": "VLLM_API_KEY"}
    assert secret["inputs"]["stringData"]["VLLM_API_KEY"] == "sk-k8s-known-key"


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_gpu_limits_tolerations_and_shared_memory(stack):
    run = run_stack(stack)
    gpus = int(run["config"].get("pixtral:gpusPerReplica", 1))
    container = _container(run)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == str(gpus)
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert container["args"][container["args"].index("--tensor-parallel-size") + 1] == str(gpus)
    pod = _deployment_of(run)["spec"]["template"]["spec"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    (shm,) = [v for v in pod["volumes"] if v["name"] == "shm"]
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "shm", "mountPath": "/dev/shm"} in container["volumeMounts"]


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_startup_probe_covers_a_first_download_then_health_checks(stack):
    container = _container(run_stack(stack))
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 1200, "a first 25 GB download needs time"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_model_cache_volume_survives_pod_restarts(stack):
    # A claim per pod, from the StatefulSet's template: pod SET-N mounts claim cache-SET-N whenever it runs.
    run = run_stack(stack, {"pixtral:cacheSizeGb": "150", "pixtral:storageClass": "fast-ssd"})
    assert resources_of(run, "kubernetes:core/v1:PersistentVolumeClaim") == []
    (template,) = _deployment_of(run)["spec"]["volumeClaimTemplates"]
    assert template["metadata"]["name"] == "cache"
    assert template["spec"]["resources"]["requests"]["storage"] == "150Gi"
    assert template["spec"]["storageClassName"] == "fast-ssd"
    assert {"name": "cache", "mountPath": "/cache"} in _container(run)["volumeMounts"]
    env = {e["name"]: e.get("value") for e in _container(run)["env"]}
    assert env["HF_HOME"].startswith("/cache/")


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_shared_cache_is_one_read_write_many_claim_every_pod_mounts(stack):
    run = run_stack(stack, {"pixtral:sharedCache": "true", "pixtral:replicas": "3", "pixtral:storageClass": "efs"})
    (claim,) = resources_of(run, "kubernetes:core/v1:PersistentVolumeClaim")
    assert claim["inputs"]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["inputs"]["spec"]["storageClassName"] == "efs"
    workload = _deployment_of(run)
    assert "volumeClaimTemplates" not in workload["spec"]
    assert {"name": "cache", "persistentVolumeClaim": {"claimName": claim["inputs"]["metadata"]["name"]}} in workload[
        "spec"]["template"]["spec"]["volumes"]


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_recommended_labels_replicas_and_node_selector(stack):
    run = run_stack(stack, {"pixtral:replicas": "2", "pixtral:nodeSelector": '{"pool": "gpu-a"}'})
    deployment = _deployment_of(run)
    labels = deployment["metadata"]["labels"]
    for key in ("name", "instance", "component", "part-of", "managed-by", "version"):
        assert f"app.kubernetes.io/{key}" in labels
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["nodeSelector"]["pool"] == "gpu-a"
    assert resources_of(run, "kubernetes:policy/v1:PodDisruptionBudget"), "two replicas need a disruption budget"
    (template,) = deployment["spec"]["volumeClaimTemplates"]
    assert template["spec"]["accessModes"] == ["ReadWriteOnce"], "two replicas must not need ReadWriteMany"


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_service_type_port_and_endpoint(stack):
    run = run_stack(stack, {"pixtral:allowedCidrs": '["198.51.100.0/24"]'})
    (service,) = resources_of(run, "kubernetes:core/v1:Service")
    spec = service["inputs"]["spec"]
    assert spec["type"] == "LoadBalancer" and spec["ports"][0]["port"] == 8081
    assert spec["loadBalancerSourceRanges"] == ["198.51.100.0/24"]
    # AWS load balancers publish a hostname, GKE's an IP (the mock answers as each cloud does).
    (ingress,) = service["outputs"]["status"]["loadBalancer"]["ingress"]
    assert run["outputs"]["endpoint"] == f"https://{ingress.get('hostname') or ingress['ip']}:8081"

    private = run_stack(stack, {"pixtral:serviceType": "ClusterIP"})
    assert private["outputs"]["endpoint"] == "https://pixtral.pixtral.svc.cluster.local:8081"


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_a_rotated_key_or_a_new_guard_rolls_the_pods(stack):
    # Pods read the key (env) and the guard (volume) only at start. pulumi-kubernetes replaces a Secret or
    # ConfigMap whose data changes (unless the provider makes them mutable); declared without a name, the
    # replacement gets a new generated name, the pod template that refers to it changes, and the pods roll.
    run = run_stack(stack)
    (secret,) = opaque_secrets(run)
    config_maps = resources_of(run, "kubernetes:core/v1:ConfigMap")
    # The guard's, and with warm starts the store scripts' (tests/test_pod_artefacts.py): both read at start only.
    (guard,) = [c for c in config_maps if GUARD_FILE in c["inputs"]["data"]]
    for obj in (secret, *config_maps):
        assert "name" not in obj["inputs"]["metadata"], f"{obj['name']}: a fixed name would keep the pods as they are"
    pod = _deployment_of(run)["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == secret["outputs"]["metadata"]["name"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["guard"]["configMap"]["name"] == guard["outputs"]["metadata"]["name"]
    for provider in resources_of(run, "pulumi:providers:kubernetes"):
        options = provider["inputs"]
        assert not options.get("enableSecretMutable") and not options.get("enableConfigMapMutable")


@pytest.mark.parametrize("stack", K8S_STACKS)
def test_pulumi_up_waits_for_the_service_beyond_a_gpu_node_scale_up(stack):
    # Pulumi awaits a Service until a pod is selected (ready or not) and a load balancer address exists; its
    # 10-minute default is shorter than a GPU node scaled up from zero can take to accept the pod.
    (service,) = resources_of(run_stack(stack), "kubernetes:core/v1:Service")
    timeouts = service["options"].get("customTimeouts", {})
    for operation in ("create", "update"):
        assert _minutes(timeouts.get(operation, "10m")) >= 20, timeouts


def _minutes(duration: str) -> float:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([smh])", duration).groups()
    return float(number) * {"s": 1 / 60, "m": 1, "h": 60}[unit]


@pytest.mark.parametrize("stack", [s for s in K8S_STACKS if target_of(s) in ("eks", "gke")])
def test_managed_clusters_get_a_tainted_gpu_pool(stack):
    run = run_stack(stack)
    if target_of(stack) == "eks":
        (pool,) = [r for r in resources_of(run, "aws:eks/nodeGroup:NodeGroup") if r["name"].endswith("-gpu")]
        assert pool["inputs"]["amiType"].endswith("NVIDIA")
        assert pool["inputs"]["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
        assert pool["inputs"]["instanceTypes"] == [run["config"]["pixtral:instanceType"]]
    else:
        (pool,) = [r for r in resources_of(run, "gcp:container/nodePool:NodePool") if r["name"].endswith("-gpu")]
        config = pool["inputs"]["nodeConfig"]
        assert config["guestAccelerators"][0]["gpuDriverInstallationConfig"]["gpuDriverVersion"] == "LATEST"
        assert config["taints"][0]["key"] == "nvidia.com/gpu"


@pytest.mark.parametrize("stack", [s for s in K8S_STACKS if target_of(s) in ("eks", "gke")])
def test_existing_cluster_is_reused_by_name(stack):
    run = run_stack(stack, {"pixtral:clusterName": "team-cluster"})
    assert run["error"] is None, run["error"]
    cluster_types = ("aws:eks/cluster:Cluster", "gcp:container/cluster:Cluster")
    clusters = [r for r in run["resources"] if r["type"] in cluster_types]
    assert clusters == [], "a named cluster must be reused, not created"
    assert run["outputs"]["clusterName"] == "team-cluster"


# --- Manifests checked by real tools ---------------------------------------------------------------------------

@pytest.mark.parametrize("stack", K8S_STACKS)
def test_manifests_pass_kubernetes_schema_validation(stack):
    kinds = set()
    for settings in variants(stack):
        run = run_stack(stack, settings)
        assert run["error"] is None, run["error"]
        for document in manifests(run["resources"]):
            # strict: an unknown field (a typo in a key) is an error, not silently dropped by the API server. Custom
            # resources are checked against their vendored CRDs (tests/manifest_schemas.py).
            validate(document)
            kinds.add(document["kind"])
    assert kinds >= {"Namespace", "Secret", "PersistentVolumeClaim", "StatefulSet", "Deployment", "Service",
                     "NetworkPolicy", "PodDisruptionBudget", "ScaledObject"}


def test_schema_validation_catches_a_misspelt_field():
    # A copy: the program's record is shared by every test in this process (conftest caches it).
    documents = copy.deepcopy(manifests(run_stack(K8S_STACKS[0])["resources"]))
    (deployment,) = [d for d in documents if d["kind"] == "StatefulSet"]
    deployment["spec"]["template"]["spec"]["tolerations"][0]["efect"] = "NoSchedule"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, f"{KUBERNETES_VERSION}.0", strict=True)


def test_rendered_secrets_are_redacted():
    documents = manifests(run_stack(K8S_STACKS[0], secrets={"pixtral:apiKey": "sk-render-known-key"})["resources"])
    secrets = sorted((d for d in documents if d["kind"] == "Secret"), key=lambda d: d["type"])
    assert [secret["stringData"] for secret in secrets] == [
        {"VLLM_API_KEY": REDACTED}, {"tls.crt": REDACTED, "tls.key": REDACTED}]


def _checkov(directory: Path) -> list[dict]:
    # checkov pins packaging<24, which the Pulumi SDK cannot share a venv with: it lives in a venv of its own.
    checkov = required_tool("checkov", "python3 -m venv .venv-checkov && .venv-checkov/bin/pip install checkov==3.3.30",
                            (str(PROJECT_DIR / ".venv-checkov/bin/checkov"),))
    done = subprocess.run([checkov, "-d", str(directory), "--framework", "kubernetes", "--skip-download",
                           "--quiet", "--compact", "-o", "json"], capture_output=True, text=True, timeout=300)
    assert done.stdout, done.stderr
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    return [check for r in reports for check in r.get("results", {}).get("failed_checks", [])]


def test_checkov_findings_are_fixed_or_explained(tmp_path):
    skips = yaml.safe_load(SKIPS_FILE.read_text())
    assert all(reason.strip() for reason in skips.values()), "every skipped check needs a reason"
    for stack in K8S_STACKS:
        for number, settings in enumerate(variants(stack)):
            for index, document in enumerate(manifests(run_stack(stack, settings)["resources"])):
                (tmp_path / f"{stack}-{number}-{index}-{document['kind']}.yaml").write_text(yaml.safe_dump(document))
    failed = _checkov(tmp_path)
    unexplained = sorted({f"{c['check_id']} ({c['check_name']}) in {Path(c['file_path']).name}" for c in failed
                          if c["check_id"] not in skips})
    assert not unexplained, "checkov findings that are neither fixed nor in checkov-skips.yaml:\n" + "\n".join(
        unexplained)
    stale = set(skips) - {c["check_id"] for c in failed}
    assert not stale, f"checkov-skips.yaml lists checks that no longer fail (remove them): {sorted(stale)}"


@pytest.mark.parametrize("stack", [s for s in K8S_STACKS if target_of(s) in ("eks", "gke")])
def test_created_cluster_is_reached_through_the_cloud_clis_token_plugin(stack):
    run = run_stack(stack)
    (provider,) = [r for r in run["resources"] if r["type"] == "pulumi:providers:kubernetes"]
    kubeconfig = json.loads(provider["inputs"]["kubeconfig"])
    user = kubeconfig["users"][0]["user"]["exec"]
    expected = {"eks": "aws", "gke": "gke-gcloud-auth-plugin"}[target_of(stack)]
    assert user["command"] == expected
    assert kubeconfig["clusters"][0]["cluster"]["server"].startswith("https://")
    assert kubeconfig["current-context"] == kubeconfig["contexts"][0]["name"]


@pytest.mark.parametrize("stack", [s for s in K8S_STACKS if target_of(s) == "kubernetes"])
def test_existing_cluster_is_reached_through_the_configured_kubeconfig_and_context(stack):
    kubeconfig = "apiVersion: v1\nkind: Config\nclusters: []\n# sk-not-a-real-kubeconfig-secret\n"
    run = run_stack(stack, {"pixtral:context": "team-gpu"}, secrets={"pixtral:kubeconfig": kubeconfig})
    (provider,) = [r for r in run["resources"] if r["type"] == "pulumi:providers:kubernetes"]
    assert provider["inputs"]["kubeconfig"] == kubeconfig and provider["inputs"]["context"] == "team-gpu"
    assert "sk-not-a-real-kubeconfig-secret" not in json.dumps(run["outputs"])
    workload = [r for r in run["resources"] if r["type"].startswith("kubernetes:")]
    assert workload, "the workload must be declared through that provider"
