"""What a created EKS / GKE cluster guarantees: NetworkPolicy enforced, nodes with least privilege and no path from
a pod to the node's credentials, the API endpoint reachable from pixtral:clusterApiCidrs only."""

from __future__ import annotations

import json

import pytest
from conftest import resources_of, run_stack

from components.eks_cluster import CONTROL_PLANE_LOGS
from components.gke_cluster import NODE_ROLES
from pixtral_deploy.spec import ConfigError, load_spec

NARROW = {"pixtral:clusterApiCidrs": '["198.51.100.0/24", "203.0.113.7/32"]'}
OPEN_API_WARNING = "cluster's API endpoint is open to the whole Internet"


def _one(run: dict, type_: str) -> dict:
    (resource,) = resources_of(run, type_)
    return resource


def test_gke_enforces_network_policy_with_dataplane_v2():
    cluster = _one(run_stack("gke"), "gcp:container/cluster:Cluster")["inputs"]
    assert cluster["datapathProvider"] == "ADVANCED_DATAPATH", "without Dataplane V2 a NetworkPolicy is not enforced"
    assert cluster["networkPolicy"] == {"enabled": False}, "Dataplane V2 refuses the Calico add-on next to it"


def test_gke_nodes_run_as_a_dedicated_service_account_with_the_minimal_node_role():
    run = run_stack("gke")
    # The nodes' account; the pods' own (the artefact store's, tests/test_pod_artefacts.py) is not the nodes'.
    (account,) = [a for a in resources_of(run, "gcp:serviceaccount/account:Account") if a["name"] == "pixtral-nodes"]
    email = account["outputs"]["email"]
    pools = [p["inputs"]["nodeConfig"] for p in resources_of(run, "gcp:container/nodePool:NodePool")]
    default_pool = _one(run, "gcp:container/cluster:Cluster")["inputs"]["nodeConfig"]
    for node_config in [*pools, default_pool]:
        assert node_config.get("serviceAccount") == email, "nodes would run as the Compute Engine default account"
        assert node_config["shieldedInstanceConfig"] == {"enableSecureBoot": True, "enableIntegrityMonitoring": True}
    members = resources_of(run, "gcp:projects/iAMMember:IAMMember")
    grants = {(m["inputs"]["role"], m["inputs"]["member"]) for m in members}
    assert grants == {(role, f"serviceAccount:{email}") for role in NODE_ROLES}
    assert NODE_ROLES == ("roles/container.defaultNodeServiceAccount",)


def test_gke_node_pools_on_an_existing_cluster_use_the_dedicated_account_too():
    run = run_stack("gke", {"pixtral:clusterName": "theirs"})
    (account,) = [a for a in resources_of(run, "gcp:serviceaccount/account:Account") if a["name"] == "pixtral-nodes"]
    email = account["outputs"]["email"]
    assert [p["inputs"]["nodeConfig"]["serviceAccount"]
            for p in resources_of(run, "gcp:container/nodePool:NodePool")] == [email]


def test_eks_enforces_network_policy_through_the_vpc_cni():
    addons = {a["inputs"]["addonName"]: a["inputs"] for a in resources_of(run_stack("eks"), "aws:eks/addon:Addon")}
    assert json.loads(addons["vpc-cni"]["configurationValues"]) == {"enableNetworkPolicy": "true"}
    # EKS installs the CNI itself at creation: the add-on must take it over, or its creation fails.
    assert addons["vpc-cni"]["resolveConflictsOnCreate"] == "OVERWRITE"


@pytest.mark.parametrize("settings", [{}, {"pixtral:clusterName": "theirs"}], ids=["created", "existing"])
def test_eks_nodes_require_imdsv2_with_a_hop_limit_that_keeps_pods_off_the_node_role(settings):
    run = run_stack("eks", settings)
    templates = {f"{t['name']}-id": t["inputs"] for t in resources_of(run, "aws:ec2/launchTemplate:LaunchTemplate")}
    groups = resources_of(run, "aws:eks/nodeGroup:NodeGroup")
    assert groups
    for group in groups:
        template = templates[group["inputs"]["launchTemplate"]["id"]]
        assert template["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required",
                                               "httpPutResponseHopLimit": 1}, group["name"]
        assert group["inputs"]["launchTemplate"]["version"] == "1", "a node group follows its template's changes"


def test_eks_gpu_node_disk_keeps_its_size_in_the_launch_template():
    run = run_stack("eks", {"pixtral:diskSizeGb": "300"})
    (gpu,) = [g for g in resources_of(run, "aws:eks/nodeGroup:NodeGroup") if g["name"].endswith("-gpu")]
    assert "diskSize" not in gpu["inputs"], "EKS refuses diskSize next to a launch template"
    (template,) = [t for t in resources_of(run, "aws:ec2/launchTemplate:LaunchTemplate")
                   if f"{t['name']}-id" == gpu["inputs"]["launchTemplate"]["id"]]
    (volume,) = template["inputs"]["blockDeviceMappings"]
    assert volume["deviceName"] == "/dev/xvdb", "Bottlerocket keeps containers and images on its data volume"
    assert volume["ebs"]["volumeSize"] == 300 and volume["ebs"]["encrypted"] == "true"


def test_eks_storage_driver_gets_credentials_from_pod_identity_not_from_the_node():
    run = run_stack("eks")
    roles = {r["name"]: r for r in resources_of(run, "aws:iam/role:Role")}
    attached = {(a["inputs"]["role"], a["inputs"]["policyArn"].rsplit("/", 1)[1])
                for a in resources_of(run, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
    node_role = roles["pixtral-node-role"]["outputs"]["name"]
    assert (node_role, "AmazonEBSCSIDriverPolicy") not in attached, "every pod on a node would hold volume rights"
    csi_role = roles["pixtral-ebs-csi-role"]
    assert (csi_role["outputs"]["name"], "AmazonEBSCSIDriverPolicy") in attached
    trust = json.loads(csi_role["inputs"]["assumeRolePolicy"])["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "pods.eks.amazonaws.com"}]
    addons = {a["inputs"]["addonName"]: a["inputs"] for a in resources_of(run, "aws:eks/addon:Addon")}
    assert "eks-pod-identity-agent" in addons
    assert addons["aws-ebs-csi-driver"]["podIdentityAssociations"] == [
        {"roleArn": csi_role["outputs"]["arn"], "serviceAccount": "ebs-csi-controller-sa"}]


def test_eks_logs_the_control_plane_and_encrypts_secrets_with_its_own_key():
    run = run_stack("eks")
    cluster = _one(run, "aws:eks/cluster:Cluster")["inputs"]
    assert sorted(cluster["enabledClusterLogTypes"]) == sorted(CONTROL_PLANE_LOGS)
    assert set(CONTROL_PLANE_LOGS) == {"api", "audit", "authenticator", "controllerManager", "scheduler"}
    key = _one(run, "aws:kms/key:Key")
    assert cluster["encryptionConfig"] == {"resources": ["secrets"], "provider": {"keyArn": key["outputs"]["arn"]}}
    assert key["inputs"]["enableKeyRotation"] is True


@pytest.mark.parametrize("stack", ["eks", "gke"])
def test_cluster_api_is_reachable_from_cluster_api_cidrs_only(stack):
    run = run_stack(stack, NARROW)
    assert _api_cidrs(run) == ["198.51.100.0/24", "203.0.113.7/32"]
    assert not [line for line in run["log"] if OPEN_API_WARNING in line]


@pytest.mark.parametrize("stack", ["eks", "gke"])
def test_cluster_api_cidrs_default_to_the_ipv4_allowed_cidrs(stack):
    run = run_stack(stack, {"pixtral:allowedCidrs": '["192.0.2.0/24", "2001:db8::/32"]'})
    assert _api_cidrs(run) == ["192.0.2.0/24"]
    assert not [line for line in run["log"] if OPEN_API_WARNING in line]


@pytest.mark.parametrize("stack", ["eks", "gke"])
def test_an_api_open_to_the_whole_internet_is_warned_about(stack):
    run = run_stack(stack)
    assert _api_cidrs(run) == ["0.0.0.0/0"]
    assert [line for line in run["log"] if line.startswith("warning:") and OPEN_API_WARNING in line
            and "pixtral:clusterApiCidrs" in line]


def _api_cidrs(run: dict) -> list[str]:
    if resources_of(run, "aws:eks/cluster:Cluster"):
        vpc = _one(run, "aws:eks/cluster:Cluster")["inputs"]["vpcConfig"]
        assert vpc["endpointPublicAccess"] is True and vpc["endpointPrivateAccess"] is True
        return vpc["publicAccessCidrs"]
    cluster = _one(run, "gcp:container/cluster:Cluster")["inputs"]
    return [block["cidrBlock"] for block in cluster["masterAuthorizedNetworksConfig"]["cidrBlocks"]]


@pytest.mark.parametrize(("raw", "words"), [
    ({"clusterApiCidrs": '["2001:db8::/32"]'}, ("pixtral:clusterApiCidrs:", "is not allowed", "IPv4 CIDRs",
                                                "not 2001:db8::/32")),
    ({"clusterApiCidrs": '["10.0.0.1/8"]'}, ("pixtral:clusterApiCidrs:", "is not allowed", "not 10.0.0.1/8")),
    ({"clusterApiCidrs": "[]"}, ("pixtral:clusterApiCidrs: [] is not allowed",)),
    ({"clusterApiCidrs": '["10.0.0.0/8"]', "clusterName": "theirs"}, ("pixtral:clusterName names an existing one",)),
    ({"allowedCidrs": '["2001:db8::/32"]'}, ("or set pixtral:clusterApiCidrs",)),
])
@pytest.mark.parametrize("target", ["eks", "gke"])
def test_bad_cluster_api_cidrs_are_refused_by_name(target, raw, words):
    with pytest.raises(ConfigError) as error:
        load_spec({"target": target, **raw})
    for word in words:
        assert word in str(error.value), str(error.value)


def test_cluster_api_cidrs_is_refused_on_targets_without_a_created_cluster():
    for target in ("aws", "gcp", "kubernetes"):
        with pytest.raises(ConfigError, match="pixtral:clusterApiCidrs only applies to target eks or gke"):
            load_spec({"target": target, "clusterApiCidrs": '["10.0.0.0/8"]'})


@pytest.mark.parametrize("stack", ["k8s", "eks", "gke"])
def test_the_workload_namespace_enforces_the_restricted_pod_security_profile(stack):
    # The real API server's Pod Security admission then refuses any pod in it that asks for more: the cluster tier
    # (tests/test_cluster.py) creates the workload's pods under this label.
    [namespace] = resources_of(run_stack(stack), "kubernetes:core/v1:Namespace")
    labels = namespace["inputs"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == "v1.34"
