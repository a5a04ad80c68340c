"""pixtral-deploy: Pixtral-12B behind an OpenAI-compatible vLLM endpoint, on the target the stack names."""

import pulumi

from components.stack_ca import StackCa
from pixtral_deploy.coldstart import cold_start, warm_start
from pixtral_deploy.config import StackConfig, read_stack
from pixtral_deploy.errors import ConfigError


def deploy_aws(stack: StackConfig, api_key: pulumi.Output[str], ca: StackCa | None) -> dict:
    if stack.deployment.scaling.is_fleet:
        from components.aws_fleet import AwsGpuFleet, AwsGpuFleetArgs

        fleet = AwsGpuFleet("pixtral", AwsGpuFleetArgs(stack.deployment, api_key=api_key,
                                                       hf_token=stack.secrets.hf_token, ca=ca))
        return {"endpoint": fleet.endpoint, "autoScalingGroup": fleet.auto_scaling_group,
                "targetGroup": fleet.target_group, "region": aws_region()}
    from components.aws_vm import AwsGpuVm, AwsGpuVmArgs

    vm = AwsGpuVm("pixtral", AwsGpuVmArgs(stack.deployment, api_key=api_key, hf_token=stack.secrets.hf_token,
                                          ca=ca))
    return {"endpoint": vm.endpoint, "instanceId": vm.instance_id, "publicIp": vm.public_ip}


def aws_region() -> pulumi.Output[str]:
    """The region the stack deploys to (for `pixtralctl status`, which asks the AWS CLI about the group)."""
    import pulumi_aws as aws

    return aws.get_region_output().region


def deploy_gcp(stack: StackConfig, api_key: pulumi.Output[str], ca: StackCa | None) -> dict:
    if stack.deployment.scaling.is_fleet:
        return deploy_gcp_fleet(stack, api_key, ca)
    from components.gcp_vm import GcpGpuVm, GcpGpuVmArgs

    vm = GcpGpuVm("pixtral", GcpGpuVmArgs(stack.deployment, project=stack.gcp.project, zone=stack.gcp.zone,
                                          api_key=api_key, hf_token=stack.secrets.hf_token, ca=ca))
    return {"endpoint": vm.endpoint, "instanceName": vm.instance_name, "zone": stack.gcp.zone,
            "publicIp": vm.public_ip}


def deploy_gcp_fleet(stack: StackConfig, api_key: pulumi.Output[str], ca: StackCa | None) -> dict:
    from components.gcp_fleet import GcpGpuFleet, GcpGpuFleetArgs

    fleet = GcpGpuFleet("pixtral", GcpGpuFleetArgs(stack.deployment, project=stack.gcp.project, zone=stack.gcp.zone,
                                                   api_key=api_key, hf_token=stack.secrets.hf_token, ca=ca))
    return {"endpoint": fleet.endpoint, "address": fleet.address, "project": stack.gcp.project,
            "region": fleet.region, "zones": list(fleet.zones), "instanceGroups": fleet.group_names,
            "backendService": fleet.backend_service_name, "internal": stack.deployment.scaling.internal}


def _workload(stack: StackConfig, api_key: pulumi.Output[str], ca: StackCa | None, cluster) -> dict:
    """The one Kubernetes workload, on whatever cluster the target provides, what scales it, and on a cluster the
    program created (eks, gke) pixtral:domain's record, which that cluster's cloud keeps."""
    from components.vllm_workload import VllmWorkload, VllmWorkloadArgs

    deployment = stack.deployment
    on_cluster = pulumi.ResourceOptions(provider=cluster.provider)
    workload = VllmWorkload("pixtral", VllmWorkloadArgs(
        deployment, api_key=api_key, hf_token=stack.secrets.hf_token, node_selector=cluster.node_selector,
        storage_class=cluster.storage_class, instance=pulumi.get_stack(), ca=ca), opts=on_cluster)
    if deployment.scaling.autoscale:
        _autoscaler(stack, workload, on_cluster)
    if deployment.tls.domain:
        cluster.endpoint_record(deployment.tls.domain, deployment.tls.dns_zone, workload.address)
    return {"endpoint": workload.endpoint, "namespace": workload.namespace, "service": workload.service_name,
            "podSelector": ",".join(f"{k}={v}" for k, v in workload.selector.items())}


def _autoscaler(stack: StackConfig, workload, on_cluster: pulumi.ResourceOptions) -> None:
    """KEDA or an HPA on vLLM's metrics; on GKE, with the managed Prometheus and KEDA the program sets up."""
    from components.pod_autoscaler import PodAutoscaler, PodAutoscalerArgs

    deployment = stack.deployment
    prometheus_url, authentication, ready = deployment.kubernetes.prometheus_url, None, []
    if deployment.target == "gke":
        from components.gke_managed_metrics import GkeManagedMetrics, GkeManagedMetricsArgs

        metrics = GkeManagedMetrics("pixtral-metrics", GkeManagedMetricsArgs(
            project=stack.gcp.project, namespace=workload.namespace, secret_name=workload.secret_name,
            selector=workload.selector, labels=workload.selector, instance=pulumi.get_stack()), opts=on_cluster)
        prometheus_url, authentication, ready = metrics.prometheus_url, metrics.trigger_authentication, metrics.ready
    PodAutoscaler("pixtral", PodAutoscalerArgs(
        deployment, namespace=workload.namespace, workload_kind=workload.workload_kind,
        workload_name=workload.workload_name, labels=workload.selector, prometheus_url=prometheus_url,
        trigger_authentication=authentication,
        prometheus_credentials=stack.secrets.prometheus_basic_auth or stack.secrets.prometheus_bearer_token),
        opts=pulumi.ResourceOptions.merge(
            on_cluster, pulumi.ResourceOptions(depends_on=ready)))


def deploy_kubernetes(stack: StackConfig, api_key: pulumi.Output[str], ca: StackCa | None) -> dict:
    from components.existing_cluster import ExistingCluster

    cluster = ExistingCluster("cluster", stack.secrets.kubeconfig, stack.deployment.kubernetes.context)
    return _workload(stack, api_key, ca, cluster)


def deploy_eks(stack: StackConfig, api_key: pulumi.Output[str], ca: StackCa | None) -> dict:
    from components.eks_cluster import EksGpuCluster, EksGpuClusterArgs

    cluster = EksGpuCluster("pixtral", EksGpuClusterArgs(stack.deployment))
    return {**_workload(stack, api_key, ca, cluster), "clusterName": cluster.cluster_name}


def deploy_gke(stack: StackConfig, api_key: pulumi.Output[str], ca: StackCa | None) -> dict:
    from components.gke_cluster import GkeGpuCluster, GkeGpuClusterArgs

    cluster = GkeGpuCluster("pixtral", GkeGpuClusterArgs(stack.deployment, project=stack.gcp.project,
                                                         zone=stack.gcp.zone))
    return {**_workload(stack, api_key, ca, cluster), "clusterName": cluster.cluster_name}


TARGETS = {"aws": deploy_aws, "gcp": deploy_gcp, "kubernetes": deploy_kubernetes, "eks": deploy_eks,
           "gke": deploy_gke}


def deploy() -> None:
    from components.api_key import ApiKey

    stack = read_stack()
    deployment = stack.deployment
    pulumi.log.info(deployment.describe())
    if estimate := cold_start(deployment):
        pulumi.log.info(estimate.describe())
    if warm := warm_start(deployment):
        pulumi.log.info(f"warm pool: a stopped {warm.machine} resumes to its first answer in about {warm.total:.0f} "
                        f"s (boot {warm.boot:.0f} s, load {warm.load:.0f} s, warm-up {warm.warmup:.0f} s)")
    for warning in deployment.warnings:
        pulumi.log.warn(warning)
    api_key = ApiKey("pixtral", stack.secrets.api_key).value
    ca = StackCa("pixtral") if deployment.stack_ca_needed else None
    outputs = TARGETS[deployment.target](stack, api_key, ca)
    pulumi.export("target", deployment.target)
    pulumi.export("model", deployment.server.served_model_name)
    pulumi.export("baseUrl", pulumi.Output.concat(outputs["endpoint"], "/v1"))
    pulumi.export("apiKey", api_key)
    if ca is not None:
        # Public: what clients trust to verify the endpoint (curl --cacert, httpx verify=, pixtralctl).
        pulumi.export("caCertificate", ca.cert_pem)
    for name, value in outputs.items():
        pulumi.export(name, value)


def main() -> None:
    try:
        deploy()
    except ConfigError as error:
        # RunError: the CLI shows the message alone, without a Python stack trace.
        raise pulumi.RunError(str(error)) from None


main()
