"""pixtral-deploy: Pixtral-12B behind an OpenAI-compatible vLLM endpoint, on the target the stack names."""

import pulumi

from components.stack_ca import StackCa
from pixtral_deploy.coldstart import cold_start
from pixtral_deploy.config import StackConfig, read_stack
from pixtral_deploy.errors import ConfigError


def deploy_aws(stack: StackConfig, api_key: pulumi.Output[str], ca: StackCa | None) -> dict:
    from components.aws_vm import AwsGpuVm, AwsGpuVmArgs

    vm = AwsGpuVm("pixtral", AwsGpuVmArgs(stack.deployment, api_key=api_key, hf_token=stack.secrets.hf_token,
                                          ca=ca))
    return {"endpoint": vm.endpoint, "instanceId": vm.instance_id, "publicIp": vm.public_ip}


def deploy_gcp(stack: StackConfig, api_key: pulumi.Output[str], ca: StackCa | None) -> dict:
    from components.gcp_vm import GcpGpuVm, GcpGpuVmArgs

    vm = GcpGpuVm("pixtral", GcpGpuVmArgs(stack.deployment, project=stack.gcp.project, zone=stack.gcp.zone,
                                          api_key=api_key, hf_token=stack.secrets.hf_token, ca=ca))
    return {"endpoint": vm.endpoint, "instanceName": vm.instance_name, "zone": stack.gcp.zone,
            "publicIp": vm.public_ip}


def _workload(stack: StackConfig, api_key: pulumi.Output[str], ca: StackCa | None, cluster) -> dict:
    """The one Kubernetes workload, on whatever cluster the target provides."""
    from components.vllm_workload import VllmWorkload, VllmWorkloadArgs

    workload = VllmWorkload("pixtral", VllmWorkloadArgs(
        stack.deployment, api_key=api_key, hf_token=stack.secrets.hf_token, node_selector=cluster.node_selector,
        storage_class=cluster.storage_class, instance=pulumi.get_stack(), ca=ca),
        opts=pulumi.ResourceOptions(provider=cluster.provider))
    return {"endpoint": workload.endpoint, "namespace": workload.namespace, "service": workload.service_name}


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
    for warning in deployment.warnings:
        pulumi.log.warn(warning)
    api_key = ApiKey("pixtral", stack.secrets.api_key).value
    ca = StackCa("pixtral") if deployment.tls.enabled else None
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
