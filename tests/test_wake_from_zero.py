"""`pixtralctl wait` and `smoke` on a fleet at zero (autoscale.minReplicas 0, no replica): they say so with the
program's wake estimate, send the request that wakes it, wait up to the wake's own timeout, then carry on.

Stand-ins at the cloud's edge only: a loopback server that answers 503 from the first request until it has "woken"
(as the Application Load Balancer answers for an empty target group), an `aws` CLI that shows the group at zero, and
a `pulumi` CLI that prints the outputs the program gives aws-fleet at zero under the mock engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PROJECT_DIR, run_stack
from fake_openai_server import MODEL, FakeVllm

from pixtralctl.__main__ import main

KEY = "sk-fake-pixtral-key-1234"
GROUP = "pixtral-fleet-0a1b2c3"
WAKING = ("the fleet is at zero (Auto Scaling Group pixtral-fleet-0a1b2c3: autoscale.minReplicas 0, no replica): "
          "waking it with a request to its endpoint; first answer in about 204 s: 120 s wake detection + 84 s start "
          "estimate (a boot from the stack's artefact store); waiting up to 720 s")


def _outputs(endpoint: str, **plan: float) -> dict:
    run = run_stack("aws-fleet", {"pixtral:onDemandBaseReplicas": "0", "pixtral:autoscale": json.dumps(
        {"minReplicas": 0, "maxReplicas": 4, "targetQpsPerReplica": 1.5})})
    assert run["error"] is None, run["error"]
    # As `pulumi stack output --json` prints them: numbers as floats.
    wake = {key: float(value) if isinstance(value, int) and not isinstance(value, bool) else value
            for key, value in {**run["outputs"]["scaleToZero"], **plan}.items()}
    return {"target": "aws", "endpoint": endpoint, "apiKey": KEY, "model": MODEL, "autoScalingGroup": GROUP,
            "targetGroup": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/pixtral/0123",
            "region": "us-east-1", "scaleToZero": wake}


def _clis(folder: Path, outputs: dict, monkeypatch, instances: tuple[dict, ...] = ()) -> dict[str, str]:
    """`pulumi` prints the outputs; `aws` shows the group (minimum 0) with `instances`: by default none, at zero."""
    group = {"AutoScalingGroups": [{"AutoScalingGroupName": GROUP, "MinSize": 0, "MaxSize": 4,
                                    "DesiredCapacity": len(instances), "Instances": list(instances)}]}
    answers = {"autoscaling describe-auto-scaling-groups": group,
               "ec2 describe-instances": {"Reservations": [{"Instances": [
                   {"InstanceId": i["InstanceId"], "InstanceType": i["InstanceType"]} for i in instances]}]},
               "elbv2 describe-target-health": {"TargetHealthDescriptions": []}}
    (folder / "pulumi").write_text(f"#!{sys.executable}\nprint({json.dumps(json.dumps(outputs))})\n")
    (folder / "aws").write_text(f"""#!{sys.executable}
import json, sys
answers = json.loads({json.dumps(json.dumps(answers))})
key = " ".join(sys.argv[1:3])
if key not in answers:
    sys.exit("unexpected call: " + " ".join(sys.argv[1:]))
print(json.dumps(answers[key]))
""")
    for name in ("pulumi", "aws"):
        (folder / name).chmod(0o755)
    path = f"{folder}{os.pathsep}{os.environ['PATH']}"
    monkeypatch.setenv("PATH", path)
    return {**os.environ, "PATH": path}


def test_wait_wakes_a_fleet_at_zero_and_passes_once_a_replica_answers(tmp_path, monkeypatch, capsys):
    with FakeVllm(KEY, mode="slow_start", ready_after=1.0) as balancer:
        _clis(tmp_path, _outputs(balancer.endpoint), monkeypatch)
        assert main(["wait", "--interval", "0.2"]) == 0
        first = balancer.requests[0]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == WAKING
    assert lines[1] == "the waking request was answered 503"
    assert first["path"] == "/health", "the waking request goes to the endpoint before any probe"
    assert lines[-1].startswith("ready after") and "answered a chat request" in lines[-1]


def test_wait_on_a_fleet_at_zero_waits_the_wake_timeout_the_stack_exports(tmp_path, monkeypatch):
    with FakeVllm(KEY, mode="slow_start", ready_after=600) as balancer:
        env = _clis(tmp_path, _outputs(balancer.endpoint, timeoutSeconds=2.0), monkeypatch)
        started = time.monotonic()
        # No --timeout: the wake's own (here 2 s), not the 1800 s default.
        done = subprocess.run([sys.executable, "-m", "pixtralctl", "wait", "--interval", "0.5"], capture_output=True,
                              text=True, cwd=PROJECT_DIR, env=env, timeout=60)
        assert time.monotonic() - started < 30
    assert done.returncode == 1, done.stdout + done.stderr
    assert "waiting up to 2 s" in done.stdout.splitlines()[0]
    assert "FAIL: not ready after 2s (timeout 2s); last state loading: /health answered 503" in done.stdout


def test_smoke_wakes_a_fleet_at_zero_before_its_request(tmp_path, monkeypatch, capsys):
    with FakeVllm(KEY, mode="slow_start", ready_after=1.0) as balancer:
        _clis(tmp_path, _outputs(balancer.endpoint), monkeypatch)
        assert main(["smoke"]) == 0
        chats = balancer.chat_requests()
    out = capsys.readouterr().out
    assert out.splitlines()[0] == WAKING
    assert any(len(chat["messages"][0]["content"]) == 4 for chat in chats), "the guide's request was not sent"
    assert "OK:" in out


def test_smoke_json_on_a_fleet_at_zero_keeps_stdout_json(tmp_path, monkeypatch, capsys):
    with FakeVllm(KEY, mode="slow_start", ready_after=1.0) as balancer:
        _clis(tmp_path, _outputs(balancer.endpoint), monkeypatch)
        assert main(["smoke", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["ok"] and result["woken_from_zero_seconds"] >= 1.0
    assert captured.err.splitlines()[0] == WAKING


@pytest.mark.parametrize("command", ["wait", "smoke"])
def test_a_fleet_with_a_replica_is_not_woken(command, tmp_path, monkeypatch, capsys):
    with FakeVllm(KEY) as server:
        _clis(tmp_path, _outputs(server.endpoint), monkeypatch, instances=({
            "InstanceId": "i-0aaa", "InstanceType": "g6e.xlarge", "AvailabilityZone": "us-east-1a",
            "LifecycleState": "InService"},))
        assert main([command, *(["--interval", "0.2"] if command == "wait" else [])]) == 0
    assert "at zero" not in capsys.readouterr().out


def test_the_stack_exports_the_wake_that_pulumi_up_logs_and_the_group_waits():
    run = run_stack("aws-fleet", {"pixtral:onDemandBaseReplicas": "0", "pixtral:autoscale": json.dumps(
        {"minReplicas": 0, "maxReplicas": 4, "targetQpsPerReplica": 1.5})})
    wake = run["outputs"]["scaleToZero"]
    (logged,) = [line for line in run["log"] if line.startswith("info: scale to zero")]
    assert f"about {wake['detectionSeconds'] + wake['startSeconds']} s from the first request" in logged, logged
    (group,) = [r for r in run["resources"] if r["type"] == "aws:autoscaling/group:Group"]
    # The wait ends where the group itself gives a new replica up: its health-check grace, after the detection.
    assert wake["timeoutSeconds"] == wake["detectionSeconds"] + group["inputs"]["healthCheckGracePeriod"]


@pytest.mark.parametrize("stack", ["aws-fleet", "gcp-fleet", "k8s-autoscale"])
def test_a_fleet_with_a_minimum_exports_no_wake(stack):
    run = run_stack(stack)
    assert run["error"] is None and "scaleToZero" not in run["outputs"]


def test_wait_wakes_a_kubernetes_set_at_zero_through_the_interceptor_that_holds_the_request(tmp_path, monkeypatch,
                                                                                            capsys):
    eks = run_stack("eks", {"pixtral:tls": "false", "pixtral:prometheusUrl": "http://prometheus.monitoring:9090",
                            "pixtral:autoscale": json.dumps({"minReplicas": 0, "maxReplicas": 3,
                                                             "targetQueuePerReplica": 2})})
    assert eks["error"] is None, eks["error"]
    lists = {"pods": {"kind": "List", "items": []},
             "scaledobjects.keda.sh": {"kind": "List", "items": [{
                 "metadata": {"name": "pixtral"}, "spec": {"minReplicaCount": 0, "maxReplicaCount": 3,
                                                           "scaleTargetRef": {"kind": "StatefulSet",
                                                                              "name": "pixtral"}}}]},
             "statefulsets.apps": {"kind": "StatefulSet", "spec": {"replicas": 0}}}
    (tmp_path / "kubectl").write_text(f"#!{sys.executable}\nimport json, sys\n"
                                      f"print(json.dumps(json.loads({json.dumps(json.dumps(lists))})[sys.argv[2]]))\n")
    (tmp_path / "kubectl").chmod(0o755)
    with FakeVllm(KEY, mode="held", ready_after=1.0) as interceptor:
        outputs = {"target": "eks", "endpoint": interceptor.endpoint, "apiKey": KEY, "model": MODEL,
                   "namespace": "pixtral", "podSelector": "app.kubernetes.io/name=pixtral",
                   "scaleToZero": eks["outputs"]["scaleToZero"]}
        _clis(tmp_path, outputs, monkeypatch)
        assert main(["wait", "--interval", "0.2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("the fleet is at zero (ScaledObject pixtral (StatefulSet pixtral): autoscale.minReplicas 0, no "
                        "replica): waking it with a request to its endpoint; first answer in 1 s wake detection + "
                        "the pod's start; no estimate of that: its node, image and download are the cluster's; "
                        "waiting up to 1801 s")
    assert lines[1] == "the waking request was answered 200", "the interceptor answers once the pod is ready"
    assert lines[-1].startswith("ready after")
