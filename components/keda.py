"""KEDA from its maintained Helm chart, wherever the program installs it: on gke, with its operator signed in to
Managed Prometheus through Workload Identity (components/gke_managed_metrics.py), and on a cluster eks creates,
with no cloud identity at all (KubernetesTarget.managed_metrics_source): there the Prometheus trigger queries
pixtral:prometheusUrl over HTTP, with the user's basic or bearer credentials from a TriggerAuthentication, and
never calls an AWS API. The chart's AWS identity (values podIdentity.aws.irsa, off by default) is for KEDA's AWS
scalers (CloudWatch, SQS, Amazon Managed Prometheus with SigV4), none of which the program declares.

One pin for every target, read in kedacore/charts at tag v2.20.2 (keda/Chart.yaml, keda/values.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_kubernetes as k8s

# kedacore's chart repository: KEDA's chart and its HTTP add-on's (components/scale_to_zero.py).
KEDACORE_CHART_REPO = "https://kedacore.github.io/charts"
KEDA_CHART = "keda"
KEDA_CHART_VERSION = "2.20.2"
KEDA_RELEASE = "keda"
KEDA_NAMESPACE = "keda"
# The chart's default operator service account (values.yaml serviceAccount.operator.name), stated because gke's
# Workload Identity binding names it.
KEDA_OPERATOR_ACCOUNT = "keda-operator"


def keda_release(name: str, opts: pulumi.ResourceOptions,
                 operator_annotations: Mapping[str, pulumi.Input[str]] | None = None) -> k8s.helm.v3.Release:
    """KEDA's chart as its docs install it (`helm install keda kedacore/keda -n keda --create-namespace`), pinned;
    `operator_annotations` go on the operator's service account (a cloud identity, where the target needs one).
    The CRDs (ScaledObject, TriggerAuthentication) come with it: whatever declares one waits for this release."""
    operator: dict = {"name": KEDA_OPERATOR_ACCOUNT}
    if operator_annotations:
        operator["annotations"] = dict(operator_annotations)
    return k8s.helm.v3.Release(
        name,
        name=KEDA_RELEASE,
        chart=KEDA_CHART,
        version=KEDA_CHART_VERSION,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=KEDACORE_CHART_REPO),
        namespace=KEDA_NAMESPACE,
        create_namespace=True,
        values={"serviceAccount": {"operator": operator}},
        opts=opts)
