"""What `render`'s resources.md shows for each resource type: the settings a reviewer checks before `pulumi up`.

One line per resource type: the inputs that decide what it may reach, who may use it and what it costs (IAM
actions and resources, network rules, secret bindings, instance types, spot, disks, replicas). A path is
dotted; `*` takes every item of a list, `#keys` the key names of a map (never its values), and a string holding a
JSON document (an IAM policy, a kubeconfig) is read as that document. A path that starts with `!` says only that
the input is set: its value is a secret. A type that declares a new resource adds its line here;
tests/test_render.py fails, naming the type, for any declared type without a non-empty summary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Fields:
    """The inputs to show; `otherwise` is shown when none of them is declared (a provider with no settings)."""

    paths: tuple[str, ...]
    otherwise: str = ""


def fields(*paths: str, otherwise: str = "") -> Fields:
    return Fields(paths, otherwise)


_RULE = ("ipProtocol", "fromPort", "toPort", "cidrIpv4", "cidrIpv6", "referencedSecurityGroupId", "prefixListId")
_POD = "spec.template.spec"

SUMMARIES: dict[str, Fields] = {
    # The stack CA and the server certificates (pulumi-tls, made locally; keys are secrets)
    "tls:index/privateKey:PrivateKey": fields("algorithm", "ecdsaCurve"),
    "tls:index/selfSignedCert:SelfSignedCert": fields("subject", "isCaCertificate", "allowedUses",
                                                      "validityPeriodHours", "earlyRenewalHours", "!privateKeyPem"),
    "tls:index/certRequest:CertRequest": fields("ipAddresses", "dnsNames", "subject", "!privateKeyPem"),
    "tls:index/locallySignedCert:LocallySignedCert": fields("allowedUses", "validityPeriodHours",
                                                            "earlyRenewalHours", "!caPrivateKeyPem"),
    # AWS
    "aws:ec2/instance:Instance": fields("instanceType", "ami", "subnetId", "iamInstanceProfile", "metadataOptions",
                                        "rootBlockDevice", "instanceMarketOptions", "associatePublicIpAddress"),
    "aws:ec2/eip:Eip": fields("domain", "instance"),
    "aws:ec2/eipAssociation:EipAssociation": fields("allocationId", "instanceId"),
    "aws:route53/record:Record": fields("zoneId", "name", "type", "records", "aliases"),
    "aws:ec2/securityGroup:SecurityGroup": fields("vpcId", "description"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": fields(*_RULE),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": fields(*_RULE),
    "aws:iam/role:Role": fields("assumeRolePolicy.Statement", "managedPolicyArns"),
    "aws:iam/rolePolicy:RolePolicy": fields("role", "policy.Statement"),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": fields("role", "policyArn"),
    "aws:iam/instanceProfile:InstanceProfile": fields("role"),
    "aws:ssm/parameter:Parameter": fields("name", "type", "keyId", "!value"),
    "aws:ec2/launchTemplate:LaunchTemplate": fields("instanceType", "imageId", "iamInstanceProfile", "metadataOptions",
                                                    "blockDeviceMappings", "networkInterfaces"),
    "aws:autoscaling/group:Group": fields("minSize", "maxSize", "vpcZoneIdentifiers", "healthCheckType",
                                          "healthCheckGracePeriod", "capacityRebalance",
                                          "mixedInstancesPolicy.instancesDistribution",
                                          "mixedInstancesPolicy.launchTemplate.overrides", "warmPool",
                                          "initialLifecycleHooks", "instanceRefresh"),
    "aws:autoscaling/policy:Policy": fields("policyType", "estimatedInstanceWarmup", "targetTrackingConfiguration",
                                           "adjustmentType", "scalingAdjustment", "cooldown"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": fields("metricQueries.*.expression", "evaluationPeriods",
                                                     "datapointsToAlarm", "threshold", "alarmActions"),
    "aws:lb/loadBalancer:LoadBalancer": fields("loadBalancerType", "internal", "subnets", "securityGroups",
                                               "idleTimeout", "dropInvalidHeaderFields"),
    "aws:lb/targetGroup:TargetGroup": fields("port", "protocol", "loadBalancingAlgorithmType", "deregistrationDelay",
                                             "healthCheck"),
    "aws:lb/listener:Listener": fields("port", "protocol", "sslPolicy", "certificateArn", "defaultActions"),
    # The balancer's certificate: public and DNS-validated (domainName), or the stack CA's imported (a secret key)
    "aws:acm/certificate:Certificate": fields("domainName", "validationMethod", "certificateChain",
                                              "!privateKey"),
    "aws:acm/certificateValidation:CertificateValidation": fields("certificateArn", "validationRecordFqdns"),
    "aws:eks/cluster:Cluster": fields("version", "vpcConfig", "accessConfig", "enabledClusterLogTypes",
                                      "encryptionConfig"),
    "aws:eks/nodeGroup:NodeGroup": fields("instanceTypes", "amiType", "capacityType", "scalingConfig", "diskSize",
                                          "taints", "labels"),
    "aws:kms/key:Key": fields("description", "enableKeyRotation", "deletionWindowInDays", "policy.Statement"),
    "aws:eks/addon:Addon": fields("addonName", "addonVersion", "serviceAccountRoleArn"),
    # The artefact store (pixtral:warmStarts)
    "aws:s3/bucket:Bucket": fields("bucket", "forceDestroy", "objectLockEnabled"),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": fields("blockPublicAcls", "blockPublicPolicy",
                                                                     "ignorePublicAcls", "restrictPublicBuckets"),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": fields("rule.objectOwnership"),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": fields(
        "rules.*.applyServerSideEncryptionByDefault"),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": fields("rules"),
    "aws:s3/bucketPolicy:BucketPolicy": fields("policy.Statement"),
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": fields("namespace", "serviceAccount", "roleArn"),
    # GCP
    "gcp:compute/instance:Instance": fields("machineType", "zone", "guestAccelerators", "scheduling",
                                            "bootDisk.initializeParams", "serviceAccount",
                                            "networkInterfaces.*.accessConfigs", "tags", "shieldedInstanceConfig"),
    "gcp:compute/address:Address": fields("region", "addressType", "networkTier", "purpose", "subnetwork"),
    "gcp:dns/recordSet:RecordSet": fields("managedZone", "name", "type", "rrdatas"),
    "gcp:compute/network:Network": fields("autoCreateSubnetworks"),
    "gcp:compute/subnetwork:Subnetwork": fields("region", "ipCidrRange", "purpose", "role", "network",
                                                "privateIpGoogleAccess", "logConfig"),
    "gcp:compute/firewall:Firewall": fields("direction", "allows", "sourceRanges", "targetTags", "network"),
    "gcp:secretmanager/secret:Secret": fields("secretId", "replication"),
    "gcp:secretmanager/secretVersion:SecretVersion": fields("!secretData"),
    "gcp:secretmanager/secretIamMember:SecretIamMember": fields("secretId", "role", "member"),
    "gcp:serviceaccount/account:Account": fields("accountId", "displayName"),
    "gcp:serviceaccount/iAMMember:IAMMember": fields("serviceAccountId", "role", "member"),
    "gcp:projects/iAMMember:IAMMember": fields("project", "role", "member"),
    "gcp:projects/service:Service": fields("service", "disableOnDestroy"),
    "gcp:storage/bucket:Bucket": fields("location", "storageClass", "forceDestroy", "uniformBucketLevelAccess",
                                        "publicAccessPrevention", "softDeletePolicy", "lifecycleRules",
                                        "encryption"),
    "gcp:storage/bucketIAMMember:BucketIAMMember": fields("bucket", "role", "member", "condition.expression"),
    "gcp:container/cluster:Cluster": fields("location", "minMasterVersion", "releaseChannel",
                                            "workloadIdentityConfig", "privateClusterConfig",
                                            "masterAuthorizedNetworksConfig", "deletionProtection"),
    "gcp:container/nodePool:NodePool": fields("nodeCount", "autoscaling", "nodeConfig.machineType",
                                              "nodeConfig.guestAccelerators", "nodeConfig.spot", "nodeConfig.taints",
                                              "nodeConfig.diskSizeGb", "nodeConfig.diskType",
                                              "nodeConfig.workloadMetadataConfig", "nodeConfig.oauthScopes",
                                              "nodeConfig.serviceAccount"),
    # GCP fleet
    "gcp:compute/instanceTemplate:InstanceTemplate": fields(
        "machineType", "guestAccelerators", "scheduling", "disks.*.diskType", "disks.*.diskSizeGb", "serviceAccount",
        "networkInterfaces.*.accessConfigs", "tags", "labels.capacity"),
    "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager": fields(
        "region", "targetSize", "distributionPolicyZones", "distributionPolicyTargetShape", "autoHealingPolicies",
        "updatePolicy", "instanceFlexibilityPolicy", "namedPorts"),
    "gcp:compute/regionAutoscaler:RegionAutoscaler": fields("autoscalingPolicy"),
    "gcp:compute/healthCheck:HealthCheck": fields("httpHealthCheck", "checkIntervalSec", "unhealthyThreshold"),
    "gcp:compute/regionHealthCheck:RegionHealthCheck": fields("region", "httpHealthCheck", "checkIntervalSec",
                                                              "unhealthyThreshold"),
    "gcp:compute/backendService:BackendService": fields(
        "loadBalancingScheme", "localityLbPolicy", "timeoutSec", "connectionDrainingTimeoutSec",
        "backends.*.balancingMode", "backends.*.maxRatePerInstance", "securityPolicy"),
    "gcp:compute/regionBackendService:RegionBackendService": fields(
        "region", "loadBalancingScheme", "localityLbPolicy", "timeoutSec", "connectionDrainingTimeoutSec",
        "backends.*.balancingMode", "backends.*.maxRatePerInstance", "securityPolicy"),
    "gcp:compute/securityPolicy:SecurityPolicy": fields("type", "rules"),
    "gcp:compute/regionSecurityPolicy:RegionSecurityPolicy": fields("region", "type", "rules"),
    "gcp:compute/globalAddress:GlobalAddress": fields("addressType", "ipVersion"),
    "gcp:compute/globalForwardingRule:GlobalForwardingRule": fields("loadBalancingScheme", "ipProtocol", "portRange"),
    "gcp:compute/forwardingRule:ForwardingRule": fields("region", "loadBalancingScheme", "ipProtocol", "portRange",
                                                        "network", "subnetwork"),
    "gcp:compute/targetHttpProxy:TargetHttpProxy": fields("urlMap"),
    "gcp:compute/regionTargetHttpProxy:RegionTargetHttpProxy": fields("region", "urlMap"),
    "gcp:compute/targetHttpsProxy:TargetHttpsProxy": fields("urlMap", "sslCertificates", "sslPolicy"),
    "gcp:compute/regionTargetHttpsProxy:RegionTargetHttpsProxy": fields("region", "urlMap", "sslCertificates",
                                                                        "sslPolicy"),
    "gcp:compute/sSLPolicy:SSLPolicy": fields("profile", "minTlsVersion"),
    "gcp:compute/regionSslPolicy:RegionSslPolicy": fields("region", "profile", "minTlsVersion"),
    # The load balancer's certificate: the stack CA's (its key a secret input), or Google-managed for the domain.
    "gcp:compute/sSLCertificate:SSLCertificate": fields("!privateKey"),
    "gcp:compute/regionSslCertificate:RegionSslCertificate": fields("region", "!privateKey"),
    "gcp:compute/managedSslCertificate:ManagedSslCertificate": fields("managed.domains", "type"),
    "gcp:compute/uRLMap:URLMap": fields("defaultService"),
    "gcp:compute/regionUrlMap:RegionUrlMap": fields("region", "defaultService"),
    # Kubernetes
    "pulumi:providers:kubernetes": fields("kubeconfig.users.*.user.exec.command", "context", "namespace",
                                          otherwise="kubeconfig=the ambient one (KUBECONFIG or ~/.kube/config), "
                                                    "its current context"),
    "kubernetes:core/v1:Namespace": fields("metadata.name"),
    "kubernetes:core/v1:Secret": fields("type", "stringData.#keys", "data.#keys"),
    "kubernetes:core/v1:ConfigMap": fields("data.#keys"),
    # The pods' identity in the cloud (GKE Workload Identity's annotation) and whether its token is mounted.
    "kubernetes:core/v1:ServiceAccount": fields("metadata.name", "metadata.annotations",
                                                "automountServiceAccountToken"),
    "kubernetes:core/v1:PersistentVolumeClaim": fields("spec.accessModes", "spec.storageClassName",
                                                       "spec.resources.requests"),
    "kubernetes:core/v1:Service": fields("spec.type", "spec.ports", "spec.loadBalancerSourceRanges",
                                         "spec.externalTrafficPolicy", "metadata.annotations"),
    "kubernetes:apps/v1:Deployment": fields("spec.replicas", "spec.strategy", f"{_POD}.containers.*.image",
                                            f"{_POD}.containers.*.resources", f"{_POD}.containers.*.securityContext",
                                            f"{_POD}.securityContext", f"{_POD}.nodeSelector",
                                            f"{_POD}.affinity", f"{_POD}.tolerations", f"{_POD}.serviceAccountName",
                                            f"{_POD}.automountServiceAccountToken", f"{_POD}.initContainers.*.image",
                                            f"{_POD}.initContainers.*.securityContext"),
    "kubernetes:apps/v1:StatefulSet": fields("spec.replicas", "spec.updateStrategy", "spec.podManagementPolicy",
                                             "spec.persistentVolumeClaimRetentionPolicy",
                                             "spec.volumeClaimTemplates.*.spec", f"{_POD}.containers.*.image",
                                             f"{_POD}.containers.*.resources",
                                             f"{_POD}.containers.*.securityContext", f"{_POD}.securityContext",
                                             f"{_POD}.nodeSelector", f"{_POD}.affinity", f"{_POD}.tolerations",
                                             f"{_POD}.topologySpreadConstraints",
                                             f"{_POD}.terminationGracePeriodSeconds", f"{_POD}.serviceAccountName",
                                             f"{_POD}.automountServiceAccountToken",
                                             f"{_POD}.initContainers.*.image",
                                             f"{_POD}.initContainers.*.securityContext"),
    "kubernetes:policy/v1:PodDisruptionBudget": fields("spec.maxUnavailable", "spec.minAvailable", "spec.selector"),
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": fields("spec.scaleTargetRef", "spec.minReplicas",
                                                                "spec.maxReplicas", "spec.metrics", "spec.behavior"),
    "kubernetes:keda.sh/v1alpha1:ScaledObject": fields("spec.scaleTargetRef", "spec.minReplicaCount",
                                                       "spec.maxReplicaCount", "spec.cooldownPeriod", "spec.triggers",
                                                       "spec.advanced.horizontalPodAutoscalerConfig.behavior"),
    "kubernetes:http.keda.sh/v1beta1:InterceptorRoute": fields("spec.target", "spec.rules", "spec.scalingMetric",
                                                               "spec.timeouts"),
    "kubernetes:keda.sh/v1alpha1:TriggerAuthentication": fields("spec.podIdentity", "spec.secretTargetRef"),
    "kubernetes:monitoring.googleapis.com/v1:PodMonitoring": fields("spec.selector", "spec.endpoints"),
    "kubernetes:rbac.authorization.k8s.io/v1:Role": fields("rules"),
    "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding": fields("roleRef", "subjects"),
    "kubernetes:helm.sh/v3:Release": fields("chart", "version", "repositoryOpts.repo", "namespace", "values"),
    "kubernetes:networking.k8s.io/v1:NetworkPolicy": fields("spec.podSelector", "spec.policyTypes", "spec.ingress",
                                                             "spec.egress"),
    "kubernetes:storage.k8s.io/v1:StorageClass": fields("provisioner", "parameters", "volumeBindingMode",
                                                         "reclaimPolicy", "allowVolumeExpansion"),
    # Other providers
    "random:index/randomPassword:RandomPassword": fields("length", "special", "minLower", "minUpper",
                                                         "minNumeric"),
}

# This project's own component resources (`pixtral:<area>:<Name>`) declare nothing themselves.
COMPONENT_PREFIX = "pixtral:"
COMPONENT_SUMMARY = "component: groups the resources it declares; no settings of its own"
SECRET_SHOWN_AS = "(secret, not shown)"
_MISSING = object()


def _select(value: Any, path: list[str]) -> Any:
    """The value at `path`, or _MISSING when the input does not declare it."""
    if not path:
        return value
    if isinstance(value, str) and value.lstrip().startswith(("{", "[")):
        try:
            value = json.loads(value)
        except ValueError:
            return _MISSING
    head, rest = path[0], path[1:]
    if head == "*":
        if not isinstance(value, list):
            return _MISSING
        items = [_select(item, rest) for item in value]
        items = [item for item in items if item is not _MISSING]
        return items or _MISSING
    if head == "#keys":
        return sorted(value) if isinstance(value, dict) and value else _MISSING
    if not isinstance(value, dict) or head not in value or value[head] is None:
        return _MISSING
    return _select(value[head], rest)


def key_settings(resource_type: str, inputs: dict[str, Any]) -> list[tuple[str, Any]]:
    """(label, value) of each declared setting that SUMMARIES names for this type; empty for an unknown type."""
    summary = SUMMARIES.get(resource_type)
    if summary is None:
        return [("", COMPONENT_SUMMARY)] if resource_type.startswith(COMPONENT_PREFIX) else []
    settings = []
    for path in summary.paths:
        secret = path.startswith("!")
        value = _select(inputs, path.lstrip("!").split("."))
        if value is not _MISSING:
            settings.append((path.lstrip("!").replace(".*", "").replace(".#keys", " keys"),
                             SECRET_SHOWN_AS if secret else value))
    if not settings and summary.otherwise:
        settings.append(("", summary.otherwise))
    return settings
