"""On a cluster the program did not make, pixtral:gpuType selects the nodes as well as sizing the model: a pod of a
mixed cluster must not land on a smaller GPU, whichever well-known label the cluster's nodes carry."""

from __future__ import annotations

import pytest
from conftest import pod_controller, run_stack

from pixtral_deploy.catalog import GFD_PRODUCTS, GPUS


def _affinity(run: dict) -> dict | None:
    return pod_controller(run)["inputs"]["spec"]["template"]["spec"].get("affinity")


def _admits(affinity: dict, node_labels: dict[str, str]) -> bool:
    """The scheduler's reading of required node affinity: any term whose every expression the node matches."""
    terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    return any(all(node_labels.get(e["key"]) in e["values"] for e in term["matchExpressions"]) for term in terms)


NODES = {
    "GKE L40S-less pool (L4)": ({"cloud.google.com/gke-accelerator": "nvidia-l4"}, False),
    "GKE": ({"cloud.google.com/gke-accelerator": "nvidia-l40s"}, True),
    "EKS node group labelled for the autoscaler": ({"k8s.amazonaws.com/accelerator": "nvidia-l40s"}, True),
    "GPU Operator's feature discovery": ({"nvidia.com/gpu.product": "NVIDIA-L40S"}, True),
    "feature discovery on an A10G": ({"nvidia.com/gpu.product": "NVIDIA-A10G"}, False),
    "no GPU label at all": ({"kubernetes.io/os": "linux"}, False),
}


@pytest.mark.parametrize("node", sorted(NODES))
def test_gpu_type_admits_only_nodes_labelled_with_it(node):
    labels, admitted = NODES[node]
    run = run_stack("k8s", {"pixtral:gpuType": "nvidia-l40s"})
    assert _admits(_affinity(run), labels) is admitted


def test_the_render_says_which_labels_select_the_gpu():
    run = run_stack("k8s")
    (note,) = [line for line in run["log"] if "pods run only on nodes labelled as nvidia-l40s" in line]
    assert "nvidia.com/gpu.product in NVIDIA-L40S" in note and "gpuMemoryGb" in note


def test_gpu_memory_alone_selects_nothing_and_warns_that_gpus_must_not_mix():
    run = run_stack("k8s", {"pixtral:gpuType": "", "pixtral:gpuMemoryGb": "48"})
    assert run["error"] is None, run["error"]
    assert _affinity(run) is None
    assert any(line.startswith("warning:") and "must not mix GPUs" in line for line in run["log"]), run["log"]


@pytest.mark.parametrize("stack", ["eks", "gke"])
def test_clusters_the_program_makes_keep_their_own_node_selector(stack):
    # Their GPU node group is the program's own: its label selects it, no affinity to a GPU name is needed.
    run = run_stack(stack)
    assert _affinity(run) is None
    assert pod_controller(run)["inputs"]["spec"]["template"]["spec"]["nodeSelector"]


def test_every_catalogue_gpu_has_a_feature_discovery_name():
    assert set(GFD_PRODUCTS) == set(GPUS)
