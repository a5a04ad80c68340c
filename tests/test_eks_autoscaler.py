"""The `eks` target's GPU node group follows the pods with no manual step: the program installs the Cluster Autoscaler
on the cluster it creates (pinned chart, auto-discovery of this cluster's groups, an AWS identity that may resize only
them, on the system nodes), and leaves a reused cluster's autoscaling to its owner."""

from __future__ import annotations

import json
import re

import pytest
from chart_values import CHARTS, values_the_chart_ignores, vendored_values
from conftest import POD_CONTROLLER_TYPES, resources_of, run_stack, stacks_of

from components.eks_cluster_autoscaler import APP_VERSION, CHART_VERSION, NAMESPACE, SERVICE_ACCOUNT, WRITE_ACTIONS
from pixtral_deploy.spec import KUBERNETES_VERSION

RELEASE = "kubernetes:helm.sh/v3:Release"
ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"


def _autoscaler_associations(run: dict) -> list[dict]:
    """The autoscaler's Pod Identity associations (the server pods' own, for the artefact store, are in the
    workload's namespace: tests/test_pod_artefacts.py)."""
    return [a for a in resources_of(run, ASSOCIATION) if a["inputs"]["namespace"] == NAMESPACE]
# The pinned chart's own values.yaml and the pinned autoscaler's flag table, vendored (first line: where from).
CHART_VALUES = vendored_values("cluster-autoscaler", CHART_VERSION)
FLAGS = set(re.findall(r"^\| `([a-z0-9-]+)` \|", (CHARTS / f"cluster-autoscaler-{APP_VERSION}-flags.md").read_text(),
                       re.MULTILINE))


def _ok(settings: dict[str, str] | None = None) -> dict:
    run = run_stack("eks", settings)
    assert run["error"] is None, run["error"]
    return run


def _autoscaler_release(run: dict) -> dict:
    (release,) = [r for r in resources_of(run, RELEASE) if r["inputs"]["chart"] == "cluster-autoscaler"]
    return release


def _cluster_name(run: dict) -> str:
    (cluster,) = resources_of(run, "aws:eks/cluster:Cluster")
    return cluster["outputs"]["name"]


def _autoscaler_role(run: dict) -> tuple[dict, dict]:
    """The role the Pod Identity association names, and its inline policy."""
    (association,) = _autoscaler_associations(run)
    (role,) = [r for r in resources_of(run, "aws:iam/role:Role")
               if r["outputs"]["arn"] == association["inputs"]["roleArn"]]
    policies = [p for p in resources_of(run, "aws:iam/rolePolicy:RolePolicy") if p["inputs"]["role"] == role["id"]]
    assert len(policies) == 1, policies
    return role, json.loads(policies[0]["inputs"]["policy"])


def test_a_created_eks_cluster_gets_the_pinned_cluster_autoscaler_discovering_its_groups():
    run = _ok()
    release = _autoscaler_release(run)["inputs"]
    assert (release["chart"], release["version"], release["repositoryOpts"]["repo"], release["namespace"]) == (
        "cluster-autoscaler", "9.53.0", "https://kubernetes.github.io/autoscaler", "kube-system")
    values = release["values"]
    assert values["cloudProvider"] == "aws"
    # The chart's default discovery tags, with this cluster's (auto-generated) name in the second one.
    assert values["autoDiscovery"]["clusterName"] == _cluster_name(run)
    assert "tags" not in values["autoDiscovery"]
    assert CHART_VALUES["autoDiscovery"]["tags"] == [
        "k8s.io/cluster-autoscaler/enabled", "k8s.io/cluster-autoscaler/{{ .Values.autoDiscovery.clusterName }}"]
    assert values["awsRegion"] == run["config"]["aws:region"]
    assert values["extraArgs"]["balance-similar-node-groups"] == "true"


def test_the_pinned_autoscaler_is_the_clusters_kubernetes_minor():
    # Cluster Autoscaler's minor follows Kubernetes': bumping the cluster without the chart fails here.
    assert APP_VERSION.rsplit(".", 1)[0] == KUBERNETES_VERSION
    assert CHART_VALUES["image"]["tag"] == f"v{APP_VERSION}", "the vendored values are not the pinned chart's"


def test_every_value_we_set_is_one_the_pinned_chart_reads():
    values = _autoscaler_release(_ok())["inputs"]["values"]
    missing = values_the_chart_ignores(values, CHART_VALUES, free_maps=(("extraArgs",), ("nodeSelector",)))
    assert missing == [], f"values the chart {CHART_VERSION} would silently ignore: {missing}"
    unknown = sorted(set(values["extraArgs"]) - FLAGS)
    assert unknown == [], f"flags Cluster Autoscaler {APP_VERSION} does not have (it exits on them): {unknown}"


def test_the_autoscaler_may_resize_only_this_clusters_groups():
    run = _ok()
    role, policy = _autoscaler_role(run)
    trust = json.loads(role["inputs"]["assumeRolePolicy"])["Statement"]
    assert [(s["Principal"], sorted(s["Action"])) for s in trust] == [
        ({"Service": "pods.eks.amazonaws.com"}, ["sts:AssumeRole", "sts:TagSession"])]
    cluster = _cluster_name(run)
    writes = [s for s in policy["Statement"] if set(_actions(s)) & set(WRITE_ACTIONS)]
    assert [sorted(_actions(s)) for s in writes] == [sorted(WRITE_ACTIONS)]
    assert writes[0]["Resource"].startswith(f"arn:aws:autoscaling:{run['config']['aws:region']}:")
    assert writes[0]["Condition"] == {
        "StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster}": "owned"}}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in _actions(statement):
            assert "*" not in action, f"wildcard action {action}"
            if statement["Resource"] == "*" and statement is not writes[0]:
                verb = action.split(":")[1]
                assert verb.startswith(("Describe", "Get")), f"{action} on every resource without a condition"
    (describe,) = [s for s in policy["Statement"] if "eks:DescribeNodegroup" in _actions(s)]
    assert describe["Resource"].endswith(f":nodegroup/{cluster}/*/*")


def _actions(statement: dict) -> list[str]:
    return [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]


def test_the_pod_identity_association_names_the_charts_service_account():
    run = _ok()
    (association,) = _autoscaler_associations(run)
    values = _autoscaler_release(run)["inputs"]["values"]
    assert values["rbac"]["serviceAccount"]["create"] is True
    assert (association["inputs"]["namespace"], association["inputs"]["serviceAccount"]) == (
        _autoscaler_release(run)["inputs"]["namespace"], values["rbac"]["serviceAccount"]["name"])
    assert association["inputs"]["serviceAccount"] == SERVICE_ACCOUNT
    assert association["inputs"]["clusterName"] == _cluster_name(run)


def test_the_autoscaler_runs_on_the_system_nodes_not_the_gpu_nodes():
    run = _ok()
    values = _autoscaler_release(run)["inputs"]["values"]
    groups = {g["name"].rsplit("-", 1)[1]: g["inputs"] for g in resources_of(run, "aws:eks/nodeGroup:NodeGroup")}
    selector = values["nodeSelector"].items()
    assert selector and selector <= groups["system"]["labels"].items()
    assert not selector <= groups["gpu"].get("labels", {}).items(), "the selector matches the GPU nodes too"
    assert not values.get("tolerations"), "a toleration would let it onto the tainted GPU nodes"


def test_the_autoscaler_starts_after_its_nodes_and_identity_and_the_workload_does_not_wait_for_it():
    run = _ok()
    release = _autoscaler_release(run)
    waits_for = set(release["depends_on"])
    assert {"aws:eks/nodeGroup:NodeGroup::pixtral-system", "aws:eks/addon:Addon::pixtral-pod-identity",
            f"{ASSOCIATION}::pixtral-autoscaler-identity"} <= waits_for
    for controller in (r for r in run["resources"] if r["type"] in POD_CONTROLLER_TYPES):
        assert f"{RELEASE}::{release['name']}" not in controller["depends_on"]


@pytest.mark.parametrize("settings", [{}, {"pixtral:clusterName": "theirs"}], ids=["created", "reused"])
def test_a_starting_gpu_node_is_known_as_one_so_the_autoscaler_adds_no_second(settings):
    # Until the device plugin advertises nvidia.com/gpu, only this label tells the autoscaler the node will have one.
    (gpu,) = [g for g in resources_of(_ok(settings), "aws:eks/nodeGroup:NodeGroup") if g["name"].endswith("-gpu")]
    assert gpu["inputs"]["labels"]["k8s.amazonaws.com/accelerator"] == "nvidia-l40s"


def test_a_reused_eks_cluster_gets_no_autoscaler():
    run = _ok({"pixtral:clusterName": "theirs"})
    assert not [r for r in resources_of(run, RELEASE) if r["inputs"]["chart"] == "cluster-autoscaler"]
    assert not _autoscaler_associations(run)
    assert not [r for r in run["resources"] if r["type"] == "pixtral:aws:EksClusterAutoscaler"]


@pytest.mark.parametrize("stack", stacks_of("gke", "kubernetes"))
def test_no_cluster_autoscaler_on_gke_or_kubernetes(stack):
    run = run_stack(stack)
    assert run["error"] is None, run["error"]
    assert not [r for r in resources_of(run, RELEASE) if r["inputs"]["chart"] == "cluster-autoscaler"]
    assert not _autoscaler_associations(run)
