"""Pixtral as a service on AWS: replicas in an Auto Scaling Group behind an Application Load Balancer.

AWS's own machinery does the serving work SkyServe's controller does: the load balancer routes and health-checks,
the group replaces and scales replicas, spot capacity is diversified and rebalanced. Nothing of ours runs as a
controller, and the resources declared do not depend on the replica count (2 replicas and 50 are the same
program).
"""

from __future__ import annotations

import json
import math

import pulumi
import pulumi_aws as aws

from components.aws_balancer_tls import SSL_POLICY, domain_alias, imported_certificate, public_certificate
from components.aws_shared import (
    AwsServerArgs,
    api_ingress_from_cidrs,
    artefact_rights,
    metadata_options,
    newest_dlami,
    replica_security_group,
    replica_user_data,
    root_volume,
    subnets_offering,
    vm_identity,
)
from components.boot_image import looked_up_image_options
from components.stack_ca import StackCa
from pixtral_deploy.catalog import has_local_nvme
from pixtral_deploy.cloudinit import compress_user_data
from pixtral_deploy.coldstart import keeps_weights_across_stop
from pixtral_deploy.fleet_plan import fleet_plan
from pixtral_deploy.fleetboot import FLEET_DIMENSION, LIFECYCLE_HOOK, METRIC_NAMESPACE, QUEUE_METRIC, FleetBoot
from pixtral_deploy.scaling import QPS_WINDOW_SECONDS, SCALE_IN_PERIOD_SECONDS, Autoscale
from pixtral_deploy.spec import StackSpec

# ALB limits: idle timeout 1-4000 s, deregistration delay 0-3600 s.
ALB_MAX_IDLE_TIMEOUT = 4000
ALB_MAX_DEREGISTRATION_DELAY = 3600
# vLLM's readiness: /health answers 200 once the engine serves (the key guard leaves it open).
HEALTH_PATH = "/health"
HEALTH_INTERVAL_SECONDS = 10
HEALTHY_THRESHOLD = 2
UNHEALTHY_THRESHOLD = 3
# After a scale-in step has finished (Auto Scaling counts it finished once the balancer has drained the replica), the
# next step waits this long: two one-minute periods, so the alarm's next datapoint is one in which the group already
# counts one replica fewer (group metrics are one-minute data and can land a minute late). A shorter wait could
# remove a second replica on a stale datapoint, which target tracking would then cold-start again.
SCALE_IN_COOLDOWN_SECONDS = 120
# The wake from zero: the balancer answers 503 when its target group has no registered target ("HTTP 503: Service
# unavailable: The target groups for the load balancer have no registered targets",
# https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-troubleshooting.html), and counts
# those in HTTPCode_ELB_503_Count; RequestCount counts only requests a target answered, so it stays silent
# (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html).
REFUSED_METRIC = "HTTPCode_ELB_503_Count"
WAKE_PERIOD_SECONDS = 60
# Where the Deep Learning AMI (Ubuntu) keeps its root file system.
ROOT_DEVICE = "/dev/sda1"


def idle_timeout_seconds(spec: StackSpec) -> int:
    """The balancer closes a connection silent this long: a non-streamed answer is silent until it ends, so the plan's
    response timeout (the ALB default, 60 s, cuts most multimodal answers)."""
    return min(ALB_MAX_IDLE_TIMEOUT, fleet_plan(spec).response_timeout_seconds)


def deregistration_delay_seconds(spec: StackSpec) -> int:
    """A replica leaving (scale-in, rolling update, spot rebalance) gets no new requests and keeps the plan's drain to
    finish the ones it has (the balancer completes sooner once they are done)."""
    return min(ALB_MAX_DEREGISTRATION_DELAY, fleet_plan(spec).drain_seconds)


def requests_per_target_per_minute(target_qps_per_replica: float) -> float:
    """ALBRequestCountPerTarget counts requests per minute: SkyServe's per-second target times its 60 s window."""
    return target_qps_per_replica * QPS_WINDOW_SECONDS


AwsGpuFleetArgs = AwsServerArgs


class AwsGpuFleet(pulumi.ComponentResource):
    """Replicas of the one server, behind one load balancer; `endpoint` is the balancer's URL."""

    endpoint: pulumi.Output[str]
    auto_scaling_group: pulumi.Output[str]
    target_group: pulumi.Output[str]
    user_data: pulumi.Output[str]

    def __init__(self, name: str, args: AwsGpuFleetArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pixtral:aws:GpuFleet", name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        spec = args.spec
        machines, scaling, port = spec.aws, spec.scaling, spec.server.port
        # The dimension the replicas publish their queue under: fixed by the program, so the launch template does
        # not depend on the group it belongs to.
        self._fleet_id = f"pixtral-{pulumi.get_stack()}-{name}"

        vpc_id = machines.vpc_id or aws.ec2.get_vpc_output(default=True, opts=pulumi.InvokeOptions(parent=self)).id
        subnet_ids = subnets_offering(list(machines.instance_types),
                                      aws.ec2.GetSubnetsFilterArgs(name="vpc-id", values=[vpc_id]), self).apply(
            lambda ids: _at_least_two(ids, machines.instance_types))

        balancer_group, replica_group = self._security_groups(vpc_id, spec)
        identity = vm_identity(name, args.api_key, args.hf_token, parent=self)
        scales_to_zero = scaling.autoscale is not None and scaling.autoscale.scales_to_zero
        # The launch hold: a new instance enters service (and the balancer's target group) only once vLLM answers.
        # A warm pool needs it to stop instances with the weights on disk; a fleet at zero needs it so that callers
        # get the balancer's 503 until the woken replica can serve, never a 502 from one still loading (a group of
        # unhealthy targets only is routed to all of them: the balancer fails open).
        boot = FleetBoot(self._fleet_id, queue_metrics=scaling.autoscale is not None
                         and scaling.autoscale.metric == "queue",
                         lifecycle_hook=LIFECYCLE_HOOK if scaling.warm_pool or scales_to_zero else None)
        # Local NVMe when a candidate has it, unless a warm pool stops instances: instance store is blank after a
        # stop, so the weights stay on the EBS root (prepare-storage.sh reads PIXTRAL_LOCAL_NVME).
        local_nvme = (any(has_local_nvme(t) for t in machines.instance_types)
                      and not keeps_weights_across_stop(spec))
        self.user_data = replica_user_data(spec.server, identity, local_nvme, boot, artefacts=args.artefacts)
        # Every replica reads the store at boot: the group launches none before the rights exist.
        store_ready = artefact_rights(name, args.artefacts, identity, parent=self)
        template = self._launch_template(spec, identity.instance_profile, replica_group)

        balancer = aws.lb.LoadBalancer(
            name,
            load_balancer_type="application",
            internal=scaling.internal,
            security_groups=[balancer_group.id],
            subnets=subnet_ids,
            idle_timeout=idle_timeout_seconds(spec),
            drop_invalid_header_fields=True,
            tags={"Name": f"pixtral-{name}"},
            opts=self._child,
        )
        target_group = self._target_group(vpc_id, spec)
        certificate_arn = self._certificate(spec, balancer, args.ca)
        listener = self.listener(balancer, target_group, port, certificate_arn)
        group = self._group(spec, template, target_group, subnet_ids, boot, opts=pulumi.ResourceOptions(
            parent=self, depends_on=[listener, *store_ready]))
        self._role_extras(identity.role, boot, group)
        if scaling.autoscale is not None:
            self._scaling_policy(spec, group, balancer, target_group)
            self._scale_in(scaling.autoscale, group, balancer, target_group)
            if scales_to_zero:
                self._wake(group, balancer)

        self.auto_scaling_group = group.name
        self.target_group = target_group.arn
        tls = spec.tls
        if tls.domain:
            domain_alias(name, tls.dns_zone, tls.domain, balancer, parent=self)
        self.endpoint = pulumi.Output.from_input(tls.domain or balancer.dns_name).apply(spec.endpoint_url)
        self.register_outputs({"endpoint": self.endpoint, "auto_scaling_group": self.auto_scaling_group,
                               "target_group": self.target_group})

    def _certificate(self, spec: StackSpec, balancer: aws.lb.LoadBalancer,
                     ca: StackCa | None) -> pulumi.Output[str] | None:
        """The ARN of the certificate the balancer serves: public for pixtral:domain, else the stack CA's; None
        with pixtral:tls false."""
        tls = spec.tls
        if not tls.enabled:
            return None
        if spec.public_certificate:
            return public_certificate(self._name, tls.domain, tls.dns_zone, parent=self)
        assert ca is not None, "HTTPS without a domain needs the stack CA (__main__ makes it when tls is on)"
        return imported_certificate(self._name, ca, balancer, parent=self)

    def listener(self, balancer: aws.lb.LoadBalancer, target_group: aws.lb.TargetGroup, port: int,
                 certificate_arn: pulumi.Output[str] | None) -> aws.lb.Listener:
        """The API port: HTTPS with the certificate (TLS ends here), or plain HTTP with pixtral:tls false. Either
        way the balancer forwards plain HTTP to the replicas inside the VPC."""
        https = certificate_arn is not None
        return aws.lb.Listener(
            f"{self._name}-api",
            load_balancer_arn=balancer.arn,
            port=port,
            protocol="HTTPS" if https else "HTTP",
            certificate_arn=certificate_arn,
            ssl_policy=SSL_POLICY if https else None,
            default_actions=[aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target_group.arn)],
            opts=self._child,
        )

    def _security_groups(self, vpc_id: pulumi.Input[str],
                         spec: StackSpec) -> tuple[aws.ec2.SecurityGroup, aws.ec2.SecurityGroup]:
        """The balancer admits allowedCidrs on the API port; the replicas admit the API port from the balancer
        only (its traffic and its health checks). No SSH anywhere: shell access is SSM Session Manager."""
        port = spec.server.port
        balancer = aws.ec2.SecurityGroup(f"{self._name}-lb", vpc_id=vpc_id,
                                         description=f"Pixtral load balancer on port {port}", opts=self._child)
        api_ingress_from_cidrs(f"{self._name}-lb", balancer, spec.allowed_cidrs, port, self)
        replicas = replica_security_group(f"{self._name}-replicas", vpc_id,
                                          f"Pixtral replicas: port {port} from the load balancer only",
                                          f"{self._name}-replicas", self)
        aws.vpc.SecurityGroupIngressRule(
            f"{self._name}-replicas-from-lb", security_group_id=replicas.id, referenced_security_group_id=balancer.id,
            ip_protocol="tcp", from_port=port, to_port=port, description="Pixtral API from the load balancer",
            opts=self._child)
        aws.vpc.SecurityGroupEgressRule(
            f"{self._name}-lb-to-replicas", security_group_id=balancer.id, referenced_security_group_id=replicas.id,
            ip_protocol="tcp", from_port=port, to_port=port, description="Requests and health checks to replicas",
            opts=self._child)
        return balancer, replicas

    def _launch_template(self, spec: StackSpec, profile: aws.iam.InstanceProfile,
                         replica_group: aws.ec2.SecurityGroup) -> aws.ec2.LaunchTemplate:
        machines = spec.aws
        volume = {key: str(value).lower() if isinstance(value, bool) else value
                  for key, value in root_volume(spec.disk_size_gb).items()}
        return aws.ec2.LaunchTemplate(
            self._name,
            image_id=machines.ami_id or newest_dlami(parent=self),
            instance_type=machines.instance_types[0],
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=profile.arn),
            user_data=self.user_data.apply(compress_user_data),
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(**metadata_options()),
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name=ROOT_DEVICE, ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(**volume))],
            # Behind a public balancer the replicas keep a public address for their own outbound traffic at boot
            # (PyPI, Hugging Face; the default VPC has no NAT), while their group admits nothing from it. Internal:
            # no public address anywhere; the VPC must give the replicas a way out (NAT gateway).
            network_interfaces=[aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                device_index=0, security_groups=[replica_group.id], delete_on_termination="true",
                associate_public_ip_address="false" if spec.scaling.internal else "true")],
            tag_specifications=[aws.ec2.LaunchTemplateTagSpecificationArgs(
                resource_type=kind, tags={"Name": f"pixtral-{self._name}", "pixtral:model": spec.server.model})
                for kind in ("instance", "volume")],
            # Each change is a new version the group launches from; the instance refresh rolls it out.
            update_default_version=True,
            opts=pulumi.ResourceOptions.merge(self._child, looked_up_image_options(machines.ami_id, "imageId")),
        )

    def _target_group(self, vpc_id: pulumi.Input[str], spec: StackSpec) -> aws.lb.TargetGroup:
        return aws.lb.TargetGroup(
            self._name,
            port=spec.server.port,
            protocol="HTTP",
            target_type="instance",
            vpc_id=vpc_id,
            # SkyServe's least_load: a new request goes to the replica with the fewest in flight.
            load_balancing_algorithm_type="least_outstanding_requests",
            deregistration_delay=deregistration_delay_seconds(spec),
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                enabled=True, path=HEALTH_PATH, port="traffic-port", protocol="HTTP", matcher="200",
                interval=HEALTH_INTERVAL_SECONDS, timeout=5, healthy_threshold=HEALTHY_THRESHOLD,
                unhealthy_threshold=UNHEALTHY_THRESHOLD),
            opts=self._child,
        )

    def _group(self, spec: StackSpec, template: aws.ec2.LaunchTemplate, target_group: aws.lb.TargetGroup,
               subnet_ids: pulumi.Input[list[str]], boot: FleetBoot,
               opts: pulumi.ResourceOptions) -> aws.autoscaling.Group:
        scaling = spec.scaling
        grace = fleet_plan(spec).health_grace_seconds
        metrics = group_metrics(scaling.autoscale)
        return aws.autoscaling.Group(
            self._name,
            min_size=scaling.min_replicas,
            max_size=scaling.max_replicas,
            vpc_zone_identifiers=subnet_ids,
            target_group_arns=[target_group.arn],
            # The balancer's verdict, not EC2's: a replica whose vLLM does not answer /health is replaced.
            health_check_type="ELB",
            health_check_grace_period=grace,
            default_instance_warmup=grace,
            enabled_metrics=metrics or None,
            metrics_granularity="1Minute" if metrics else None,
            capacity_rebalance=scaling.spot,
            **self._capacity(spec, template),
            # New instances wait here until vLLM answers (complete-lifecycle.sh), at most the health grace.
            initial_lifecycle_hooks=[aws.autoscaling.GroupInitialLifecycleHookArgs(
                name=boot.lifecycle_hook, lifecycle_transition="autoscaling:EC2_INSTANCE_LAUNCHING",
                heartbeat_timeout=grace, default_result="CONTINUE")] if boot.lifecycle_hook else None,
            # A new launch template version rolls out new replicas first: none is taken out until its replacement
            # is healthy (min 100 %), and the balancer drains the old one.
            instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
                strategy="Rolling",
                preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
                    min_healthy_percentage=100, max_healthy_percentage=200, instance_warmup=str(grace),
                    skip_matching=True)),
            # `pulumi up` returns once the group exists; `pixtralctl wait` waits for a healthy target.
            wait_for_capacity_timeout="0",
            tags=[aws.autoscaling.GroupTagArgs(key="Name", value=f"pixtral-{self._name}", propagate_at_launch=True)],
            opts=opts,
        )

    def _capacity(self, spec: StackSpec, template: aws.ec2.LaunchTemplate) -> dict:
        """Spot / on-demand split over the candidate types; or, with a warm pool (which AWS allows only on a
        single-type on-demand group), the launch template and the pool."""
        scaling, types = spec.scaling, spec.aws.instance_types
        template_version = template.latest_version.apply(str)
        if scaling.warm_pool:
            return {
                "launch_template": aws.autoscaling.GroupLaunchTemplateArgs(id=template.id, version=template_version),
                # warmPool instances, stopped, always: the pool is refilled as the group scales out.
                "warm_pool": aws.autoscaling.GroupWarmPoolArgs(
                    pool_state="Stopped", min_size=scaling.warm_pool, max_group_prepared_capacity=scaling.warm_pool,
                    instance_reuse_policy=aws.autoscaling.GroupWarmPoolInstanceReusePolicyArgs(
                        reuse_on_scale_in=True)),
            }
        distribution = aws.autoscaling.GroupMixedInstancesPolicyInstancesDistributionArgs(
            on_demand_base_capacity=scaling.on_demand_base_replicas,
            on_demand_percentage_above_base_capacity=0 if scaling.spot else 100,
            # The candidates are in order of preference: on-demand takes the first that has capacity; spot takes
            # the pools least likely to be interrupted, preferring earlier candidates among equals.
            on_demand_allocation_strategy="prioritized",
            spot_allocation_strategy="capacity-optimized-prioritized",
        )
        return {"mixed_instances_policy": aws.autoscaling.GroupMixedInstancesPolicyArgs(
            instances_distribution=distribution,
            launch_template=aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateArgs(
                launch_template_specification=aws.autoscaling
                .GroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecificationArgs(
                    launch_template_id=template.id, version=template_version),
                overrides=[aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateOverrideArgs(instance_type=t)
                           for t in types]),
        )}

    def _role_extras(self, role: aws.iam.Role, boot: FleetBoot, group: aws.autoscaling.Group) -> None:
        """What a replica's role needs beyond its secrets: publishing metrics, releasing its lifecycle hold."""
        if boot.queue_metrics:
            aws.iam.RolePolicyAttachment(f"{self._name}-cloudwatch-agent", role=role.name,
                                         policy_arn="arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy",
                                         opts=self._child)
        if boot.lifecycle_hook:
            aws.iam.RolePolicy(
                f"{self._name}-lifecycle",
                role=role.id,
                policy=group.arn.apply(lambda arn: json.dumps({"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "autoscaling:CompleteLifecycleAction", "Resource": arn},
                    # Describe calls take no resource scope.
                    {"Effect": "Allow", "Action": "autoscaling:DescribeAutoScalingInstances", "Resource": "*"},
                ]})),
                opts=self._child,
            )

    def _scaling_policy(self, spec: StackSpec, group: aws.autoscaling.Group, balancer: aws.lb.LoadBalancer,
                        target_group: aws.lb.TargetGroup) -> aws.autoscaling.Policy:
        """Scale-out by target tracking on requests per replica (SkyServe's QPS target) or on vLLM's queue per
        replica; scale-in is `_scale_in`'s alarm, which honours downscaleDelaySeconds exactly.

        upscaleDelaySeconds is the tracking policy's estimated instance warm-up: after a scale-out, the group waits
        that long before a new replica's metrics count and before it scales out again for the same load. Tracking's
        own scale-in is off: it runs on an alarm AWS fixes (15 one-minute datapoints below target), and neither the
        group's nor any policy's cooldown applies to target tracking, so it could not follow the delay."""
        autoscale = spec.scaling.autoscale
        if autoscale.metric == "qps":
            tracking = aws.autoscaling.PolicyTargetTrackingConfigurationArgs(
                target_value=requests_per_target_per_minute(autoscale.target_qps_per_replica),
                disable_scale_in=True,
                predefined_metric_specification=aws.autoscaling
                .PolicyTargetTrackingConfigurationPredefinedMetricSpecificationArgs(
                    predefined_metric_type="ALBRequestCountPerTarget",
                    resource_label=pulumi.Output.concat(balancer.arn_suffix, "/", target_group.arn_suffix)))
        else:
            tracking = aws.autoscaling.PolicyTargetTrackingConfigurationArgs(
                target_value=autoscale.target_queue_per_replica,
                disable_scale_in=True,
                customized_metric_specification=aws.autoscaling
                .PolicyTargetTrackingConfigurationCustomizedMetricSpecificationArgs(
                    namespace=METRIC_NAMESPACE, metric_name=QUEUE_METRIC, statistic="Average",
                    metric_dimensions=[aws.autoscaling
                                       .PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricDimensionArgs(
                                           name=FLEET_DIMENSION, value=self._fleet_id)]))
        return aws.autoscaling.Policy(
            f"{self._name}-{autoscale.metric}",
            autoscaling_group_name=group.name,
            policy_type="TargetTrackingScaling",
            estimated_instance_warmup=autoscale.upscale_delay_seconds,
            target_tracking_configuration=tracking,
            opts=self._child,
        )

    def _scale_in(self, autoscale: Autoscale, group: aws.autoscaling.Group, balancer: aws.lb.LoadBalancer,
                  target_group: aws.lb.TargetGroup) -> aws.cloudwatch.MetricAlarm:
        """SkyServe's scale-in: once the load has wanted fewer replicas than are in service for every minute of
        downscaleDelaySeconds, remove one; the alarm stays in ALARM (and CloudWatch re-invokes an Auto Scaling
        action every minute it does) until the replicas in service are the ones the load needs, or the minimum."""
        step_down = aws.autoscaling.Policy(
            f"{self._name}-scale-in",
            autoscaling_group_name=group.name,
            policy_type="SimpleScaling",
            adjustment_type="ChangeInCapacity",
            scaling_adjustment=-1,
            cooldown=SCALE_IN_COOLDOWN_SECONDS,
            opts=self._child,
        )
        minutes = scale_in_evaluation_periods(autoscale.downscale_delay_seconds)
        # The fewest in service during the minute: a replica joining or leaving mid-minute is not counted as spare.
        in_service = _metric_query("in_service", "AWS/AutoScaling", "GroupInServiceInstances", "Minimum",
                                   {"AutoScalingGroupName": group.name})
        requests = _metric_query("requests", "AWS/ApplicationELB", "RequestCount", "Sum",
                                 {"LoadBalancer": balancer.arn_suffix, "TargetGroup": target_group.arn_suffix})
        if autoscale.metric == "qps":
            load = [requests]
        else:
            queue = _metric_query("queue", METRIC_NAMESPACE, QUEUE_METRIC, "Average", {FLEET_DIMENSION: self._fleet_id})
            # At zero the queue alone cannot tell an idle replica from one generating with nothing waiting.
            load = [queue, requests] if autoscale.scales_to_zero else [queue]
        expressions = scale_in_expressions(autoscale)
        return aws.cloudwatch.MetricAlarm(
            f"{self._name}-scale-in",
            alarm_description=(f"More replicas in service than the load has needed for {minutes} minute(s) "
                               f"(downscaleDelaySeconds {autoscale.downscale_delay_seconds}): remove one"),
            metric_queries=[in_service, *load, *[
                aws.cloudwatch.MetricAlarmMetricQueryArgs(id=id_, expression=expression, label=label,
                                                          return_data=id_ == "excess")
                for id_, label, expression in expressions]],
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=1,
            evaluation_periods=minutes,
            datapoints_to_alarm=minutes,
            # A minute without the expression (the group's metric not yet published) breaks the run: scale in only
            # on an unbroken window of evidence.
            treat_missing_data="notBreaching",
            alarm_actions=[step_down.arn],
            opts=self._child,
        )

    def _wake(self, group: aws.autoscaling.Group, balancer: aws.lb.LoadBalancer) -> aws.cloudwatch.MetricAlarm:
        """Scale from zero (docs/scaling.md): a minute in which the balancer refused requests for want of a target while
        the group wanted no replica sets the desired capacity to exactly 1, at once. A step policy, because step
        policies take no cooldown (a simple policy would wait out the scale-in's); exact capacity, because CloudWatch
        re-invokes the action every minute the alarm stays in ALARM and a second replica is the tracking policy's to
        add. The condition on a desired capacity of 0 keeps it from ever lowering a larger one (all replicas lost at
        once, their replacements still loading, also leave the balancer without targets)."""
        wake = aws.autoscaling.Policy(
            f"{self._name}-wake",
            autoscaling_group_name=group.name,
            policy_type="StepScaling",
            adjustment_type="ExactCapacity",
            step_adjustments=[aws.autoscaling.PolicyStepAdjustmentArgs(scaling_adjustment=1,
                                                                       metric_interval_lower_bound="0")],
            opts=self._child,
        )
        refused = _metric_query("refused", "AWS/ApplicationELB", REFUSED_METRIC, "Sum",
                                {"LoadBalancer": balancer.arn_suffix}, period=WAKE_PERIOD_SECONDS)
        # The most the group wanted during the minute: 0 only if it wanted none throughout.
        desired = _metric_query("desired", "AWS/AutoScaling", "GroupDesiredCapacity", "Maximum",
                                {"AutoScalingGroupName": group.name}, period=WAKE_PERIOD_SECONDS)
        return aws.cloudwatch.MetricAlarm(
            f"{self._name}-wake",
            alarm_description="Requests refused for want of a replica while the fleet is at zero: start one",
            metric_queries=[refused, desired, *[
                aws.cloudwatch.MetricAlarmMetricQueryArgs(id=id_, expression=expression, label=label,
                                                          return_data=True)
                for id_, label, expression in wake_expressions()]],
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=1,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            # No group datapoint: no evidence the fleet is at zero, so no action on it.
            treat_missing_data="notBreaching",
            alarm_actions=[wake.arn],
            opts=self._child,
        )


def group_metrics(autoscale: Autoscale | None) -> list[str]:
    """The one-minute group metrics the alarms read: replicas in service (scale-in), the desired capacity (wake)."""
    if autoscale is None:
        return []
    return ["GroupInServiceInstances"] + (["GroupDesiredCapacity"] if autoscale.scales_to_zero else [])


def wake_expressions() -> list[tuple[str, str, str]]:
    """(id, label, metric-math expression): 1 for a minute with refused requests while the group wanted no replica,
    else 0. ALB publishes HTTPCode_ELB_503_Count only for minutes that have some: a missing minute had none."""
    return [("wake", "Refused requests while at zero", "IF(desired == 0, IF(FILL(refused, 0) > 0, 1, 0), 0)")]


def scale_in_evaluation_periods(downscale_delay_seconds: int) -> int:
    """One-minute periods the load must want fewer replicas: the delay rounded up to whole minutes (SkyServe
    likewise counts the delay in its decision intervals), at least one."""
    return max(1, math.ceil(downscale_delay_seconds / SCALE_IN_PERIOD_SECONDS))


def scale_in_expressions(autoscale: Autoscale) -> list[tuple[str, str, str]]:
    """(id, label, metric-math expression) for "replicas in service minus the replicas the load needs", over the
    `in_service` and `requests` / `queue` queries. The need is SkyServe's ceil(load / target), raised to the
    group's minimum so that an idle fleet at its minimum is not an alarm."""
    if autoscale.metric == "qps":
        # ALB publishes RequestCount only for minutes with requests: a missing minute had none.
        per_replica = requests_per_target_per_minute(autoscale.target_qps_per_replica)
        needed = f"CEIL(FILL(requests, 0) / {per_replica:g})"
    else:
        # The fleet's waiting requests: the per-replica average (the statistic the tracking policy reads, whatever
        # the scrape rate) times the replicas in service. vLLM reports its gauge at 0 too, so a minute without it
        # had no replica serving.
        needed = f"CEIL(FILL(queue, 0) * in_service / {autoscale.target_queue_per_replica:g})"
    # The floor: the group's minimum; at zero with a queue target, one replica for a minute with any request (a
    # replica generating with nothing waiting reports an empty queue, and is not idle). ALB publishes RequestCount
    # only for minutes with requests.
    floor = "IF(FILL(requests, 0) > 0, 1, 0)" if autoscale.scales_to_zero and autoscale.metric == "queue" \
        else str(autoscale.min_replicas)
    return [("needed", "Replicas the load needs", needed),
            ("excess", "Replicas in service beyond the need", f"in_service - IF(needed < {floor}, {floor}, needed)")]


def _metric_query(id_: str, namespace: str, name: str, stat: str, dimensions: dict[str, pulumi.Input[str]],
                  period: int = SCALE_IN_PERIOD_SECONDS) -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
    return aws.cloudwatch.MetricAlarmMetricQueryArgs(
        id=id_, return_data=False,
        metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
            namespace=namespace, metric_name=name, stat=stat, period=period, dimensions=dimensions))


def _at_least_two(subnet_ids: list[str], instance_types: tuple[str, ...]) -> list[str]:
    # Known only once the cloud answers the lookups; a RunError is shown as this message alone (aws_shared does the
    # same for no subnet at all).
    if len(subnet_ids) < 2:
        raise pulumi.RunError(
            f"pixtral:vpcId: a fleet needs subnets in at least two zones that offer {', '.join(instance_types)} "
            f"(the load balancer spans two zones); found {len(subnet_ids)}: {', '.join(subnet_ids) or 'none'}. "
            "Expected a VPC with subnets in two such zones, or other candidate pixtral:instanceTypes")
    return subnet_ids
