"""`pixtralctl status` on Kubernetes: one line per pod from `kubectl get pods -o json`, with a fake `kubectl` on PATH
that answers in kubectl's own output shape (a v1 List of Pods / Nodes) and records how it was called."""

from __future__ import annotations

import json
import os
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pixtralctl.status import replicas_of, table
from pixtralctl.target import TargetError

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
OUTPUTS = {"target": "eks", "namespace": "pixtral", "clusterName": "pixtral-eks",
           "podSelector": "app.kubernetes.io/name=pixtral,app.kubernetes.io/instance=eks"}


def _pod(ordinal: int, node: str | None, ready: bool, restarts: int, created: str, **status) -> dict:
    container = {"name": "vllm", "image": "vllm/vllm-openai:v0.32.0", "ready": ready, "restartCount": restarts,
                 "started": ready, "state": {"running": {"startedAt": created}} if ready else
                 {"waiting": {"reason": "ContainerCreating"}}}
    conditions = [{"type": "PodScheduled", "status": "True" if node else "False", "lastTransitionTime": created,
                   **({} if node else {"reason": "Unschedulable",
                                       "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."})},
                  {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": created}]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"pixtral-{ordinal}", "namespace": "pixtral", "creationTimestamp": created,
                     "labels": {"app.kubernetes.io/name": "pixtral", "statefulset.kubernetes.io/pod-name":
                                f"pixtral-{ordinal}"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "pixtral"}]},
        "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.32.0"}],
                 **({"nodeName": node} if node else {})},
        "status": {"phase": "Running" if node else "Pending", "conditions": conditions,
                   **({"containerStatuses": [container]} if node else {}), **status},
    }


PODS = {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": [
    _pod(1, "ip-10-0-2-7.ec2.internal", False, 0, "2026-11-29T11:55:00Z"),
    _pod(0, "ip-10-0-1-5.ec2.internal", True, 2, "2026-11-28T09:00:00Z"),
    _pod(2, None, False, 0, "2026-11-29T11:59:30Z"),
]}
NODES = {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": [
    {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ip-10-0-1-5.ec2.internal", "labels": {
        "topology.kubernetes.io/zone": "us-east-1a", "node.kubernetes.io/instance-type": "g6e.xlarge",
        "eks.amazonaws.com/capacityType": "ON_DEMAND"}}},
    {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ip-10-0-2-7.ec2.internal", "labels": {
        "topology.kubernetes.io/zone": "us-east-1b", "node.kubernetes.io/instance-type": "g6e.xlarge",
        "eks.amazonaws.com/capacityType": "SPOT"}}},
]}


@pytest.fixture
def fake_kubectl(tmp_path, monkeypatch):
    """A `kubectl` that answers `get pods` / `get nodes` with the canned lists, or fails as asked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "pods.json").write_text(json.dumps(PODS))
    (tmp_path / "nodes.json").write_text(json.dumps(NODES))
    script = bin_dir / "kubectl"
    script.write_text(f"""#!{sys.executable}
import json, sys
from pathlib import Path
here = Path({str(tmp_path)!r})
with open(here / "calls.jsonl", "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
fail = here / "fail"
if fail.exists():
    sys.stderr.write(fail.read_text())
    sys.exit(1)
kind = sys.argv[2]
print((here / f"{{kind}}.json").read_text())
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def _calls(folder: Path) -> list[list[str]]:
    return [json.loads(line) for line in (folder / "calls.jsonl").read_text().splitlines()]


def test_one_line_per_pod_with_node_readiness_restarts_and_age(fake_kubectl):
    from pixtralctl import status_kubernetes

    pods = status_kubernetes.replicas(OUTPUTS, now=NOW)
    assert [p.name for p in pods] == ["pixtral-0", "pixtral-1", "pixtral-2"]
    serving, starting, pending = pods
    assert (serving.zone, serving.type, serving.capacity, serving.health) == (
        "us-east-1a", "g6e.xlarge", "on-demand", "ready")
    assert serving.state == "Running on ip-10-0-1-5.ec2.internal, 1/1 ready, 2 restarts, age 1d"
    assert (starting.capacity, starting.health) == ("spot", "not ready (ContainerCreating)")
    assert starting.state.endswith("0/1 ready, 0 restarts, age 5m")
    assert pending.state.startswith("Pending on -")
    assert pending.health == "not scheduled: Unschedulable 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    assert _calls(fake_kubectl)[0] == ["get", "pods", "--namespace", "pixtral", "--selector",
                                       OUTPUTS["podSelector"], "-o", "json"]


def test_status_dispatches_eks_gke_and_kubernetes_to_the_pod_listing(fake_kubectl):
    for target in ("kubernetes", "eks", "gke"):
        listed = replicas_of({**OUTPUTS, "target": target})
        assert len(listed) == 3
    assert "pixtral-0" in table(listed)


def test_nodes_that_cannot_be_read_leave_zone_and_type_blank(fake_kubectl):
    (fake_kubectl / "nodes.json").unlink()
    from pixtralctl import status_kubernetes

    # The fake fails on a missing canned answer like kubectl on a forbidden list: a traceback would be wrong.
    (fake_kubectl / "bin" / "kubectl").write_text((fake_kubectl / "bin" / "kubectl").read_text().replace(
        'print((here / f"{kind}.json").read_text())',
        'path = here / f"{kind}.json"\nif not path.exists():\n    sys.stderr.write("Error from server (Forbidden): '
        'nodes is forbidden\\n")\n    sys.exit(1)\nprint(path.read_text())'))
    pods = status_kubernetes.replicas(OUTPUTS, now=NOW)
    assert (pods[0].zone, pods[0].type, pods[0].capacity) == ("-", "-", "-")
    assert pods[0].health == "ready"


def test_a_kubectl_failure_is_one_clear_error_with_how_to_get_credentials(fake_kubectl):
    (fake_kubectl / "fail").write_text("error: You must be logged in to the server (Unauthorized)\n")
    with pytest.raises(TargetError) as error:
        replicas_of(OUTPUTS)
    message = str(error.value)
    assert "You must be logged in to the server (Unauthorized)" in message
    assert "aws eks update-kubeconfig --name pixtral-eks" in message


def test_missing_kubectl_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TargetError, match="kubectl is not installed"):
        replicas_of(OUTPUTS)


# --- a set at zero (autoscale.minReplicas 0, KEDA's HTTP add-on) -------------------------------------------------

def _scaled_object(minimum: int) -> dict:
    """What `kubectl get scaledobjects.keda.sh` lists for the stack's set (components/pod_autoscaler.py)."""
    return {"apiVersion": "v1", "kind": "List", "items": [{
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "pixtral", "namespace": "pixtral", "labels": {"app.kubernetes.io/name": "pixtral"}},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "pixtral"},
                 "minReplicaCount": minimum, "maxReplicaCount": 3}}]}


def _at(folder: Path, minimum: int, replicas: int) -> None:
    (folder / "pods.json").write_text(json.dumps({**PODS, "items": []}))
    (folder / "scaledobjects.keda.sh.json").write_text(json.dumps(_scaled_object(minimum)))
    (folder / "statefulsets.apps.json").write_text(json.dumps({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "pixtral"},
        "spec": {"replicas": replicas}}))


def _zero_outputs() -> dict:
    """eks at zero, with the wake plan the program exports for it (mock engine)."""
    from conftest import run_stack

    run = run_stack("eks", {"pixtral:tls": "false", "pixtral:prometheusUrl": "http://prometheus.monitoring:9090",
                            "pixtral:autoscale": json.dumps({"minReplicas": 0, "maxReplicas": 3,
                                                             "targetQueuePerReplica": 2})})
    assert run["error"] is None, run["error"]
    return {**OUTPUTS, "scaleToZero": run["outputs"]["scaleToZero"]}


def _status(folder: Path, outputs: dict, capsys) -> tuple[int, str]:
    from pixtralctl.__main__ import main

    script = folder / "bin" / "pulumi"
    script.write_text(f"#!{sys.executable}\nimport json\nprint(json.dumps({outputs!r}))\n")
    script.chmod(0o755)
    code = main(["status"])
    return code, capsys.readouterr().out


def test_a_set_at_zero_is_idle_and_says_the_pod_start_has_no_estimate(fake_kubectl, capsys):
    _at(fake_kubectl, minimum=0, replicas=0)
    code, out = _status(fake_kubectl, _zero_outputs(), capsys)
    assert code == 0, out
    assert out.splitlines()[-1] == ("idle: scaled to zero, the first request wakes it (1 s wake detection + the "
                                    "pod's start; no estimate of that: its node, image and download are the "
                                    "cluster's)")
    asked = [call[:2] for call in _calls(fake_kubectl)]
    assert ["get", "scaledobjects.keda.sh"] in asked and ["get", "statefulsets.apps"] in asked


def test_a_set_whose_scaled_object_keeps_one_and_has_no_pod_fails(fake_kubectl, capsys):
    _at(fake_kubectl, minimum=1, replicas=1)
    code, out = _status(fake_kubectl, OUTPUTS, capsys)
    assert code == 1, out
    assert out.startswith("FAIL: no replica: ScaledObject pixtral (StatefulSet pixtral) keeps at least 1")
