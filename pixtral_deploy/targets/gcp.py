"""GCP: `gcp` (one Compute Engine VM, or a fleet of regional managed instance groups behind a global load
balancer) and `gke` (a GPU node pool in a GKE cluster, pods on it).

The settings both read (machine type, GPUs), the catalogue's machine types and its GPU zones, Secret Manager as the
secret store, `gcp:project` and `gcp:zone`'s checks, and the components each declares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..catalog import GPUS, MACHINE_TYPES, gpu_zones, region_of
from ..errors import ConfigError
from ..locations import gcp_zone_format_problems, gcp_zone_gpu_problems
from ..parsers import setting_error
from . import Hardware, SecretStore, Target, register
from .kubernetes import KubernetesTarget, deploy_workload
from .machines import candidates, chosen_by, per_replica

if TYPE_CHECKING:
    from ..keys import Settings

CLOUD = "gcp"
# The GCP stack files ship this placeholder; a real project id is needed before anything can be created.
PLACEHOLDER_GCP_PROJECT = "my-gcp-project"
# A VPC firewall rule takes at most 5,000 source ranges (Google Cloud VPC quotas).
FIREWALL_SOURCE_RANGES = (5000, "a firewall rule's limit of 5,000 source ranges")
# A Secret Manager version holds 64 KiB.
SECRET_MANAGER = SecretStore(65_536, "Secret Manager holds 64 KiB per version")
# The GCP autoscaler's scale-in control window (time_window_sec) takes 60 to 3600 seconds.
GCP_SCALE_IN_WINDOW_SECONDS = (60, 3600)


@dataclass(frozen=True)
class GcpLocation:
    project: str
    zone: str


@dataclass(frozen=True)
class GcpMachines:
    machine_type: str
    accelerator_type: str
    accelerator_count: int
    image: str | None
    # A fleet's candidate types in order of preference; the first is `machine_type`.
    machine_types: tuple[str, ...] = ()
    # The user's VPC network and subnetwork; None: the stack makes its own.
    network: str | None = None
    subnetwork: str | None = None
    # A fleet's zones as the user listed them (pixtral:zones); empty: derived from gcp:zone's region.
    zones: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.subnetwork and not self.network:
            raise setting_error("subnetwork", self.subnetwork, "a subnetwork of pixtral:network: set "
                                "pixtral:network too (the firewall rules go on the network)")
        self._check_zones()
        self._check_candidates()
        known = MACHINE_TYPES.get(self.machine_type)
        if known is not None and known.cloud != "gcp":
            raise setting_error("machineType", self.machine_type, "a Compute Engine machine type, e.g. g2-standard-24")
        # G2/A2/A3 fix their GPUs; a different acceleratorType or count would be refused by the API at create time.
        attached = (self.accelerator_type, self.accelerator_count)
        if known is not None and known.accelerators_built_in and attached != (known.gpu, known.gpu_count):
            raise ConfigError(
                f"pixtral:machineType {self.machine_type} comes with {known.gpu_count}x {known.gpu}; "
                f"pixtral:acceleratorType/acceleratorCount say {self.accelerator_count}x {self.accelerator_type}. "
                "Set them to match, or pick another machine type")

    def _check_candidates(self) -> None:
        """A fleet's group runs one instance template, whose attached GPUs are fixed: every candidate type must carry
        the same GPU (the group's instance flexibility changes the machine type only)."""
        for name in self.machine_types:
            known = MACHINE_TYPES.get(name)
            if known is not None and known.accelerators_built_in and known.gpu != self.accelerator_type:
                raise setting_error("machineTypes", list(self.machine_types),
                                    f"candidates with the same GPU: {self.machine_types[0]} has "
                                    f"{self.accelerator_type}, {name} has {known.gpu}")

    def _check_zones(self) -> None:
        if not self.zones:
            return
        regions = sorted({region_of(zone) for zone in self.zones})
        if len(regions) > 1:
            raise setting_error("zones", list(self.zones), "zones of one region (a regional managed instance group "
                                f"spans one region); found {', '.join(regions)}")
        offered = gpu_zones(self.accelerator_type, regions[0])
        if offered is not None and not set(self.zones) & set(offered):
            raise setting_error("zones", list(self.zones), f"at least one zone that offers {self.accelerator_type}; "
                                f"in {regions[0]} those are {', '.join(offered)}")

    def region(self, zone: str) -> str:
        """The replicas' region: that of pixtral:zones (a fleet's, all in one region), else gcp:zone's."""
        return region_of(self.zones[0] if self.zones else zone)

    def fleet_zones(self, zone: str) -> tuple[str, ...]:
        """Where a fleet's regional group places replicas: the listed zones that offer the GPU, else every zone of
        gcp:zone's region that does, else gcp:zone alone (a region the catalog does not know)."""
        region = self.region(zone)
        offered = gpu_zones(self.accelerator_type, region)
        if self.zones:
            return tuple(z for z in self.zones if offered is None or z in offered)
        return offered or (zone,)


def gcp_machines(settings: Settings) -> GcpMachines:
    types = candidates(settings, "machineType", "machineTypes")
    machine_type = types[0]
    known = MACHINE_TYPES.get(machine_type)
    accelerator_type, accelerator_count = settings["acceleratorType"], settings["acceleratorCount"]
    if accelerator_type is not None and accelerator_type not in GPUS and settings["gpuMemoryGb"] is None:
        raise setting_error("acceleratorType", accelerator_type,
                            f"one of {', '.join(sorted(GPUS))}, or set pixtral:gpuMemoryGb for it")
    return GcpMachines(
        machine_type=machine_type,
        accelerator_type=accelerator_type or (known.gpu if known else "nvidia-l4"),
        accelerator_count=accelerator_count or (known.gpu_count if known else 1),
        image=settings["image"],
        machine_types=types,
        network=settings["network"],
        subnetwork=settings["subnetwork"],
        zones=settings["zones"] or (),
    )


def _machine_hardware(settings: Settings, gcp: GcpMachines, key: str, machine_type: str) -> Hardware:
    """A Compute Engine machine type's GPUs: its own (G2, A2, A3), else the attached acceleratorType/Count."""
    known = MACHINE_TYPES.get(machine_type)
    if known is not None and known.cloud != CLOUD:
        raise setting_error(key, machine_type, "Compute Engine machine types, e.g. g2-standard-24")
    own = known is not None and known.accelerators_built_in
    gpu_name = known.gpu if own else gcp.accelerator_type
    count, memory = settings["gpuCount"], settings["gpuMemoryGb"]
    return Hardware(
        where=f"pixtral:{key} {machine_type}",
        gpu_name=gpu_name,
        gpu_count=count if count is not None else (known.gpu_count if own else gcp.accelerator_count),
        gpu_memory_gb=memory if memory is not None else GPUS[gpu_name].memory_gb,
        cloud=CLOUD,
    )


def _machines(settings: Settings, gcp: GcpMachines) -> list[Hardware]:
    key = chosen_by(settings, "machineType", "machineTypes")
    return [_machine_hardware(settings, gcp, key, name) for name in gcp.machine_types]


class _OnGcp:
    provider_namespaces = (CLOUD,)
    creates_machines = True
    artefact_store = "own"
    secret_store = SECRET_MANAGER
    cidr_limit = FIREWALL_SOURCE_RANGES
    load_balancer_publishes = "ip"

    def cloud_settings(self, settings: Settings) -> dict[str, Any]:
        return {"gcp": gcp_machines(settings)}

    def location(self, errors: list[str]) -> tuple[Any, list[str]]:
        import pulumi

        config = pulumi.Config("gcp")
        project, zone = config.get("project"), config.get("zone")
        if not project:
            errors.append("gcp:project is not set; the GCP project to create resources in "
                          "(pulumi config set gcp:project YOUR-PROJECT)")
        elif project == PLACEHOLDER_GCP_PROJECT:
            errors.append(f"gcp:project: {project} is the stack file's placeholder, not a project; set yours with "
                          "`pulumi config set gcp:project YOUR-PROJECT`")
        if not zone:
            errors.append("gcp:zone is not set; a zone with the GPU, e.g. us-central1-a for nvidia-l4 "
                          "(pulumi config set gcp:zone ZONE)")
        zone_problems = gcp_zone_format_problems(zone)
        errors += zone_problems
        return (GcpLocation(project, zone) if project and zone and not zone_problems else None), []

    def located(self, spec: Any, location: Any) -> tuple[list[str], list[str]]:
        # A fleet takes only the region from gcp:zone; a VM or a GKE node pool gets its GPUs in that very zone.
        in_that_zone = not (self.platform == "vm" and spec.scaling.is_fleet)
        return gcp_zone_gpu_problems(location.zone, spec.gcp.accelerator_type, in_that_zone)


class Gcp(_OnGcp, Target):
    name = "gcp"
    listed = 2
    summary = "one Compute Engine VM, or a fleet of managed instance groups behind a global load balancer"
    platform = "vm"
    status_module = "pixtralctl.status_gcp"
    # A fleet at zero wakes on the load balancer's request count, a per-group metric (components/gcp_fleet.py).
    cannot_scale_to_zero = None
    # An estimate: Cloud Monitoring samples the load balancer's request count every 60 s and shows it after a delay
    # of a few minutes (stated per metric in Google's metrics list, https://cloud.google.com/monitoring/api/metrics_gcp),
    # then the autoscaler decides.
    wake_detection_seconds = 270

    def hardware(self, settings: Settings, spec_fields: dict[str, Any]) -> tuple[list[Hardware], Hardware | None]:
        return _machines(settings, spec_fields["gcp"]), None

    def candidate_types(self, spec: Any) -> tuple[str, ...]:
        return spec.gcp.machine_types or (spec.gcp.machine_type,)

    def check(self, spec: Any) -> None:
        autoscale = spec.scaling.autoscale
        low, high = GCP_SCALE_IN_WINDOW_SECONDS
        if autoscale is not None and not low <= autoscale.downscale_delay_seconds <= high:
            raise ConfigError(f"pixtral:autoscale: downscaleDelaySeconds={autoscale.downscale_delay_seconds} is not "
                              f"allowed on target gcp; expected {low} to {high} (the autoscaler's scale-in window)")
        if spec.gcp.zones and not spec.scaling.is_fleet:
            raise setting_error("zones", list(spec.gcp.zones), "no zones for one VM (it runs in gcp:zone); zones "
                                "apply to a fleet (pixtral:replicas above 1, or pixtral:autoscale)")

    def public_certificate_possible(self, spec: Any) -> bool:
        # Google-managed certificates serve external load balancers only; an internal one keeps the stack CA's.
        return not spec.scaling.internal

    def warnings(self, spec: Any, settings: Settings) -> list[str]:
        gcp = spec.gcp
        if not gcp.zones:
            return []
        kept = gcp.fleet_zones(gcp.zones[0])
        left_out = [zone for zone in gcp.zones if zone not in kept]
        return [f"pixtral:zones: {', '.join(left_out)} do not offer {gcp.accelerator_type}; the fleet uses "
                f"{', '.join(kept)}"] if left_out else []

    def deploy(self, stack: Any, api_key: Any, ca: Any) -> dict[str, Any]:
        from components.gcp_artefact_store import GcpArtefactStore

        location = stack.location
        # At the top of the stack, beside the server, in the replicas' region: turning one VM into a fleet (or
        # back) keeps the bucket and what the boots published in it.
        store = GcpArtefactStore("pixtral-artefacts", location.project, stack.spec.gcp.region(location.zone)) \
            if stack.spec.warm_starts else None
        stored = {"artefacts": store.url} if store else {}
        if stack.spec.scaling.is_fleet:
            from components.gcp_fleet import GcpGpuFleet, GcpGpuFleetArgs

            fleet = GcpGpuFleet("pixtral", GcpGpuFleetArgs(stack.spec, project=location.project,
                                                           zone=location.zone, api_key=api_key,
                                                           hf_token=stack.secrets.hf_token, ca=ca, artefacts=store))
            return {"endpoint": fleet.endpoint, "address": fleet.address, "project": location.project,
                    "region": fleet.region, "zones": list(fleet.zones), "instanceGroups": fleet.group_names,
                    "backendService": fleet.backend_service_name, "internal": stack.spec.scaling.internal, **stored}
        from components.gcp_vm import GcpGpuVm, GcpGpuVmArgs

        vm = GcpGpuVm("pixtral", GcpGpuVmArgs(stack.spec, project=location.project, zone=location.zone,
                                              api_key=api_key, hf_token=stack.secrets.hf_token, ca=ca,
                                              artefacts=store))
        return {"endpoint": vm.endpoint, "instanceName": vm.instance_name, "zone": location.zone,
                "publicIp": vm.public_ip, **stored}


class Gke(_OnGcp, KubernetesTarget):
    name = "gke"
    listed = 5
    summary = "a new GKE cluster (or a GPU node pool in an existing one) running the pods"
    kubeconfig_command = "gcloud container clusters get-credentials {cluster} --zone ZONE"
    # The program installs KEDA and reads GKE's managed Prometheus (components/gke_managed_metrics.py).
    managed_metrics = True

    def hardware(self, settings: Settings, spec_fields: dict[str, Any]) -> tuple[list[Hardware], Hardware | None]:
        node = _machines(settings, spec_fields["gcp"])[0]
        return [per_replica(node, settings["gpusPerReplica"])], node

    def deploy(self, stack: Any, api_key: Any, ca: Any) -> dict[str, Any]:
        from components.gke_cluster import GkeGpuCluster, GkeGpuClusterArgs

        cluster = GkeGpuCluster("pixtral", GkeGpuClusterArgs(stack.spec, project=stack.location.project,
                                                             zone=stack.location.zone))
        return {**deploy_workload(stack, api_key, ca, cluster), "clusterName": cluster.cluster_name}

    def pod_artefact_store(self, stack: Any, cluster: Any) -> Any:
        """A GCS bucket in the nodes' region and a Google service account the pods' Kubernetes service account acts
        as through Workload Identity (on for a cluster the program creates and on its GPU node pool; a reused
        cluster must have it on, docs/kubernetes.md)."""
        from components.gcp_artefact_store import GcpArtefactStore
        from components.pod_artefacts import SERVICE_ACCOUNT, PodArtefactStore

        location = stack.location
        store = GcpArtefactStore("pixtral-artefacts", location.project, stack.spec.gcp.region(location.zone))
        email, ready = store.grant_pods("pixtral-pods", location.project, stack.spec.kubernetes.namespace,
                                        SERVICE_ACCOUNT, parent=store)
        return PodArtefactStore(url=store.url, scheme="gs",
                                service_account_annotations={"iam.gke.io/gcp-service-account": email}, ready=ready)

    def installs_keda(self, spec: Any) -> bool:
        """Every gke cluster, a reused one too: KEDA there must sign in to Managed Prometheus as the program's
        reader (Workload Identity on its operator's service account), which a cluster's own KEDA does not."""
        return True

    def managed_metrics_source(self, stack: Any, workload: Any, on_cluster: Any) -> tuple[Any, Any, list]:
        import pulumi

        from components.gke_managed_metrics import GkeManagedMetrics, GkeManagedMetricsArgs

        metrics = GkeManagedMetrics("pixtral-metrics", GkeManagedMetricsArgs(
            project=stack.location.project, namespace=workload.namespace, secret_name=workload.secret_name,
            selector=workload.selector, labels=workload.selector, instance=pulumi.get_stack()), opts=on_cluster)
        return metrics.prometheus_url, metrics.trigger_authentication, metrics.ready


register(Gcp())
register(Gke())
