"""pixtral-deploy: Pixtral-12B behind an OpenAI-compatible vLLM endpoint, on the target the stack names."""

import pulumi

from pixtral_deploy.coldstart import cold_start
from pixtral_deploy.config import read_deployment, read_secrets, required_provider_setting
from pixtral_deploy.spec import ConfigError, Deployment


def deploy_aws(deployment: Deployment) -> dict:
    from components.aws_vm import AwsGpuVm, AwsGpuVmArgs

    secrets = read_secrets()
    vm = AwsGpuVm("pixtral", AwsGpuVmArgs(deployment, api_key=secrets.api_key, hf_token=secrets.hf_token))
    return {"endpoint": vm.endpoint, "apiKey": secrets.api_key, "instanceId": vm.instance_id,
            "publicIp": vm.public_ip}


def deploy_gcp(deployment: Deployment) -> dict:
    from components.gcp_vm import GcpGpuVm, GcpGpuVmArgs

    project = required_provider_setting("gcp", "project", "the GCP project to create the VM in")
    zone = required_provider_setting("gcp", "zone", "a zone with the GPU, e.g. us-central1-a for nvidia-l4")
    secrets = read_secrets()
    vm = GcpGpuVm("pixtral", GcpGpuVmArgs(deployment, project=project, zone=zone, api_key=secrets.api_key,
                                          hf_token=secrets.hf_token))
    return {"endpoint": vm.endpoint, "apiKey": secrets.api_key, "instanceName": vm.instance_name,
            "zone": zone, "publicIp": vm.public_ip}


def _workload(deployment: Deployment, provider, node_selector: dict, storage_class: str | None) -> dict:
    """The one Kubernetes workload, on whatever cluster the target provides."""
    import dataclasses

    from components.vllm_workload import VllmWorkload, VllmWorkloadArgs

    settings = deployment.kubernetes
    if storage_class and not settings.storage_class:
        deployment = dataclasses.replace(deployment, kubernetes=dataclasses.replace(settings,
                                                                                    storage_class=storage_class))
    secrets = read_secrets()
    workload = VllmWorkload("pixtral", VllmWorkloadArgs(deployment, api_key=secrets.api_key,
                                                        hf_token=secrets.hf_token, node_selector=node_selector,
                                                        instance=pulumi.get_stack()),
                            opts=pulumi.ResourceOptions(provider=provider))
    return {"endpoint": workload.endpoint, "apiKey": secrets.api_key, "namespace": workload.namespace,
            "service": workload.service_name}


def deploy_kubernetes(deployment: Deployment) -> dict:
    import pulumi_kubernetes as k8s

    config = pulumi.Config("pixtral")
    provider = k8s.Provider("cluster", kubeconfig=config.get_secret("kubeconfig"),
                            context=deployment.kubernetes.context)
    return _workload(deployment, provider, {}, None)


def deploy_eks(deployment: Deployment) -> dict:
    from components.eks_cluster import EksGpuCluster, EksGpuClusterArgs

    cluster = EksGpuCluster("pixtral", EksGpuClusterArgs(deployment))
    outputs = _workload(deployment, cluster.provider, cluster.node_selector, cluster.storage_class)
    return {**outputs, "clusterName": cluster.cluster_name}


def deploy_gke(deployment: Deployment) -> dict:
    from components.gke_cluster import GkeGpuCluster, GkeGpuClusterArgs

    project = required_provider_setting("gcp", "project", "the GCP project to create the cluster in")
    zone = required_provider_setting("gcp", "zone", "a zone with the GPU, e.g. us-central1-a for nvidia-l4")
    cluster = GkeGpuCluster("pixtral", GkeGpuClusterArgs(deployment, project=project, zone=zone))
    outputs = _workload(deployment, cluster.provider, cluster.node_selector, cluster.storage_class)
    return {**outputs, "clusterName": cluster.cluster_name}


TARGETS = {"aws": deploy_aws, "gcp": deploy_gcp, "kubernetes": deploy_kubernetes, "eks": deploy_eks,
           "gke": deploy_gke}


def main() -> None:
    try:
        deployment = read_deployment()
    except ConfigError as error:
        # RunError: the CLI shows the message alone, without a Python stack trace.
        raise pulumi.RunError(str(error)) from None
    pulumi.log.info(deployment.describe())
    if estimate := cold_start(deployment):
        pulumi.log.info(estimate.describe())
    for warning in deployment.warnings:
        pulumi.log.warn(warning)
    try:
        outputs = TARGETS[deployment.target](deployment)
    except ConfigError as error:
        raise pulumi.RunError(str(error)) from None
    pulumi.export("target", deployment.target)
    pulumi.export("model", deployment.server.served_model_name)
    pulumi.export("baseUrl", pulumi.Output.concat(outputs["endpoint"], "/v1"))
    for name, value in outputs.items():
        pulumi.export(name, value)


main()
