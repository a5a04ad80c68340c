"""Pixtral as a service on Compute Engine: regional managed instance groups of GPU replicas behind one load balancer.

The shape of `sky serve up`, built from Compute Engine's own machinery so nothing of ours runs as a controller:
instance templates with the single VM's cloud-init, a regional managed instance group per capacity type (standard,
Spot) with autohealing on vLLM's /health and proactive rolling updates, an autoscaler on the load balancer's
serving capacity, and a global external Application Load Balancer (a regional internal one with
`pixtral:internal`). The number of resources does not depend on the number of replicas.

With pixtral:tls (the default) HTTPS ends at the load balancer and the replicas speak plain HTTP inside the VPC:
the certificate is the stack CA's for the static address (a self-managed certificate), or with pixtral:domain on
the external load balancer a Google-managed one for the domain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.boot_image import looked_up_image_options
from components.gcp_shared import (
    GcpServerArgs,
    VmIdentity,
    api_firewalls,
    artefact_rights,
    boot_disk,
    dns_record,
    gpu_scheduling,
    guest_accelerator,
    local_ssds,
    network_tag,
    replica_user_data,
    shielded_vm,
    slug,
    stack_labels,
    stack_network,
    vm_identity,
    vm_metadata,
)
from pixtral_deploy.catalog import region_of
from pixtral_deploy.cloudinit import MetricsScrape
from pixtral_deploy.coldstart import cold_start
from pixtral_deploy.fleet_plan import fleet_plan
from pixtral_deploy.network import wholly_open_families
from pixtral_deploy.ops_agent import QUEUE_METRIC, ops_agent_scrape
from pixtral_deploy.scaling import MAX_TARGET, Scaling
from pixtral_deploy.storage import GCP_LOCAL_SSD_GB

# Where Google's load-balancer proxies and health checkers reach backends from (IPv4; the replicas have no IPv6):
# https://cloud.google.com/load-balancing/docs/health-check-concepts#ip-ranges and
# https://cloud.google.com/load-balancing/docs/firewall-rules.
GOOGLE_LB_RANGES = ("130.211.0.0/22", "35.191.0.0/16")
# An internal Application Load Balancer's Envoy proxies run in a proxy-only subnet of the region; outside the
# default network's auto-mode range 10.128.0.0/9.
PROXY_ONLY_SUBNET_RANGE = "10.127.252.0/23"
# The autoscaler keeps each group's load-balancer utilization at this share of the per-instance rate:
# max_rate_per_instance x LB_UTILIZATION_TARGET = targetQpsPerReplica.
LB_UTILIZATION_TARGET = 0.8
# GCP's limits: autohealing waits at most an hour; connection draining lasts at most an hour.
MAX_AUTOHEALING_DELAY_SECONDS = 3600
MAX_DRAINING_SECONDS = 3600
# The health check: vLLM's /health answers in milliseconds; three misses in a row (30 s) mark a replica unhealthy.
HEALTH_CHECK_INTERVAL_SECONDS = 10
HEALTH_CHECK_TIMEOUT_SECONDS = 5
UNHEALTHY_THRESHOLD = 3
# Cloud Armor takes at most ten source ranges per rule.
CIDRS_PER_ARMOR_RULE = 10
ARMOR_FIRST_PRIORITY = 1000
ARMOR_DEFAULT_PRIORITY = 2147483647
API_PORT_NAME = "http"
# The IP versions clients reach the load balancer's address over (see _address).
LB_IP_VERSIONS = (4,)
# What the HTTPS proxy accepts from clients: TLS 1.2 and up, with the MODERN profile's ciphers (forward secrecy;
# no RC4 / 3DES). https://cloud.google.com/load-balancing/docs/ssl-policies-concepts
SSL_PROFILE = "MODERN"
MIN_TLS_VERSION = "TLS_1_2"
# Scale to zero: the autoscaler goes below one VM only on a per-group Cloud Monitoring metric (not on per-instance
# metrics nor on load-balancing serving capacity): "If you need ... to scale your MIG down to zero VMs from time to
# time, you can configure your MIG to scale using per-group metrics instead" (Scale based on Monitoring metrics,
# https://cloud.google.com/compute/docs/autoscaler/scaling-cloud-monitoring-metrics). The per-group signal is the load
# balancer's own request count for the fleet's backend service. A filter on any resource type but gce_instance is a
# per-group metric; selectors join with AND and compare with = only; the series it selects (one per response code
# and client location) are summed (AutoscalingPolicyCustomMetricUtilization.filter, Compute Engine API reference).
REQUEST_METRIC = {False: ("loadbalancing.googleapis.com/https/request_count", "https_lb_rule"),
                  True: ("loadbalancing.googleapis.com/https/internal/request_count", "internal_http_lb_rule")}


@dataclass(frozen=True)
class Group:
    """One managed instance group: its capacity type and its size (fixed, or an autoscaled range)."""

    capacity: str  # "standard" or "spot"
    min_size: int
    max_size: int
    autoscaled: bool

    @property
    def spot(self) -> bool:
        return self.capacity == "spot"


def capacity_groups(scaling: Scaling) -> list[Group]:
    """The groups the fleet needs: all standard without Spot; with Spot, a standard group fixed at
    onDemandBaseReplicas (when above 0) and a Spot group for the rest (fixed, or autoscaled over what is left of
    the range)."""
    autoscaled = scaling.autoscale is not None
    if not scaling.spot:
        return [Group("standard", scaling.min_replicas, scaling.max_replicas, autoscaled)]
    base = scaling.on_demand_base_replicas
    groups = [Group("standard", base, base, False)] if base else []
    spot_max = scaling.max_replicas - base
    if spot_max > 0:
        groups.append(Group("spot", max(0, scaling.min_replicas - base), spot_max, autoscaled))
    return groups


def unfiltered(cidrs: tuple[str, ...]) -> bool:
    """Whether allowedCidrs admit every client the load balancer can see, so that Cloud Armor has nothing to deny.
    Its address is IPv4 (the external GlobalAddress is IPV4, the internal one comes from the IPv4 subnet): a wholly
    open IPv6 family alone admits no IPv4 client, and leaves the policy in place."""
    return set(LB_IP_VERSIONS) <= wholly_open_families(cidrs)


def max_rate_per_instance(target_qps_per_replica: float) -> float:
    """The backend's per-instance rate: the autoscaler holds utilization at LB_UTILIZATION_TARGET of it, which is
    targetQpsPerReplica requests per second per replica (SkyServe's rule: ceil(QPS / target) replicas)."""
    return target_qps_per_replica / LB_UTILIZATION_TARGET


GcpGpuFleetArgs = GcpServerArgs


class GcpGpuFleet(pulumi.ComponentResource):
    """GPU replicas in regional managed instance groups behind one load balancer; `endpoint` is its URL."""

    endpoint: pulumi.Output[str]
    address: pulumi.Output[str]
    group_names: pulumi.Output[list[str]]
    backend_service_name: pulumi.Output[str]
    region: str
    zones: tuple[str, ...]

    def __init__(self, name: str, args: GcpGpuFleetArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pixtral:gcp:GpuFleet", name, None, opts)
        self._name = name
        self._args = args
        self._child = pulumi.ResourceOptions(parent=self)
        spec = args.spec
        self._spec = spec
        self._internal = spec.scaling.internal
        self.zones = spec.gcp.fleet_zones(args.zone)
        self.region = region_of(self.zones[0])
        port = spec.server.port
        tag = network_tag(name)

        identity = vm_identity(name, args.project, args.api_key, args.hf_token, parent=self)
        # The single VM's network: a VPC of the stack's own unless pixtral:network names one; the internal load
        # balancer's address comes from its subnetwork.
        self._network = stack_network(name, args.project, self.region, spec.gcp.network,
                                      spec.gcp.subnetwork, parent=self)
        proxy_subnet = self._proxy_only_subnet() if self._internal else None
        # The replicas take the API port from the load balancer and its health checkers only; who may call the API
        # is decided at the load balancer (Cloud Armor), since the replicas see the proxies' addresses.
        lb_sources = GOOGLE_LB_RANGES + ((PROXY_ONLY_SUBNET_RANGE,) if self._internal else ())
        api_firewalls(f"{name}-from-lb", lb_sources, port, self._network.network, args.project, tag, parent=self)

        health_check = self._health_check()
        user_data = replica_user_data(spec, identity, artefacts=args.artefacts, metrics=self._metrics_agent(identity))
        # Every replica reads the store at boot: no template (so no group) before the rights exist.
        store_ready = artefact_rights(name, args.artefacts, identity, parent=self)
        groups = []
        for group in capacity_groups(spec.scaling):
            template = self._template(group, user_data, identity.service_account.email, tag, store_ready)
            groups.append((group, self._group(group, template, health_check)))
        backend = self._backend_service(groups, health_check)
        for group, manager in groups:
            if group.autoscaled:
                self._autoscaler(group, manager, backend)
        address = self._address()
        proxy = self._proxy(self._url_map(backend), address)
        self._forwarding_rule(address, proxy, proxy_subnet)
        tls = spec.tls
        if tls.domain:
            dns_record(name, args.project, tls.dns_zone, tls.domain, address.address, parent=self)

        self.address = address.address
        self.endpoint = pulumi.Output.from_input(tls.domain or address.address).apply(spec.endpoint_url)
        self.group_names = pulumi.Output.all(*[manager.name for _, manager in groups])
        self.backend_service_name = backend.name
        self.register_outputs({"endpoint": self.endpoint, "group_names": self.group_names,
                               "backend_service_name": self.backend_service_name})

    # -- replicas ---------------------------------------------------------------------------------------------

    def _metrics_agent(self, identity: VmIdentity) -> MetricsScrape | None:
        """With targetQueuePerReplica, each replica runs the Ops Agent scraping vLLM's queue into Cloud Monitoring,
        and its identity may write metrics (nothing else: the agent's log collection is off)."""
        autoscale = self._spec.scaling.autoscale
        if autoscale is None or autoscale.metric != "queue":
            return None
        gcp.projects.IAMMember(
            f"{self._name}-metric-writer", project=self._args.project, role="roles/monitoring.metricWriter",
            member=identity.service_account.email.apply(lambda email: f"serviceAccount:{email}"), opts=self._child)
        return ops_agent_scrape(self._spec.server.port)

    def _template(self, group: Group, user_data: pulumi.Output[str], service_account: pulumi.Output[str],
                  tag: str, store_ready: list[pulumi.Resource]) -> gcp.compute.InstanceTemplate:
        """What every replica of a group boots: the single VM's cloud-init, disk, GPUs and identity. A template
        cannot change in place: a new server description makes a new template (auto-named, so it exists beside
        the old one) and the group rolls onto it."""
        spec, machines = self._spec, self._spec.gcp
        disk = boot_disk(spec, parent=self)
        return gcp.compute.InstanceTemplate(
            f"{self._name}-{group.capacity}",
            project=self._args.project,
            machine_type=machines.machine_type,
            disks=[gcp.compute.InstanceTemplateDiskArgs(
                source_image=disk.image, disk_size_gb=disk.size_gb, disk_type=disk.type, boot=True, auto_delete=True),
                # The model cache's scratch disks, as on the single VM (gcp_shared.local_ssds).
                *(gcp.compute.InstanceTemplateDiskArgs(type="SCRATCH", disk_type="local-ssd", interface="NVME",
                                                       disk_size_gb=GCP_LOCAL_SSD_GB, auto_delete=True)
                  for _ in range(local_ssds(spec)))],
            guest_accelerators=[gcp.compute.InstanceTemplateGuestAcceleratorArgs(**guest_accelerator(spec))],
            # A preempted Spot replica is deleted; its group recreates it when Spot capacity returns.
            scheduling=gcp.compute.InstanceTemplateSchedulingArgs(**gpu_scheduling(group.spot, on_preemption="DELETE")),
            network_interfaces=[gcp.compute.InstanceTemplateNetworkInterfaceArgs(
                network=self._network.network,
                subnetwork=self._network.subnetwork,
                # An ephemeral public address for the install and the weight download; ingress stays closed but for
                # the load balancer (the firewall above).
                access_configs=[gcp.compute.InstanceTemplateNetworkInterfaceAccessConfigArgs()],
            )],
            service_account=gcp.compute.InstanceTemplateServiceAccountArgs(email=service_account,
                                                                           scopes=["cloud-platform"]),
            metadata=vm_metadata(user_data),
            shielded_instance_config=gcp.compute.InstanceTemplateShieldedInstanceConfigArgs(**shielded_vm()),
            tags=[tag],
            labels={**stack_labels(), "capacity": group.capacity},
            opts=pulumi.ResourceOptions.merge(pulumi.ResourceOptions(parent=self, depends_on=store_ready),
                                              looked_up_image_options(machines.image, "disks[0].sourceImage")),
        )

    def _group(self, group: Group, template: gcp.compute.InstanceTemplate,
               health_check: pulumi.Resource) -> gcp.compute.RegionInstanceGroupManager:
        spec = self._spec
        estimate = cold_start(spec)
        machines = spec.gcp
        return gcp.compute.RegionInstanceGroupManager(
            f"{self._name}-{group.capacity}",
            project=self._args.project,
            region=self.region,
            base_instance_name=f"pixtral-{slug(pulumi.get_stack())}"[:48].rstrip("-") + f"-{group.capacity}",
            versions=[gcp.compute.RegionInstanceGroupManagerVersionArgs(
                name="primary", instance_template=template.self_link_unique)],
            # The autoscaler owns an autoscaled group's size.
            target_size=None if group.autoscaled else group.min_size,
            distribution_policy_zones=list(self.zones),
            # BALANCED spreads replicas over the zones but places them where GPUs are available, instead of
            # waiting on a zone that has none (EVEN would).
            distribution_policy_target_shape="BALANCED",
            instance_flexibility_policy=gcp.compute.RegionInstanceGroupManagerInstanceFlexibilityPolicyArgs(
                instance_selections=[
                    gcp.compute.RegionInstanceGroupManagerInstanceFlexibilityPolicyInstanceSelectionArgs(
                        name=f"choice-{rank}", machine_types=[machine_type], rank=rank)
                    for rank, machine_type in enumerate(machines.machine_types)]
            ) if len(machines.machine_types) > 1 else None,
            named_ports=[gcp.compute.RegionInstanceGroupManagerNamedPortArgs(
                name=API_PORT_NAME, port=spec.server.port)],
            auto_healing_policies=gcp.compute.RegionInstanceGroupManagerAutoHealingPoliciesArgs(
                health_check=health_check.id,
                # A replica downloading and loading the weights is not dead: no repair before the cold start.
                initial_delay_sec=min(fleet_plan(spec).health_grace_seconds, MAX_AUTOHEALING_DELAY_SECONDS),
            ),
            # A changed template rolls out by adding new replicas first (max_surge: a regional group surges at
            # least one per zone) and removing none before they are ready (max_unavailable 0).
            update_policy=gcp.compute.RegionInstanceGroupManagerUpdatePolicyArgs(
                type="PROACTIVE",
                minimal_action="REPLACE",
                replacement_method="SUBSTITUTE",
                max_surge_fixed=len(self.zones),
                max_unavailable_fixed=0,
                # The BALANCED shape moves no running replica between zones.
                instance_redistribution_type="NONE",
                min_ready_sec=min(math.ceil(estimate.total) if estimate else 0, MAX_AUTOHEALING_DELAY_SECONDS),
            ),
            # `pulumi up` returns once the groups exist; `pixtralctl wait` waits for the replicas to serve.
            wait_for_instances=False,
            opts=self._child,
        )

    def _autoscaler(self, group: Group, manager: gcp.compute.RegionInstanceGroupManager,
                    backend: pulumi.Resource) -> None:
        autoscale = self._spec.scaling.autoscale
        estimate = cold_start(self._spec)
        gcp.compute.RegionAutoscaler(
            f"{self._name}-{group.capacity}",
            project=self._args.project,
            region=self.region,
            target=manager.id,
            autoscaling_policy=gcp.compute.RegionAutoscalerAutoscalingPolicyArgs(
                min_replicas=group.min_size,
                max_replicas=group.max_size,
                # GCP has no "load above target this long" delay; its knob is how long a new replica's numbers are
                # ignored. The upscale delay, and never less than a cold start (a loading replica serves nothing).
                cooldown_period=max(autoscale.upscale_delay_seconds, math.ceil(estimate.total) if estimate else 0),
                **(self._scale_to_zero_signals(autoscale, backend) if autoscale.scales_to_zero
                   else self._scaling_signal(autoscale)),
                # Scale in by at most one replica per downscaleDelaySeconds.
                scale_in_control=gcp.compute.RegionAutoscalerAutoscalingPolicyScaleInControlArgs(
                    time_window_sec=autoscale.downscale_delay_seconds,
                    max_scaled_in_replicas=gcp.compute.RegionAutoscalerAutoscalingPolicyScaleInControlMaxScaledInReplicasArgs(
                        fixed=1),
                ),
            ),
            opts=self._child,
        )

    @staticmethod
    def _scaling_signal(autoscale) -> dict:
        """QPS: the load balancer's serving capacity (see max_rate_per_instance). Queue: vLLM's requests waiting,
        per instance, held at targetQueuePerReplica (a gauge)."""
        if autoscale.metric == "qps":
            return {"load_balancing_utilization":
                    gcp.compute.RegionAutoscalerAutoscalingPolicyLoadBalancingUtilizationArgs(
                        target=LB_UTILIZATION_TARGET)}
        return {"metrics": [gcp.compute.RegionAutoscalerAutoscalingPolicyMetricArgs(
            name=QUEUE_METRIC, target=autoscale.target_queue_per_replica, type="GAUGE",
            filter='resource.type = "prometheus_target"')]}

    def _scale_to_zero_signals(self, autoscale, backend: pulumi.Resource) -> dict:
        """A fleet at zero: the load balancer's requests to the backend service, a per-group signal that exists with no
        VM (REQUEST_METRIC). Requests the load balancer refuses for want of a healthy backend count there too, which
        is what wakes the group. QPS: one replica per targetQpsPerReplica requests per second, SkyServe's rule, in
        place of serving capacity (which needs a VM to measure). Queue: the queue signal (published by the
        replicas, so absent at zero) and the request signal with an assignment no replica reaches, so that it asks
        for one replica while requests arrive and none once they stop; the autoscaler follows the larger."""
        metric, resource = REQUEST_METRIC[self._internal]
        requests = gcp.compute.RegionAutoscalerAutoscalingPolicyMetricArgs(
            name=metric,
            filter=backend.name.apply(lambda name: f'resource.type = "{resource}" AND '
                                                   f'resource.labels.backend_target_name = "{name}"'),
            single_instance_assignment=autoscale.target_qps_per_replica if autoscale.metric == "qps"
            else MAX_TARGET)
        if autoscale.metric == "qps":
            return {"metrics": [requests]}
        return {"metrics": [*self._scaling_signal(autoscale)["metrics"], requests]}

    # -- load balancer ----------------------------------------------------------------------------------------

    def _health_check(self) -> pulumi.Resource:
        """vLLM's /health on the API port: the load balancer's readiness gate and the groups' autohealing."""
        common = dict(
            project=self._args.project,
            check_interval_sec=HEALTH_CHECK_INTERVAL_SECONDS,
            timeout_sec=HEALTH_CHECK_TIMEOUT_SECONDS,
            healthy_threshold=1,
            unhealthy_threshold=UNHEALTHY_THRESHOLD,
            opts=self._child,
        )
        port = self._spec.server.port
        if self._internal:
            return gcp.compute.RegionHealthCheck(
                f"{self._name}-health", region=self.region, **common,
                http_health_check=gcp.compute.RegionHealthCheckHttpHealthCheckArgs(port=port, request_path="/health"))
        return gcp.compute.HealthCheck(
            f"{self._name}-health", **common,
            http_health_check=gcp.compute.HealthCheckHttpHealthCheckArgs(port=port, request_path="/health"))

    def _backend_service(self, groups: list[tuple[Group, gcp.compute.RegionInstanceGroupManager]],
                         health_check: pulumi.Resource) -> pulumi.Resource:
        spec = self._spec
        autoscale = spec.scaling.autoscale
        rate = max_rate_per_instance(autoscale.target_qps_per_replica) if autoscale and \
            autoscale.metric == "qps" else None
        # RATE makes "serving capacity" the per-instance rate the autoscaler reads; otherwise the default mode.
        balancing = {"balancing_mode": "RATE", "max_rate_per_instance": rate} if rate else \
            {"balancing_mode": "UTILIZATION"}
        backend_args = gcp.compute.RegionBackendServiceBackendArgs if self._internal else \
            gcp.compute.BackendServiceBackendArgs
        backends = [backend_args(group=manager.instance_group, capacity_scaler=1.0, **balancing)
                    for _, manager in groups]
        plan = fleet_plan(spec)
        common = dict(
            project=self._args.project,
            protocol="HTTP",
            port_name=API_PORT_NAME,
            health_checks=health_check.id,
            backends=backends,
            # SkyServe's least_load: each request goes to the replica with the fewest outstanding requests.
            locality_lb_policy="LEAST_REQUEST",
            # A response may take as long as the whole context takes to generate: the timeout must not cut it.
            timeout_sec=plan.response_timeout_seconds,
            # A replica leaving (scale-in, update, Spot preemption notice) finishes the generations it holds.
            connection_draining_timeout_sec=min(plan.drain_seconds, MAX_DRAINING_SECONDS),
            security_policy=self._armor_policy(),
            opts=self._child,
        )
        if self._internal:
            return gcp.compute.RegionBackendService(f"{self._name}-backend", region=self.region,
                                                    load_balancing_scheme="INTERNAL_MANAGED", **common)
        return gcp.compute.BackendService(f"{self._name}-backend", load_balancing_scheme="EXTERNAL_MANAGED", **common)

    def _armor_policy(self) -> pulumi.Output[str] | None:
        """allowedCidrs at the load balancer: allow them, deny the rest. None only when they admit every address of
        every family the load balancer's address serves: one wholly open family leaves the others filtered."""
        cidrs = self._spec.allowed_cidrs
        if unfiltered(cidrs):
            return None
        internal = self._internal
        rule, match, config = (
            (gcp.compute.RegionSecurityPolicyRuleArgs, gcp.compute.RegionSecurityPolicyRuleMatchArgs,
             gcp.compute.RegionSecurityPolicyRuleMatchConfigArgs) if internal else
            (gcp.compute.SecurityPolicyRuleArgs, gcp.compute.SecurityPolicyRuleMatchArgs,
             gcp.compute.SecurityPolicyRuleMatchConfigArgs))
        chunks = [cidrs[i:i + CIDRS_PER_ARMOR_RULE] for i in range(0, len(cidrs), CIDRS_PER_ARMOR_RULE)]
        rules = [rule(action="allow", priority=ARMOR_FIRST_PRIORITY + index, description="pixtral:allowedCidrs",
                      match=match(versioned_expr="SRC_IPS_V1", config=config(src_ip_ranges=list(chunk))))
                 for index, chunk in enumerate(chunks)]
        rules.append(rule(action="deny(403)", priority=ARMOR_DEFAULT_PRIORITY, description="everyone else",
                          match=match(versioned_expr="SRC_IPS_V1", config=config(src_ip_ranges=["*"]))))
        if internal:
            policy = gcp.compute.RegionSecurityPolicy(f"{self._name}-allowed", project=self._args.project,
                                                      region=self.region, type="CLOUD_ARMOR", rules=rules,
                                                      opts=self._child)
        else:
            policy = gcp.compute.SecurityPolicy(f"{self._name}-allowed", project=self._args.project,
                                                type="CLOUD_ARMOR", rules=rules, opts=self._child)
        return policy.self_link

    def _url_map(self, backend: pulumi.Resource) -> pulumi.Resource:
        if self._internal:
            return gcp.compute.RegionUrlMap(f"{self._name}-urls", project=self._args.project, region=self.region,
                                            default_service=backend.id, opts=self._child)
        return gcp.compute.URLMap(f"{self._name}-urls", project=self._args.project, default_service=backend.id,
                                  opts=self._child)

    def _proxy(self, url_map: pulumi.Resource, address: pulumi.Resource) -> pulumi.Resource:
        """The one place the protocol is chosen: HTTPS ends here (pixtral:tls), behind it everything is plain HTTP
        inside the VPC; with tls false a plain HTTP proxy."""
        if self._spec.tls.enabled:
            return self._https_proxy(url_map, address)
        if self._internal:
            return gcp.compute.RegionTargetHttpProxy(f"{self._name}-proxy", project=self._args.project,
                                                     region=self.region, url_map=url_map.id, opts=self._child)
        return gcp.compute.TargetHttpProxy(f"{self._name}-proxy", project=self._args.project, url_map=url_map.id,
                                           opts=self._child)

    def _https_proxy(self, url_map: pulumi.Resource, address: pulumi.Resource) -> pulumi.Resource:
        certificate = self._certificate(address)
        common = dict(project=self._args.project, url_map=url_map.id, ssl_certificates=[certificate.self_link],
                      opts=self._child)
        if self._internal:
            policy = gcp.compute.RegionSslPolicy(f"{self._name}-tls-policy", project=self._args.project,
                                                 region=self.region, profile=SSL_PROFILE,
                                                 min_tls_version=MIN_TLS_VERSION, opts=self._child)
            return gcp.compute.RegionTargetHttpsProxy(f"{self._name}-proxy", region=self.region,
                                                      ssl_policy=policy.self_link, **common)
        policy = gcp.compute.SSLPolicy(f"{self._name}-tls-policy", project=self._args.project, profile=SSL_PROFILE,
                                       min_tls_version=MIN_TLS_VERSION, opts=self._child)
        return gcp.compute.TargetHttpsProxy(f"{self._name}-proxy", ssl_policy=policy.self_link, **common)

    def _certificate(self, address: pulumi.Resource) -> pulumi.Resource:
        """The certificate the proxy serves. Google-managed for pixtral:domain on the external load balancer (Google
        renews it); else the stack CA's for the static address (and the domain, internal), whose key is a secret
        input of the certificate resource only. Every certificate resource is auto-named: a re-issued one is
        created beside the old one, the proxy switches to it, then the old one is deleted (Pulumi's default
        create-before-replace; Compute Engine refuses to delete a certificate a proxy still uses)."""
        tls = self._spec.tls
        if self._spec.public_certificate:
            return gcp.compute.ManagedSslCertificate(
                f"{self._name}-certificate", project=self._args.project,
                managed=gcp.compute.ManagedSslCertificateManagedArgs(domains=[tls.domain]), opts=self._child)
        issued = self._args.ca.issue(self._name, ip_addresses=[address.address],
                                     dns_names=[tls.domain] if tls.domain else [], parent=self)
        # The server certificate alone: the stack CA is the root clients already trust (caCertificate), and a
        # server sends no root.
        common = dict(project=self._args.project, certificate=issued.cert_pem, private_key=issued.private_key_pem,
                      opts=self._child)
        if self._internal:
            return gcp.compute.RegionSslCertificate(f"{self._name}-certificate", region=self.region, **common)
        return gcp.compute.SSLCertificate(f"{self._name}-certificate", **common)

    def _address(self) -> pulumi.Resource:
        """A static address, so `endpoint` survives every update; internal: a private one in the region."""
        if self._internal:
            return gcp.compute.Address(f"{self._name}-address", project=self._args.project, region=self.region,
                                       address_type="INTERNAL", purpose="SHARED_LOADBALANCER_VIP",
                                       subnetwork=self._network.subnetwork, opts=self._child)
        return gcp.compute.GlobalAddress(f"{self._name}-address", project=self._args.project, ip_version="IPV4",
                                         address_type="EXTERNAL", opts=self._child)

    def _forwarding_rule(self, address: pulumi.Resource, proxy: pulumi.Resource,
                         proxy_subnet: pulumi.Resource | None) -> None:
        port = str(self._spec.server.port)
        if self._internal:
            gcp.compute.ForwardingRule(
                f"{self._name}-api", project=self._args.project, region=self.region,
                load_balancing_scheme="INTERNAL_MANAGED", ip_protocol="TCP", port_range=port,
                ip_address=address.id, target=proxy.id, network=self._network.network,
                subnetwork=self._network.subnetwork,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[proxy_subnet]))
            return
        gcp.compute.GlobalForwardingRule(
            f"{self._name}-api", project=self._args.project, load_balancing_scheme="EXTERNAL_MANAGED",
            ip_protocol="TCP", port_range=port, ip_address=address.id, target=proxy.id, opts=self._child)

    def _proxy_only_subnet(self) -> gcp.compute.Subnetwork:
        """The internal load balancer's proxies need a proxy-only subnet in the region (one per region and
        network: a project that has one already sets pixtral:internal on a network without, or removes ours)."""
        return gcp.compute.Subnetwork(
            f"{self._name}-proxy-only", project=self._args.project, region=self.region, network=self._network.network,
            ip_cidr_range=PROXY_ONLY_SUBNET_RANGE, purpose="REGIONAL_MANAGED_PROXY", role="ACTIVE", opts=self._child)
