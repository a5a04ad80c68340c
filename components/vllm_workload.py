"""The vLLM workload on any Kubernetes cluster: namespace, secrets, model cache, pods, Service.

The container starts vLLM with `vllm_args` (the same function the VMs' cloud-init uses), and gets the API key from
the Secret as VLLM_API_KEY: never as a literal argument, which would be readable in the pod spec. With TLS, the
server's certificate and key are a kubernetes.io/tls Secret mounted read-only where `vllm_args` points vLLM.
With pixtral:domain the endpoint is that name and the certificate carries it; the cluster's side declares the DNS
record (components/eks_cluster.py, gke_cluster.py) for the Service's address, `address` here.

The pods are a StatefulSet with a ReadWriteOnce cache claim per pod (what every default StorageClass provides): a
pod scaled in keeps its claim, and when it comes back it finds its weights there. With pixtral:sharedCache the pods
are a Deployment on one ReadWriteMany claim instead.

A rollout (pixtral:rollout surge, the default) never removes a pod before its replacement is ready. A Deployment
does that itself (maxSurge 1, maxUnavailable 0). A StatefulSet cannot: the pod it replaces holds the GPU and the
claim. So each pod template is a StatefulSet of its own: a Pulumi resource of its own, named after a digest of its
spec. A changed template is a new resource, which Pulumi creates and awaits (every pod its live replica count asks
for); the old set is no longer declared, so Pulumi deletes it at the end of the update, once everything else has
succeeded. Not as a replacement: Pulumi would mark a replaced resource for deletion even when its replacement's
creation failed, and delete it first thing at the next `pulumi up`. Here a failed or cancelled update leaves the
serving set alone. The digest covers what the program's settings decide (image, arguments, resources, cache, the
key guard's code); what only the spec knows (the generated names of a rotated key's or a renewed
certificate's Secret) rolls the same set's pods in place, one at a time. pixtral:rollout inPlace keeps one set,
`pixtral`, for clusters with no spare GPU.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.pod_artefacts import SERVICE_ACCOUNT, PodArtefactStore, init_containers, scripts, scripts_digest
from components.scale_to_zero import scales_to_zero
from components.stack_ca import StackCa
from pixtral_deploy.catalog import AWS_ACCELERATOR_LABEL, GFD_PRODUCT_LABEL, GFD_PRODUCTS, GKE_ACCELERATOR_LABEL
from pixtral_deploy.cloudinit import USERDATA_DIR
from pixtral_deploy.fleet_plan import fleet_plan
from pixtral_deploy.network import is_ip_address
from pixtral_deploy.server import (
    GUARD_FILE,
    TLS_CERT_FILE,
    TLS_DIR,
    TLS_KEY_FILE,
    VLLM_MODULE,
    vllm_args,
    vllm_command,
)
from pixtral_deploy.spec import KUBERNETES_VERSION, StackSpec

CACHE_MOUNT = "/cache"
# The key-guard middleware (--middleware in vLLM's arguments) comes from a ConfigMap mounted here.
GUARD_MOUNT = "/opt/pixtral/python"
# vLLM's image runs as root; this workload runs it as an unprivileged, high UID instead (docs/kubernetes.md).
RUN_AS_USER = 10001
# Per GPU: vLLM's API server, tokenizer and image preprocessing are CPU-bound; weights stage through host memory.
CPU_PER_GPU = 2
MEMORY_GI_PER_GPU = 16
MEMORY_LIMIT_GI_PER_GPU = 24
SHM_GI_PER_GPU = 2
PROBE_PERIOD_SECONDS = 10
# How long `pulumi up` waits for the Service to select a pod and get an address (see _service).
SERVICE_AWAIT = "30m"
# How long `pulumi up` waits for the pods to be ready: a GPU node from zero (about 10 minutes), the image, and the
# first download and load (the startup probe's health grace from the fleet plan: 30 minutes on a cluster).
WORKLOAD_AWAIT = "60m"
# Deleting the pods' controller waits for its pods to go (Pulumi deletes in the foreground): a pod may drain for its
# whole termination grace, then its claims go; this much more covers the controller's own steps.
DELETE_MARGIN_MINUTES = 10
# The pod label that tells one StatefulSet's pods from the next one's during a surge rollout.
GENERATION_LABEL = "pixtral/generation"
# A terminating pod leaves the Service's endpoints while it sleeps, so kube-proxy and load balancers stop sending it
# new requests before vLLM drains the ones it has (the fleet plan's drain); the kubelet kills it only after both.
PRESTOP_SLEEP_SECONDS = 15
# vLLM's own exit after its drain: the engine's processes stop and release the GPU.
EXIT_SECONDS = 30
# Spread replicas over nodes and zones, but never leave a pod pending for it: a free GPU anywhere beats none.
SPREAD_TOPOLOGIES = ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
# The TLS Secret's files: root-owned, readable by the pod's fsGroup (the server's group) and nobody else.
TLS_FILE_MODE = 0o440

# The pods meet Pod Security's `restricted` profile (non-root, no privilege escalation, every capability dropped,
# RuntimeDefault seccomp, only secret / claim / emptyDir volumes): the namespace enforces it, so nothing placed in
# it later runs with more. Pinned to the version the clusters are made with, so a newer API server does not change
# the rules under a running stack.
POD_SECURITY = {"pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": f"v{KUBERNETES_VERSION}"}


def kubelet_literal(words: list[str]) -> list[str]:
    """Words the kubelet passes on as written. It expands `$(NAME)` in a container's command, args and env values
    to the variable's value (`--chat-template $(VLLM_API_KEY)` would put the key on vLLM's command line) and reads
    `$$` as one `$` (k8s.io/kubernetes third_party/forked/golang/expansion): every `$` doubled comes out as itself,
    whatever follows it."""
    return [word.replace("$", "$$") for word in words]


@dataclass
class VllmWorkloadArgs:
    spec: StackSpec
    api_key: pulumi.Input[str]
    hf_token: pulumi.Input[str] | None = None
    # Labels the pods need to land on GPU nodes the program created (added to pixtral:nodeSelector).
    node_selector: dict[str, str] = field(default_factory=dict)
    # The StorageClass the cluster the program created provides, when pixtral:storageClass names none.
    storage_class: str | None = None
    instance: str = "pixtral"
    # The stack CA that signs the server's certificate; None serves plain HTTP (pixtral:tls false).
    ca: StackCa | None = None
    # The stack's artefact store (eks and gke: their own; kubernetes: the user's): pods fill their cache claim from it
    # and the first one publishes the model there (components/pod_artefacts.py). None: every pod downloads from the Hub.
    artefacts: PodArtefactStore | None = None


def termination_grace_seconds(spec: StackSpec) -> int:
    """The preStop sleep, the plan's drain (vLLM's --shutdown-timeout), then vLLM's exit."""
    return PRESTOP_SLEEP_SECONDS + fleet_plan(spec).drain_seconds + EXIT_SECONDS


def delete_await(spec: StackSpec) -> str:
    """How long `pulumi destroy` (and the end of a surge rollout) waits for a set's pods to go."""
    return f"{math.ceil(termination_grace_seconds(spec) / 60) + DELETE_MARGIN_MINUTES}m"


def gpu_node_affinity(gpu: str) -> dict:
    """On a cluster the program did not make, pixtral:gpuType is where the pods may run, not only what the model is
    sized for: a smaller GPU of a mixed cluster would fail the load. Nodes are told apart by whichever well-known
    label they carry (GKE's, the AWS autoscaler convention's, NVIDIA feature discovery's): the terms are
    alternatives, so any one of them admits a node."""
    terms = [(GKE_ACCELERATOR_LABEL, (gpu,)), (AWS_ACCELERATOR_LABEL, (gpu,)), (GFD_PRODUCT_LABEL, GFD_PRODUCTS[gpu])]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": key, "operator": "In", "values": list(values)}]} for key, values in terms]}}}


def labels(spec: StackSpec, instance: str) -> dict[str, str]:
    """The Kubernetes recommended labels."""
    return {
        "app.kubernetes.io/name": "pixtral",
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": "server",
        "app.kubernetes.io/part-of": "pixtral-deploy",
        "app.kubernetes.io/managed-by": "pulumi",
        "app.kubernetes.io/version": spec.server.vllm_version,
    }


class VllmWorkload(pulumi.ComponentResource):
    """Pixtral on vLLM in one namespace; `endpoint` is the Service's address once it has one."""

    endpoint: pulumi.Output[str]
    # Where clients reach the Service (load balancer hostname or IP, else its in-cluster name): what a domain's
    # record points at.
    address: pulumi.Output[str]
    namespace: pulumi.Output[str]
    service_name: pulumi.Output[str]
    # What an autoscaler scales (StatefulSet, or Deployment with a shared cache), and the pods' Secret and labels.
    # The name is known before the controller exists: an autoscaler turns to a new StatefulSet as it is created, so
    # the new set grows to the load while `pulumi up` awaits it, and the old set goes only after that.
    workload_kind: str
    workload_name: pulumi.Output[str]
    secret_name: pulumi.Output[str]
    selector: dict[str, str]

    def __init__(self, name: str, args: VllmWorkloadArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pixtral:kubernetes:VllmWorkload", name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        # What the pods must not start before (the store's rights and its service account), with a store.
        self._store_ready: list[pulumi.Resource] = []
        spec = args.spec
        pods = spec.kubernetes
        self._labels = labels(spec, args.instance)
        self._selector = {key: self._labels[key] for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}

        namespace = k8s.core.v1.Namespace(
            name, metadata={"name": pods.namespace, "labels": {**self._labels, **POD_SECURITY}}, opts=self._child
        )
        ns = namespace.metadata["name"]
        secret = self._secret(ns, args)
        guard = self._guard(ns)
        store_access = self._store_access(ns, args.artefacts) if args.artefacts else None
        service = self._service(ns, spec)
        host = service_host(service, self._service_type(spec), pods.namespace)
        tls_secret = self._tls_secret(ns, args.ca, host, spec.tls.domain, pods.namespace) if args.ca else None
        pod_template = self._pod_template(secret, guard, tls_secret, spec, args)
        if store_access is not None:
            pod_template = self._with_store(pod_template, store_access, spec, args.artefacts)
        if pods.shared_cache:
            workload_name = self._deployment(ns, pod_template, self._shared_cache(ns, spec, args.storage_class), spec)
        else:
            workload_name = self._stateful_set(ns, pod_template, spec, args.storage_class)
        self._network_policy(ns, spec)
        # Declared for any range above one pod, so 2 and 50 replicas declare the same resources.
        if spec.scaling.max_replicas > 1:
            self._disruption_budget(ns)
        self.namespace = ns
        self.service_name = service.metadata["name"]
        self.workload_kind = "Deployment" if pods.shared_cache else "StatefulSet"
        self.workload_name = workload_name
        self.secret_name = secret.metadata["name"]
        self.selector = self._selector
        self.address = host
        self.endpoint = pulumi.Output.from_input(spec.tls.domain or host).apply(spec.endpoint_url)
        self.register_outputs({"endpoint": self.endpoint, "namespace": ns, "workload": workload_name})

    def _metadata(self, ns: pulumi.Input[str], suffix: str = "") -> dict:
        return {"name": f"{self._name}{suffix}", "namespace": ns, "labels": self._labels}

    def _generated_name(self, ns: pulumi.Input[str]) -> dict:
        """Metadata without a name, for what the pods read only at start (the key, the guard). Pulumi replaces a
        Secret or ConfigMap whose data changes, and with a generated name the replacement has a new name: the pod
        template that refers to it changes, so the pods roll over to a rotated key or a new guard. With a fixed
        name they would keep the old one until someone restarted them."""
        return {"namespace": ns, "labels": self._labels}

    def _secret(self, ns: pulumi.Input[str], args: VllmWorkloadArgs) -> k8s.core.v1.Secret:
        data = {"VLLM_API_KEY": pulumi.Output.secret(args.api_key)}
        if args.hf_token is not None:
            data["HF_TOKEN"] = pulumi.Output.secret(args.hf_token)
        return k8s.core.v1.Secret(
            f"{self._name}-secrets", metadata=self._generated_name(ns), type="Opaque", string_data=data,
            opts=self._child,
        )

    def _tls_secret(self, ns: pulumi.Input[str], ca: StackCa, host: pulumi.Output[str], domain: str | None,
                    namespace: str) -> k8s.core.v1.Secret:
        """The server's certificate for the domain (if any), the Service's address and in-cluster names, with its
        key. Signed by the stack CA even with a domain: the load balancer passes TLS through to the pods, so there
        is no place for a managed certificate."""
        names = ([domain] if domain else []) + [f"{self._name}.{namespace}.svc.cluster.local",
                                                f"{self._name}.{namespace}.svc", f"{self._name}.{namespace}",
                                                self._name]
        ip_addresses = host.apply(lambda h: [h] if is_ip_address(h) else [])
        dns_names = host.apply(lambda h: list(dict.fromkeys(names + ([] if is_ip_address(h) else [h]))))
        certificate = ca.issue(self._name, ip_addresses=ip_addresses, dns_names=dns_names, parent=self)
        return k8s.core.v1.Secret(
            f"{self._name}-tls", metadata=self._generated_name(ns), type="kubernetes.io/tls",
            string_data={TLS_CERT_FILE: certificate.cert_pem, TLS_KEY_FILE: certificate.private_key_pem},
            opts=self._child,
        )

    def _guard(self, ns: pulumi.Input[str]) -> k8s.core.v1.ConfigMap:
        return k8s.core.v1.ConfigMap(
            f"{self._name}-guard", metadata=self._generated_name(ns),
            data={GUARD_FILE: _guard_code()}, opts=self._child,
        )

    def _store_access(self, ns: pulumi.Input[str], store: PodArtefactStore) -> k8s.core.v1.ConfigMap:
        """The pods' service account, which the store's cloud identity is bound to (its token is still not mounted
        in the pods: EKS Pod Identity and GKE's metadata server identify the pod without it), and the scripts the
        fill and the publish run."""
        service_account = k8s.core.v1.ServiceAccount(
            f"{self._name}-server",
            metadata={"name": SERVICE_ACCOUNT, "namespace": ns, "labels": self._labels,
                      "annotations": store.service_account_annotations},
            automount_service_account_token=False, opts=self._child)
        # EKS hands a pod its role's credentials only if the association exists when the pod is created.
        self._store_ready = [service_account, *store.ready]
        return k8s.core.v1.ConfigMap(f"{self._name}-artefact-scripts", metadata=self._generated_name(ns),
                                     data=scripts(), opts=self._child)

    def _with_store(self, template: dict, scripts_map: k8s.core.v1.ConfigMap, spec: StackSpec,
                    store: PodArtefactStore) -> dict:
        """The pod template with the fill and the publishing sidecar, run as vLLM is (same user, same restricted
        security context), on the same claim and /tmp, as the service account the store's rights are bound to."""
        pod_spec = template["spec"]
        (vllm,) = pod_spec["containers"]
        hf_home = next(v["value"] for v in vllm["env"] if v["name"] == "HF_HOME")
        mounts = [m for m in vllm["volumeMounts"] if m["name"] in ("cache", "tmp")]
        annotations = {**template["metadata"]["annotations"], "pixtral/artefact-scripts-sha256": scripts_digest()}
        return {
            "metadata": {**template["metadata"], "annotations": annotations},
            "spec": {
                **pod_spec,
                "serviceAccountName": SERVICE_ACCOUNT,
                "initContainers": init_containers(store, spec, hf_home, vllm["securityContext"], mounts),
                "volumes": [*pod_spec["volumes"],
                            {"name": "artefact-scripts", "configMap": {"name": scripts_map.metadata["name"]}}],
            },
        }

    def _claim_spec(self, spec: StackSpec, access: str, cluster_storage_class: str | None) -> dict:
        pods = spec.kubernetes
        claim = {"accessModes": [access], "resources": {"requests": {"storage": f"{pods.cache_size_gb}Gi"}}}
        storage_class = pods.storage_class or cluster_storage_class
        if storage_class:
            claim["storageClassName"] = storage_class
        return claim

    def _shared_cache(self, ns: pulumi.Input[str], spec: StackSpec,
                      cluster_storage_class: str | None) -> k8s.core.v1.PersistentVolumeClaim:
        """pixtral:sharedCache: one ReadWriteMany claim (EFS, Filestore, ...) that every pod mounts."""
        # With a WaitForFirstConsumer storage class the claim binds only once the pod is scheduled: awaiting
        # "Bound" before creating the pods would never finish.
        metadata = {**self._metadata(ns, "-cache"), "annotations": {"pulumi.com/skipAwait": "true"}}
        return k8s.core.v1.PersistentVolumeClaim(
            f"{self._name}-cache", metadata=metadata,
            spec=self._claim_spec(spec, "ReadWriteMany", cluster_storage_class), opts=self._child)

    def _container(self, secret: k8s.core.v1.Secret, spec: StackSpec, has_hf_token: bool) -> dict:
        server = spec.server
        gpus = spec.kubernetes.gpus_per_replica
        env = [
            {"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": secret.metadata["name"],
                                                                   "key": "VLLM_API_KEY"}}},
            # A writable home on the cache volume: torch.compile, Triton and FlashInfer caches survive restarts.
            {"name": "HOME", "value": f"{CACHE_MOUNT}/home"},
            {"name": "HF_HOME", "value": f"{CACHE_MOUNT}/hf"},
            {"name": "VLLM_CACHE_ROOT", "value": f"{CACHE_MOUNT}/vllm"},
            {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
            {"name": "PYTHONPATH", "value": GUARD_MOUNT},
            # The UID has no passwd entry: torch's cache paths ask getpass.getuser(), which reads USER first.
            {"name": "USER", "value": "vllm"},
        ]
        if has_hf_token:
            env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": secret.metadata["name"],
                                                                           "key": "HF_TOKEN"}}})
        # The kubelet speaks HTTPS where the server does; it does not verify the certificate (fine for a probe).
        health = {"path": "/health", "port": "http", "scheme": server.scheme.upper()}
        return {
            "name": "vllm",
            "image": server.image,
            "imagePullPolicy": "Always",
            # The module, not the image's entrypoint: the VM runs the same program with the same arguments.
            "command": kubelet_literal(vllm_command("python3")),
            "args": kubelet_literal(vllm_args(server)),
            "env": [{**variable, "value": kubelet_literal([variable["value"]])[0]} if "value" in variable else variable
                    for variable in env],
            "ports": [{"name": "http", "containerPort": server.port, "protocol": "TCP"}],
            "resources": {
                "requests": {"cpu": str(CPU_PER_GPU * gpus), "memory": f"{MEMORY_GI_PER_GPU * gpus}Gi",
                             "nvidia.com/gpu": str(gpus)},
                "limits": {"memory": f"{MEMORY_LIMIT_GI_PER_GPU * gpus}Gi", "nvidia.com/gpu": str(gpus)},
            },
            "startupProbe": {"httpGet": health, "periodSeconds": PROBE_PERIOD_SECONDS,
                             "failureThreshold": fleet_plan(spec).health_grace_seconds // PROBE_PERIOD_SECONDS},
            "readinessProbe": {"httpGet": health, "periodSeconds": PROBE_PERIOD_SECONDS, "failureThreshold": 3},
            "livenessProbe": {"httpGet": health, "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 3},
            "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_SECONDS}}},
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS_USER,
                "runAsGroup": RUN_AS_USER,
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [
                {"name": "cache", "mountPath": CACHE_MOUNT},
                {"name": "shm", "mountPath": "/dev/shm"},
                {"name": "tmp", "mountPath": "/tmp"},
                {"name": "guard", "mountPath": GUARD_MOUNT, "readOnly": True},
            ] + ([{"name": "tls", "mountPath": TLS_DIR, "readOnly": True}] if server.tls else []),
        }

    def _pod_template(self, secret: k8s.core.v1.Secret, guard: k8s.core.v1.ConfigMap,
                      tls_secret: k8s.core.v1.Secret | None, spec: StackSpec, args: VllmWorkloadArgs) -> dict:
        pods = spec.kubernetes
        gpus = pods.gpus_per_replica
        pod_spec = {
            "automountServiceAccountToken": False,
            "securityContext": {"fsGroup": RUN_AS_USER, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [self._container(secret, spec, args.hf_token is not None)],
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "topologySpreadConstraints": [
                {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
                 "labelSelector": {"matchLabels": self._selector}} for key in SPREAD_TOPOLOGIES],
            "volumes": [
                # NCCL and vLLM's workers exchange tensors through shared memory; the default 64 MiB is too small.
                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{SHM_GI_PER_GPU * gpus}Gi"}},
                {"name": "tmp", "emptyDir": {}},
                {"name": "guard", "configMap": {"name": guard.metadata["name"]}},
            ],
            "terminationGracePeriodSeconds": termination_grace_seconds(spec),
        }
        if tls_secret is not None:
            pod_spec["volumes"].append({"name": "tls", "secret": {"secretName": tls_secret.metadata["name"],
                                                                  "defaultMode": TLS_FILE_MODE}})
        node_selector = {**args.node_selector, **dict(pods.node_selector)}
        if node_selector:
            pod_spec["nodeSelector"] = node_selector
        # On a cluster the program made, its own node pool holds the GPU; an existing one may mix GPUs.
        if not spec.runs_on.creates_machines and spec.gpus.gpu_name in GFD_PRODUCTS:
            gpu = spec.gpus.gpu_name
            pod_spec["affinity"] = gpu_node_affinity(gpu)
            pulumi.log.info(f"pods run only on nodes labelled as {gpu} (pixtral:gpuType): {GKE_ACCELERATOR_LABEL} or "
                            f"{AWS_ACCELERATOR_LABEL}={gpu}, or {GFD_PRODUCT_LABEL} in "
                            f"{', '.join(GFD_PRODUCTS[gpu])}; label the GPU nodes if none of these is set (or size "
                            "with pixtral:gpuMemoryGb alone, which selects no GPU type)")
        annotations = {
            "pixtral/vllm-module": VLLM_MODULE,
            # The guard's version in the template itself: a new guard is a new template (and, under rollout surge,
            # a new set) whatever name the generated ConfigMap gets.
            "pixtral/guard-sha256": hashlib.sha256(_guard_code().encode()).hexdigest(),
            # No node autoscaler evicts a serving pod to pack nodes tighter (the Cluster Autoscaler, EKS's or GKE's;
            # Karpenter reads its own annotation): moving it costs a model load, minutes of lost capacity (the
            # endpoint itself with one replica). A node goes when the pods' autoscaler has scaled its pod in.
            "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
            "karpenter.sh/do-not-disrupt": "true",
        }
        return {"metadata": {"labels": self._labels, "annotations": annotations},
                "spec": pod_spec}

    def _replicas(self, spec: StackSpec) -> dict:
        """A fixed count, or none under autoscale: the autoscaler owns the number, and `pulumi up` must not reset it
        (server-side apply leaves a field the program does not set to its owner)."""
        return {} if spec.scaling.autoscale else {"replicas": spec.scaling.replicas}

    def _waiting(self, wait: str, delete: str | None = None) -> pulumi.ResourceOptions:
        """A child whose create and update Pulumi awaits for `wait` (and its delete for `delete`)."""
        timeouts = pulumi.CustomTimeouts(create=wait, update=wait, delete=delete)
        return pulumi.ResourceOptions.merge(self._child, pulumi.ResourceOptions(custom_timeouts=timeouts))

    def _awaited(self, spec: StackSpec) -> pulumi.ResourceOptions:
        """`pulumi up` waits for the pods to be ready (and `destroy` for them to drain). A surge rollout needs it:
        the old pods may go only once the new ones serve. It also means that when `pulumi up` returns, the endpoint
        answers, and that a pod that cannot start (no GPU free, an image that does not pull) fails the update with
        the pod's own reason."""
        return pulumi.ResourceOptions.merge(self._waiting(WORKLOAD_AWAIT, delete=delete_await(spec)),
                                            pulumi.ResourceOptions(depends_on=self._store_ready))

    def _stateful_set(self, ns: pulumi.Input[str], pod_template: dict, spec: StackSpec,
                      cluster_storage_class: str | None) -> pulumi.Output[str]:
        """A ReadWriteOnce cache per pod, from a claim template: pod N always mounts claim cache-<set name>-N.
        Returns the set's name: known when the program runs, so an autoscaler names it without waiting for it."""
        body = {
            # Scale-out starts every new pod at once, not one after another's (minutes-long) start.
            "podManagementPolicy": "Parallel",
            # Within one set (rollout inPlace) a pod cannot surge next to the one it replaces: that one holds the
            # GPU and the RWO claim. The rollout replaces one pod at a time, highest ordinal first, and waits for it
            # to be ready. Under rollout surge a set's template never changes: a new template is a new set.
            # One at a time is RollingUpdate's own rule; `maxUnavailable` is not set: it sits behind the alpha
            # MaxUnavailableStatefulSet gate (off in Kubernetes 1.34), so the API server drops it and every
            # `pulumi preview` after an `up` would show it as a change (the cluster tier caught that).
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            # Claims outlive a scale-in (the pod that comes back finds its weights) and go with the set.
            "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Retain", "whenDeleted": "Delete"},
            "selector": {"matchLabels": self._selector},
            "template": pod_template,
            "volumeClaimTemplates": [{
                "metadata": {"name": "cache", "labels": self._labels},
                "spec": self._claim_spec(spec, "ReadWriteOnce", cluster_storage_class),
            }],
        }
        name = self._name
        if spec.kubernetes.rollout == "surge":
            name, body = self._generation(body)
        # The Pulumi resource is named as the object is: a new generation is a new resource, never a replacement.
        k8s.apps.v1.StatefulSet(
            name,
            metadata={**self._metadata(ns), "name": name},
            spec={**self._replicas(spec), **body},
            opts=self._awaited(spec),
        )
        return pulumi.Output.from_input(name)

    def _generation(self, body: dict) -> tuple[str, dict]:
        """The set's name and spec for one pod template: `<name>-<digest of the spec>`, with the digest as a pod
        label in its selector. Scaling (the replica count) is not in the digest, so it stays with the same set; any
        other setting's change makes a new set beside the old one."""
        digest = _digest(body)
        selector = {**body["selector"]["matchLabels"], GENERATION_LABEL: digest}
        template = body["template"]
        labelled = {**template, "metadata": {**template["metadata"], "labels": {**template["metadata"]["labels"],
                                                                              GENERATION_LABEL: digest}}}
        return f"{self._name}-{digest}", {**body, "selector": {"matchLabels": selector}, "template": labelled}

    def _deployment(self, ns: pulumi.Input[str], pod_template: dict, cache: k8s.core.v1.PersistentVolumeClaim,
                    spec: StackSpec) -> pulumi.Output[str]:
        volumes = [{"name": "cache", "persistentVolumeClaim": {"claimName": cache.metadata["name"]}},
                   *pod_template["spec"]["volumes"]]
        # The shared cache lets a new pod start next to the old one (rollout surge): it must be ready before an old
        # one goes. Without a spare GPU the new pod waits (Pending) and the old ones keep serving. rollout inPlace
        # takes one old pod out first instead.
        surge = spec.kubernetes.rollout == "surge"
        k8s.apps.v1.Deployment(
            self._name,
            metadata=self._metadata(ns),
            spec={
                **self._replicas(spec),
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1 if surge else 0,
                                                                        "maxUnavailable": 0 if surge else 1}},
                "selector": {"matchLabels": self._selector},
                "template": {**pod_template, "spec": {**pod_template["spec"], "volumes": volumes}},
            },
            opts=self._awaited(spec),
        )
        # Its fixed name, as for a StatefulSet: the autoscaler does not wait for the pods to be ready.
        return pulumi.Output.from_input(self._name)

    def _network_policy(self, ns: pulumi.Input[str], spec: StackSpec) -> None:
        # Only the API port reaches the pods, whatever else runs in the cluster.
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-api-only",
            metadata=self._metadata(ns, "-api-only"),
            spec={
                "podSelector": {"matchLabels": self._selector},
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"port": spec.server.port, "protocol": "TCP"}]}],
            },
            opts=self._child,
        )

    def _disruption_budget(self, ns: pulumi.Input[str]) -> None:
        k8s.policy.v1.PodDisruptionBudget(
            f"{self._name}-pdb",
            metadata=self._metadata(ns, "-pdb"),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": self._selector}},
            opts=self._child,
        )

    @staticmethod
    def _service_type(spec: StackSpec) -> str:
        """pixtral:serviceType; in-cluster only when the set scales to zero: the user then reaches the KEDA HTTP
        add-on's interceptor (components/scale_to_zero.py), which reaches this Service."""
        return "ClusterIP" if scales_to_zero(spec) else spec.kubernetes.service_type

    def _service(self, ns: pulumi.Input[str], spec: StackSpec) -> k8s.core.v1.Service:
        service_type = self._service_type(spec)
        service = {
            "type": service_type,
            "selector": self._selector,
            "ports": [{"name": "http", "port": spec.server.port, "targetPort": "http", "protocol": "TCP"}],
        }
        metadata = self._metadata(ns)
        if service_type == "LoadBalancer":
            service["loadBalancerSourceRanges"] = list(spec.allowed_cidrs)
            if spec.server.tls:
                # The certificate names the load balancer's address, so the pods (which mount it) come after the
                # Service has one: wait for the address alone, not for the default "a pod is selected", which
                # would never happen before the pods exist.
                metadata["annotations"] = {"pulumi.com/waitFor": "jsonpath={.status.loadBalancer.ingress}"}
        if scales_to_zero(spec):
            # A set at zero has no pod for the Service to select: awaiting one would fail an update made while idle.
            metadata["annotations"] = {"pulumi.com/skipAwait": "true"}
        # Pulumi awaits a Service until its Endpoints list a pod (ready or not) and, for a load balancer, an
        # address: 10 minutes by default. A GPU node scaled up from zero can take longer than that to take the pod.
        return k8s.core.v1.Service(self._name, metadata=metadata, spec=service, opts=self._waiting(SERVICE_AWAIT))


def _guard_code() -> str:
    return (USERDATA_DIR / GUARD_FILE).read_text()


def _digest(body: dict) -> str:
    """Ten hex digits of the set's spec as the program knows it when it runs: enough to tell templates apart, short
    enough for the names Kubernetes derives from the set's (claims cache-<set>-N, pods <set>-N, the pods'
    controller-revision-hash label). A value only the spec knows (an Output: a generated Secret name) counts
    as a placeholder, so the digest, the set's name, and the resource's name are known in every preview."""
    def known_only(value: object) -> str:
        if isinstance(value, pulumi.Output):
            return "<known at deploy time>"
        raise TypeError(f"{type(value).__name__} in a StatefulSet spec")

    return hashlib.sha256(json.dumps(body, sort_keys=True, default=known_only).encode()).hexdigest()[:10]


def service_host(service: k8s.core.v1.Service, service_type: str, namespace: str) -> pulumi.Output[str]:
    """Where clients reach the Service: the load balancer's address, else its in-cluster DNS name."""
    if service_type != "LoadBalancer":
        # Reachable from inside the cluster (or through `kubectl port-forward`).
        return pulumi.Output.concat(service.metadata["name"], f".{namespace}.svc.cluster.local")

    def address(status) -> str:
        # AWS load balancers publish a hostname, GCP and most others an IP.
        first = status.load_balancer.ingress[0]
        return first.hostname or first.ip

    return service.status.apply(address)
