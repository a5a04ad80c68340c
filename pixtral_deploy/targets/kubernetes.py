"""Kubernetes: what every target that runs the server in pods shares (the workload's settings and rules, the one
workload component and what scales it), and `kubernetes` itself: an existing cluster reached through a kubeconfig.

`eks` and `gke` (aws.py, gcp.py) subclass `KubernetesTarget` with the cluster their cloud makes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from ..artefacts import IDENTITY_ALLOWED, IDENTITY_ANNOTATIONS, identity_scheme, split_store_url
from ..catalog import GPUS
from ..errors import ConfigError
from ..keys import RESERVED_NAMESPACES, SECRET_SET
from ..network import ip_version
from ..parsers import setting_error
from ..sizing import VALID_TENSOR_PARALLEL
from . import Hardware, SecretStore, Target, register

if TYPE_CHECKING:
    from ..keys import Settings

# The HPA's stabilization windows (what the contract's delays become on Kubernetes) are capped by the API server.
MAX_STABILIZATION_SECONDS = 3600
# KEDA's Prometheus scaler: authModes "basic" takes username and password, "bearer" takes bearerToken.
PROMETHEUS_AUTH_KEYS = {"basic": "prometheusBasicAuth", "bearer": "prometheusBearerToken"}
# The Secret reaches vLLM as an environment variable, and Linux caps one environment string ("NAME=value" and its
# NUL) at MAX_ARG_STRLEN, 128 KiB.
_LINUX_MAX_ARG_STRLEN = 131_072
POD_SECRET_STORE = SecretStore(_LINUX_MAX_ARG_STRLEN - len("VLLM_API_KEY=") - 1,
                               "the pod gets it as an environment variable, and Linux takes at most 128 KiB per "
                               "variable")


@dataclass(frozen=True)
class UsersStore:
    """pixtral:artefactStore on `kubernetes`: a bucket of the user's, the AWS region its CLI signs for (S3), and the
    cloud identity the pods' ServiceAccount is annotated with (None: the cluster hands the pods one without it)."""

    url: str
    region: str | None = None
    identity: str | None = None

    @property
    def scheme(self) -> str:
        return split_store_url(self.url)[0]

    @property
    def service_account_annotations(self) -> dict[str, str]:
        return {IDENTITY_ANNOTATIONS[self.scheme]: self.identity} if self.identity else {}


def users_store(settings: Settings) -> UsersStore | None:
    """pixtral:artefactStore with what its scheme needs beside it, each setting only where it does something."""
    url, region, identity = (settings["artefactStore"], settings["artefactStoreRegion"],
                             settings["artefactStoreIdentity"])
    if url is None:
        for key, value in (("artefactStoreRegion", region), ("artefactStoreIdentity", identity)):
            if value is not None:
                raise setting_error(key, value, "no value without pixtral:artefactStore, the bucket it belongs to")
        return None
    scheme = split_store_url(url)[0]
    if scheme == "s3" and region is None:
        raise ConfigError(f"pixtral:artefactStoreRegion is not set; pixtral:artefactStore {url} is an S3 bucket, and "
                          "the AWS CLI in the pods signs its requests for the bucket's region: set it (e.g. "
                          "`pulumi config set pixtral:artefactStoreRegion us-east-1`)")
    if scheme != "s3" and region is not None:
        raise setting_error("artefactStoreRegion", region, f"no value with pixtral:artefactStore {url}: a region "
                            "is for an s3:// bucket; gcloud finds a GCS bucket's location itself")
    if identity is not None and identity_scheme(identity) != scheme:
        raise setting_error("artefactStoreIdentity", identity, f"{IDENTITY_ALLOWED[scheme]} with pixtral:artefactStore "
                            f"{url}: the identity must be of the bucket's cloud")
    return UsersStore(url=url, region=region, identity=identity)


@dataclass(frozen=True)
class KubernetesSettings:
    namespace: str
    storage_class: str | None
    cache_size_gb: int
    gpus_per_replica: int
    node_selector: tuple[tuple[str, str], ...]
    service_type: str
    context: str | None = None
    cluster_name: str | None = None
    # EKS / GKE: GPUs of one node of the type the program creates (None on an existing cluster).
    gpus_per_node: int | None = None
    # EKS / GKE: the config key and value that chose the node type, for messages.
    node_type: str | None = None
    # EKS / GKE: networks that may reach the API endpoint of a cluster the program creates.
    cluster_api_cidrs: tuple[str, ...] = ()
    # With autoscale: what scales the pods (None when unset: keda), and the Prometheus KEDA queries.
    autoscaler: str | None = None
    prometheus_url: str | None = None
    # One ReadWriteMany cache for every pod instead of a ReadWriteOnce cache per pod.
    shared_cache: bool = False
    # surge: new pods are ready before old ones go; inPlace: pods are replaced one at a time on their GPUs.
    rollout: str = "surge"
    # How KEDA signs in to prometheus_url: "basic" or "bearer" (the credentials are Pulumi secrets, not here).
    prometheus_auth: str | None = None
    # `kubernetes`: the user's bucket the pods fill from and publish to (pixtral:artefactStore).
    users_store: UsersStore | None = None

    def __post_init__(self) -> None:
        if self.namespace in RESERVED_NAMESPACES:
            raise setting_error("namespace", self.namespace, "a namespace of the workload's own, not one Kubernetes "
                                f"owns ({', '.join(RESERVED_NAMESPACES)}): the program creates it and deletes it on "
                                "destroy")
        if self.gpus_per_node is not None and self.gpus_per_replica > self.gpus_per_node:
            raise setting_error("gpusPerReplica", self.gpus_per_replica,
                                f"at most the {self.gpus_per_node} GPU(s) of one {self.node_type} node")

    @property
    def scaler(self) -> str:
        return self.autoscaler or "keda"

    def surge_pods(self, replicas: int) -> int:
        """Pods a rollout runs next to the `replicas` it replaces: with rollout surge, a whole new set with a cache
        per pod (a StatefulSet cannot surge, so the new pods are a new StatefulSet), one with a shared cache (the
        Deployment's maxSurge); none with rollout inPlace."""
        if self.rollout != "surge":
            return 0
        return 1 if self.shared_cache else replicas

    def nodes_needed(self, replicas: int) -> int:
        """GPU nodes for `replicas` pods, when each node holds as many whole replicas as its GPUs allow."""
        per_node = max(1, (self.gpus_per_node or self.gpus_per_replica) // self.gpus_per_replica)
        return -(-replicas // per_node)


def _cluster_api_cidrs(settings: Settings, node: Hardware | None) -> tuple[str, ...]:
    """EKS public access CIDRs / GKE master authorized networks of a cluster the program creates (IPv4 only); by
    default the IPv4 CIDRs of allowedCidrs."""
    existing = settings["clusterName"]
    if node is None or existing:
        if settings.is_set("clusterApiCidrs"):
            raise ConfigError(f"pixtral:clusterApiCidrs sets the API access of a cluster the program creates; "
                              f"pixtral:clusterName names an existing one ({existing}), whose access is set where "
                              "it was created: remove one of the two")
        return ()
    if settings.is_set("clusterApiCidrs"):
        return settings["clusterApiCidrs"]
    default = tuple(c for c in settings["allowedCidrs"] if ip_version(c) == 4)
    if not default:
        raise setting_error("allowedCidrs", list(settings["allowedCidrs"]), "at least one IPv4 CIDR, or set "
                            "pixtral:clusterApiCidrs to the IPv4 networks that may reach the cluster's API endpoint")
    return default


def _prometheus_auth(settings: Settings) -> str | None:
    """KEDA's authMode for the Prometheus trigger, from which secret is set (its value never enters the spec)."""
    modes = [mode for mode, key in PROMETHEUS_AUTH_KEYS.items() if settings[key]]
    if len(modes) > 1:
        raise setting_error("prometheusBearerToken", SECRET_SET, "either pixtral:prometheusBasicAuth or "
                            "pixtral:prometheusBearerToken, not both (KEDA takes one of basic and bearer)")
    return modes[0] if modes else None


def kubernetes_settings(settings: Settings, node: Hardware | None) -> KubernetesSettings:
    return KubernetesSettings(
        namespace=settings["namespace"],
        storage_class=settings["storageClass"],
        cache_size_gb=settings["cacheSizeGb"],
        gpus_per_replica=settings["gpusPerReplica"],
        node_selector=settings["nodeSelector"],
        service_type=settings["serviceType"],
        context=settings["context"],
        cluster_name=settings["clusterName"],
        gpus_per_node=node.gpu_count if node else None,
        node_type=node.where.split(" ", 1)[1] if node else None,
        cluster_api_cidrs=_cluster_api_cidrs(settings, node),
        autoscaler=settings["autoscaler"],
        prometheus_url=settings["prometheusUrl"],
        prometheus_auth=_prometheus_auth(settings),
        shared_cache=settings["sharedCache"],
        rollout=settings["rollout"],
    )


class KubernetesTarget(Target):
    """The server in pods: one workload (components/vllm_workload.py) on the cluster the target provides."""

    platform = "kubernetes"
    secret_store = POD_SECRET_STORE
    # autoscale.minReplicas 0 wakes through the KEDA HTTP add-on (components/scale_to_zero.py); what it cannot
    # carry is refused in _check_scale_to_zero.
    cannot_scale_to_zero = None
    # Where the program does not install KEDA (installs_keda), what would let it: for refusals that only an
    # install of the program's own can lift.
    own_keda_hint: ClassVar[str] = "use target eks (without pixtral:clusterName) or gke, where the program " \
                                   "installs and configures the add-on"
    # The add-on's scaler counts the interceptors' requests every 500 ms and pushes activity to KEDA every 200 ms
    # (v0.15.0 scaler/config.go: KEDA_HTTP_QUEUE_TICK_DURATION, KEDA_HTTP_SCALER_STREAM_INTERVAL_MS defaults).
    wake_detection_seconds = 1
    status_module = "pixtralctl.status_kubernetes"

    def check(self, spec: Any) -> None:
        kubernetes = spec.kubernetes
        self._check_autoscaling(spec, kubernetes)
        if kubernetes.gpus_per_replica not in VALID_TENSOR_PARALLEL:
            # tensorParallelSize follows gpusPerReplica: the pod's GPU count is what to change.
            raise setting_error("gpusPerReplica", kubernetes.gpus_per_replica,
                                f"one of {', '.join(map(str, VALID_TENSOR_PARALLEL))}: vLLM shards the model over "
                                "all of a pod's GPUs, and a shard count must divide the model's attention heads")
        if spec.server.tensor_parallel_size != kubernetes.gpus_per_replica:
            raise setting_error("tensorParallelSize", spec.server.tensor_parallel_size,
                                f"pixtral:gpusPerReplica ({kubernetes.gpus_per_replica}): a pod's GPUs all serve "
                                "one shard")
        if spec.allowed_cidrs_set and kubernetes.service_type != "LoadBalancer":
            raise setting_error("allowedCidrs", list(spec.allowed_cidrs),
                                f"no allowedCidrs with pixtral:serviceType {kubernetes.service_type}: only a "
                                "LoadBalancer Service can restrict its sources (loadBalancerSourceRanges); remove "
                                "allowedCidrs or set serviceType to LoadBalancer")
        if spec.tls.domain and kubernetes.service_type != "LoadBalancer":
            # The record points at the load balancer's address; any other Service has none outside the cluster.
            raise setting_error("domain", spec.tls.domain,
                                f"no domain with pixtral:serviceType {kubernetes.service_type}: its DNS record "
                                "points at a LoadBalancer Service's address; remove domain or set serviceType to "
                                "LoadBalancer")

    def _check_autoscaling(self, spec: Any, kubernetes: KubernetesSettings) -> None:
        """What scales the pods: each setting only where it does something, and everything `keda` needs."""
        auth_key = PROMETHEUS_AUTH_KEYS.get(kubernetes.prometheus_auth)
        if spec.scaling.autoscale is None:
            for key, value in (("autoscaler", kubernetes.autoscaler), ("prometheusUrl", kubernetes.prometheus_url),
                               (auth_key, SECRET_SET)):
                if key is not None and value is not None:
                    raise setting_error(key, value, "no value without pixtral:autoscale: with a fixed number of "
                                        "replicas nothing scales the pods")
            return
        if auth_key is not None and (kubernetes.scaler != "keda" or kubernetes.prometheus_url is None):
            raise setting_error(auth_key, SECRET_SET, "no value unless KEDA queries pixtral:prometheusUrl "
                                "(pixtral:autoscaler keda): the credentials are what KEDA signs in to it with")
        autoscale = spec.scaling.autoscale
        for field, delay in (("upscaleDelaySeconds", autoscale.upscale_delay_seconds),
                             ("downscaleDelaySeconds", autoscale.downscale_delay_seconds)):
            if delay > MAX_STABILIZATION_SECONDS:
                raise ConfigError(f"pixtral:autoscale: {field} {delay} is not allowed on Kubernetes; expected at "
                                  f"most {MAX_STABILIZATION_SECONDS}: the delays become the HPA's stabilization "
                                  "windows, which the API server caps at one hour")
        if autoscale.min_replicas == 0:
            self._check_scale_to_zero(spec, kubernetes)
        if self.managed_metrics and kubernetes.scaler != "keda":
            raise setting_error("autoscaler", kubernetes.autoscaler, f"keda on {self.name}: the program installs KEDA "
                                "and reads the platform's managed Prometheus; an HPA would need a custom metrics "
                                "adapter it does not install")
        if kubernetes.scaler == "hpa" and kubernetes.prometheus_url is not None:
            raise setting_error("prometheusUrl", kubernetes.prometheus_url, "no prometheusUrl with pixtral:autoscaler "
                                "hpa: the HPA reads the cluster's custom metrics API (the Prometheus adapter), not "
                                "a URL; remove it, or set autoscaler to keda")
        if not self.managed_metrics and kubernetes.scaler == "keda" and kubernetes.prometheus_url is None:
            raise ConfigError("pixtral:prometheusUrl is not set; pixtral:autoscaler keda (the default) queries "
                              "vLLM's metrics from a Prometheus: set pixtral:prometheusUrl to its query API (e.g. "
                              "http://prometheus-operated.monitoring.svc:9090), or set pixtral:autoscaler to hpa to "
                              "read the custom metrics API instead")

    def _check_scale_to_zero(self, spec: Any, kubernetes: KubernetesSettings) -> None:
        """minReplicas 0 wakes through the KEDA HTTP add-on (components/scale_to_zero.py): what it cannot carry is
        refused by name."""
        if kubernetes.scaler != "keda":
            raise setting_error("autoscaler", kubernetes.autoscaler, "keda with autoscale.minReplicas 0: an HPA "
                                "keeps at least one replica (its minReplicas 0 needs the alpha HPAScaleToZero gate) "
                                "and nothing would hold the first request; KEDA with its HTTP add-on does both")
        if spec.tls.enabled and not self.installs_keda(spec):
            # The program would have to set the chart's values and issue the interceptor's certificate; here the
            # user's release holds them, and a stack cannot tell whether it does.
            raise setting_error("tls", "true", f"false with autoscale.minReplicas 0 on {self.name}: the KEDA HTTP "
                                "add-on's interceptor, which holds requests while the pods wake, is the cluster's "
                                "own install here, and it speaks HTTPS (to the user and, verified, to the pods) only "
                                "with chart values the program cannot set in it (interceptor.tls.enabled true, "
                                "interceptor.tls.certSecret naming a Secret whose tls.crt holds a certificate for "
                                "the endpoint followed by the stack CA, interceptor.tls.skipVerify false); set "
                                "pixtral:tls false, or autoscale.minReplicas 1 or more, or "
                                f"{self.own_keda_hint}")

    def installs_keda(self, spec: Any) -> bool:
        """The program installs KEDA on the stack's cluster with `autoscaler: keda`, and, for
        autoscale.minReplicas 0, KEDA's HTTP add-on beside it (so it can end HTTPS at the add-on's interceptor).
        Elsewhere the cluster must run them already: a second release of either would collide with the cluster's
        own (the same release name and CRDs)."""
        return False

    def workload_fields(self, settings: Settings, node: Hardware | None) -> dict[str, Any]:
        return {"kubernetes": kubernetes_settings(settings, node)}

    def pod_artefact_store(self, stack: Any, cluster: Any) -> Any:
        """pixtral:warmStarts: the stack's artefact store and the cloud identity of the pods' service account
        (components/pod_artefacts.py PodArtefactStore). Only targets in the key's scope are asked."""
        raise NotImplementedError(f"target {self.name} keeps no artefact store")

    def managed_metrics_source(self, stack: Any, workload: Any, on_cluster: Any) -> tuple[Any, Any, list]:
        """(Prometheus URL, KEDA TriggerAuthentication, what the scaler waits for) when the target sets up the
        metrics (managed_metrics); the user's pixtral:prometheusUrl otherwise, queried by the KEDA the program
        installs where installs_keda (no TriggerAuthentication of the target's: the user's credentials, if any, are
        PodAutoscaler's) or by the cluster's own."""
        spec = stack.spec
        if spec.kubernetes.scaler != "keda" or not self.installs_keda(spec):
            return spec.kubernetes.prometheus_url, None, []
        from components.keda import keda_release

        return spec.kubernetes.prometheus_url, None, [keda_release("pixtral-keda", on_cluster)]


def deploy_workload(stack: Any, api_key: Any, ca: Any, cluster: Any) -> dict[str, Any]:
    """The one Kubernetes workload, on whatever cluster the target provides, what scales it, and on a cluster the
    program created (eks, gke) pixtral:domain's record, which that cluster's cloud keeps."""
    import pulumi

    from components.vllm_workload import VllmWorkload, VllmWorkloadArgs

    spec = stack.spec
    on_cluster = pulumi.ResourceOptions(provider=cluster.provider)
    store = spec.runs_on.pod_artefact_store(stack, cluster) if spec.warm_starts else None
    workload = VllmWorkload("pixtral", VllmWorkloadArgs(
        spec, api_key=api_key, hf_token=stack.secrets.hf_token, node_selector=cluster.node_selector,
        storage_class=cluster.storage_class, instance=pulumi.get_stack(), ca=ca, artefacts=store), opts=on_cluster)
    address, endpoint = workload.address, workload.endpoint
    if spec.scaling.autoscale:
        wake = _autoscaler(stack, workload, ca, on_cluster)
        if wake is not None:
            # minReplicas 0: the user reaches the interceptor, which holds a request while the set wakes.
            address = wake.address
            endpoint = pulumi.Output.from_input(spec.tls.domain or address).apply(spec.endpoint_url)
    if spec.tls.domain:
        cluster.endpoint_record(spec.tls.domain, spec.tls.dns_zone, address)
    return {"endpoint": endpoint, "namespace": workload.namespace, "service": workload.service_name,
            "podSelector": ",".join(f"{k}={v}" for k, v in workload.selector.items()),
            **(_store_outputs(store, spec.kubernetes.namespace) if store else {})}


def _store_outputs(store: Any, namespace: str) -> dict[str, Any]:
    """The store's URL, and the ServiceAccount its rights are bound to (`NAMESPACE/NAME`): what a user of
    `kubernetes` names in an IRSA trust policy or a Workload Identity binding (docs/kubernetes.md)."""
    from components.pod_artefacts import SERVICE_ACCOUNT

    return {"artefacts": store.url, "serviceAccount": f"{namespace}/{SERVICE_ACCOUNT}"}


def _autoscaler(stack: Any, workload: Any, ca: Any, on_cluster: Any) -> Any:
    """KEDA or an HPA on vLLM's metrics, from the user's Prometheus or the one the target sets up; with minReplicas
    0 also the KEDA HTTP add-on's route and the Service the user then reaches (the WakeOnRequest, returned; None
    otherwise)."""
    import pulumi

    from components.keda import KEDA_CHART, KEDA_CHART_VERSION, KEDA_NAMESPACE, KEDA_RELEASE
    from components.pod_autoscaler import PodAutoscaler, PodAutoscalerArgs
    from components.scale_to_zero import (
        HTTP_ADD_ON_CHART,
        HTTP_ADD_ON_CHART_VERSION,
        HTTP_ADD_ON_NAMESPACE,
        HTTP_ADD_ON_RELEASE,
        WakeOnRequest,
        WakeOnRequestArgs,
        scales_to_zero,
    )

    spec = stack.spec
    installs_keda = spec.runs_on.installs_keda(spec)
    if spec.kubernetes.scaler == "keda" and not installs_keda:
        pulumi.log.info(f"pixtral:autoscaler keda on {spec.runs_on.name}: the cluster must run KEDA (chart "
                        f"{KEDA_CHART} {KEDA_CHART_VERSION}, release {KEDA_RELEASE} in namespace {KEDA_NAMESPACE}) "
                        "and the Prometheus at pixtral:prometheusUrl; the program does not install them here")
    prometheus_url, authentication, ready = spec.runs_on.managed_metrics_source(stack, workload, on_cluster)
    after_ready = pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=ready))
    wake = None
    if scales_to_zero(spec):
        if not installs_keda:
            pulumi.log.info(f"pixtral:autoscale minReplicas 0 on {spec.runs_on.name}: the cluster must run the KEDA "
                            f"HTTP add-on (chart {HTTP_ADD_ON_CHART} {HTTP_ADD_ON_CHART_VERSION}, release "
                            f"{HTTP_ADD_ON_RELEASE} in namespace {HTTP_ADD_ON_NAMESPACE}, beside KEDA); the program "
                            "does not install it here")
        wake = WakeOnRequest("pixtral-wake", WakeOnRequestArgs(
            spec, namespace=workload.namespace, service_name=workload.service_name, labels=workload.selector,
            install_add_on=installs_keda, ca=ca), opts=after_ready)
    PodAutoscaler("pixtral", PodAutoscalerArgs(
        spec, namespace=workload.namespace, workload_kind=workload.workload_kind,
        workload_name=workload.workload_name, labels=workload.selector, prometheus_url=prometheus_url,
        trigger_authentication=authentication,
        prometheus_credentials=stack.secrets.prometheus_basic_auth or stack.secrets.prometheus_bearer_token,
        wake_route=wake.route if wake else None),
        opts=after_ready)
    return wake


class Kubernetes(KubernetesTarget):
    name = "kubernetes"
    listed = 3
    summary = "any existing cluster, reached through a kubeconfig"
    # A kubeconfig comes with no cloud account to make a bucket in: the user names one (pixtral:artefactStore).
    artefact_store = "user"

    def workload_fields(self, settings: Settings, node: Hardware | None) -> dict[str, Any]:
        return {"kubernetes": replace(kubernetes_settings(settings, node), users_store=users_store(settings))}

    def warm_starts(self, settings: Settings) -> bool:
        """On exactly when pixtral:artefactStore names the bucket: warmStarts alone has no bucket to use, and
        `false` beside a bucket would leave the bucket unused."""
        store = settings["artefactStore"]
        if not settings.is_set("warmStarts"):
            return store is not None
        if settings["warmStarts"] and store is None:
            raise ConfigError("pixtral:warmStarts: true is not allowed without pixtral:artefactStore on target "
                              "kubernetes; expected pixtral:artefactStore set to a bucket of yours "
                              "(s3://BUCKET[/PREFIX] or gs://BUCKET[/PREFIX]), which turns warm starts on: the program "
                              "has no cloud account here to make the stack's own")
        if not settings["warmStarts"] and store is not None:
            raise ConfigError(f"pixtral:warmStarts: false is not allowed with pixtral:artefactStore {store}; expected "
                              "one of the two: remove pixtral:artefactStore for no store, or remove pixtral:warmStarts "
                              "to use it")
        return store is not None

    def pod_artefact_store(self, stack: Any, cluster: Any) -> Any:
        """The user's bucket, reached as the identity the ServiceAccount's annotation binds (or the one the cluster
        hands the pods without it): the program declares no cloud resource here, so the pods wait for nothing but
        their ServiceAccount."""
        import pulumi

        from components.pod_artefacts import SERVICE_ACCOUNT, PodArtefactStore

        store = stack.spec.kubernetes.users_store
        bound = f"as {store.identity}" if store.identity else "as whatever identity the cluster gives them"
        # The rights are the user's to grant, outside the stack: say so where `pulumi up` is watched.
        pulumi.log.info(f"pixtral:artefactStore {store.url}: the pods read and publish the model there {bound} "
                        f"(ServiceAccount {stack.spec.kubernetes.namespace}/{SERVICE_ACCOUNT}); grant it read under "
                        "model/ and create under model/ and claims/model/ (docs/kubernetes.md, \"Warm starts on "
                        "kubernetes\"), or every pod downloads from Hugging Face")
        return PodArtefactStore(url=store.url, scheme=store.scheme,
                                env={"PIXTRAL_AWS_REGION": store.region} if store.region else {},
                                service_account_annotations=store.service_account_annotations)

    def hardware(self, settings: Settings, spec_fields: dict[str, Any]) -> tuple[list[Hardware], Hardware | None]:
        """An existing cluster: the GPU comes from pixtral:gpuType or pixtral:gpuMemoryGb."""
        gpu_type, memory, per_pod = settings["gpuType"], settings["gpuMemoryGb"], settings["gpusPerReplica"]
        if gpu_type is None and memory is None:
            raise ConfigError(
                "pixtral:gpuType is not set: the program needs the GPU of the cluster's nodes to size the model; set "
                f"pixtral:gpuType to one of {', '.join(sorted(GPUS))}, or pixtral:gpuMemoryGb to its memory in GB")
        return [Hardware(
            where=f"pixtral:gpusPerReplica {per_pod} of pixtral:gpuType {gpu_type or 'gpu'}",
            gpu_name=gpu_type or "gpu",
            gpu_count=per_pod,
            gpu_memory_gb=memory if memory is not None else GPUS[gpu_type].memory_gb,
            cloud="kubernetes",
        )], None

    def warnings(self, spec: Any, settings: Settings) -> list[str]:
        """pixtral:gpuMemoryGb without gpuType sizes the model but selects no GPU type (VllmWorkload's affinity)."""
        if settings["gpuType"] is None:
            return [f"pixtral:gpuMemoryGb {settings['gpuMemoryGb']:g} without pixtral:gpuType: the pods may land on "
                    "any GPU node, so the cluster must not mix GPUs with less memory; set pixtral:gpuType to select "
                    "one"]
        return []

    def deploy(self, stack: Any, api_key: Any, ca: Any) -> dict[str, Any]:
        from components.existing_cluster import ExistingCluster

        cluster = ExistingCluster("cluster", stack.secrets.kubeconfig, stack.spec.kubernetes.context)
        return deploy_workload(stack, api_key, ca, cluster)


register(Kubernetes())
