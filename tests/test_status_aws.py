"""`pixtralctl status` on AWS: one line per replica, read with the AWS CLI.

The CLI is the one thing replaced: a stand-in `aws` on PATH answers with JSON in the shapes the real CLI prints for
`autoscaling describe-auto-scaling-groups`, `ec2 describe-instances` and `elbv2 describe-target-health`.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_DIR

from pixtralctl import status_aws
from pixtralctl.status import table
from pixtralctl.target import TargetError
from pixtralctl.wait import FleetHealth

GROUP = "pixtral-5a2f0e4"
TARGET_GROUP = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/pixtral/fedcba9876543210"
GROUPS = {"AutoScalingGroups": [{
    "AutoScalingGroupName": GROUP, "MinSize": 1, "MaxSize": 4, "DesiredCapacity": 3,
    "Instances": [
        {"InstanceId": "i-0bbb", "InstanceType": "g6e.2xlarge", "AvailabilityZone": "eu-west-1b",
         "LifecycleState": "Pending", "HealthStatus": "Healthy", "ProtectedFromScaleIn": False},
        {"InstanceId": "i-0aaa", "InstanceType": "g6e.xlarge", "AvailabilityZone": "eu-west-1a",
         "LifecycleState": "InService", "HealthStatus": "Healthy", "ProtectedFromScaleIn": False},
        {"InstanceId": "i-0ccc", "InstanceType": "g6e.xlarge", "AvailabilityZone": "eu-west-1b",
         "LifecycleState": "InService", "HealthStatus": "Healthy", "ProtectedFromScaleIn": False},
    ]}]}
INSTANCES = {"Reservations": [
    {"Instances": [{"InstanceId": "i-0aaa", "InstanceType": "g6e.xlarge", "State": {"Name": "running"},
                    "Placement": {"AvailabilityZone": "eu-west-1a"}}]},
    {"Instances": [{"InstanceId": "i-0bbb", "InstanceType": "g6e.2xlarge", "InstanceLifecycle": "spot",
                    "State": {"Name": "pending"}, "Placement": {"AvailabilityZone": "eu-west-1b"}},
                   {"InstanceId": "i-0ccc", "InstanceType": "g6e.xlarge", "InstanceLifecycle": "spot",
                    "State": {"Name": "running"}, "Placement": {"AvailabilityZone": "eu-west-1b"}}]}]}
HEALTH = {"TargetHealthDescriptions": [
    {"Target": {"Id": "i-0aaa", "Port": 8081}, "HealthCheckPort": "8081", "TargetHealth": {"State": "healthy"}},
    {"Target": {"Id": "i-0ccc", "Port": 8081}, "HealthCheckPort": "8081",
     "TargetHealth": {"State": "initial", "Reason": "Elb.InitialHealthChecking",
                      "Description": "Initial health checks in progress"}}]}


ANSWERS = {"autoscaling describe-auto-scaling-groups": GROUPS, "ec2 describe-instances": INSTANCES,
           "elbv2 describe-target-health": HEALTH}


def _install_fake_aws(folder: Path, answers: dict, monkeypatch) -> Path:
    """An `aws` on PATH that logs its arguments and prints the canned answer for its first two words."""
    script = folder / "aws"
    script.write_text(f"""#!{sys.executable}
import json, sys
args = sys.argv[1:]
with open({str(folder / 'calls.log')!r}, "a") as log:
    log.write(" ".join(args) + "\\n")
answers = json.loads({json.dumps(answers)!r})
key = " ".join(args[:2])
if key not in answers:
    sys.exit("unexpected call: " + " ".join(args))
print(json.dumps(answers[key]))
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder / "calls.log"


@pytest.fixture
def fake_aws(tmp_path, monkeypatch) -> Path:
    return _install_fake_aws(tmp_path, ANSWERS, monkeypatch)


def test_one_line_per_replica_with_capacity_state_and_target_health(fake_aws):
    outputs = {"target": "aws", "autoScalingGroup": GROUP, "targetGroup": TARGET_GROUP, "region": "eu-west-1"}
    rows = status_aws.replicas(outputs)
    assert [(r.name, r.zone, r.type, r.capacity, r.state, r.health) for r in rows] == [
        ("i-0aaa", "eu-west-1a", "g6e.xlarge", "on-demand", "InService", "healthy"),
        ("i-0bbb", "eu-west-1b", "g6e.2xlarge", "spot", "Pending", "not registered"),
        ("i-0ccc", "eu-west-1b", "g6e.xlarge", "spot", "InService", "initial (Elb.InitialHealthChecking)"),
    ]
    printed = table(rows)
    assert printed.splitlines()[0].split() == ["name", "zone", "type", "capacity", "state", "health"]
    calls = fake_aws.read_text()
    assert f"--auto-scaling-group-names {GROUP}" in calls and f"--target-group-arn {TARGET_GROUP}" in calls
    assert calls.count("--region eu-west-1") == 3


def test_a_group_that_is_gone_is_named(tmp_path, monkeypatch):
    _install_fake_aws(tmp_path, {**ANSWERS, "autoscaling describe-auto-scaling-groups": {"AutoScalingGroups": []}},
                      monkeypatch)
    with pytest.raises(TargetError, match="no Auto Scaling Group named pixtral-gone in region eu-west-1"):
        status_aws.replicas({"autoScalingGroup": "pixtral-gone", "targetGroup": TARGET_GROUP, "region": "eu-west-1"})


def test_without_the_aws_cli_says_what_is_missing(monkeypatch):
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    with pytest.raises(TargetError, match="aws CLI is not on PATH"):
        status_aws.replicas({"autoScalingGroup": GROUP, "targetGroup": TARGET_GROUP})


def test_wait_shows_how_many_replicas_the_balancer_counts_healthy(fake_aws):
    fleet = FleetHealth({"target": "aws", "autoScalingGroup": GROUP, "targetGroup": TARGET_GROUP,
                         "region": "eu-west-1"})
    assert fleet.suffix(0.0) == " [replicas: 1 healthy of 3]"


def test_wait_keeps_waiting_on_the_balancer_alone_without_the_cli(monkeypatch):
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    fleet = FleetHealth({"target": "aws", "autoScalingGroup": GROUP, "targetGroup": TARGET_GROUP})
    assert fleet.suffix(0.0) == "" and fleet.source is None


def _fake_pulumi(folder: Path, outputs: dict) -> None:
    """A `pulumi` on PATH whose `stack output --json` prints the stack's outputs."""
    script = folder / "pulumi"
    script.write_text(f"#!{sys.executable}\nprint({json.dumps(json.dumps(outputs))})\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_status_prints_one_line_per_replica_from_the_stack_outputs(fake_aws, tmp_path):
    _fake_pulumi(tmp_path, {"target": "aws", "autoScalingGroup": GROUP, "targetGroup": TARGET_GROUP,
                            "region": "eu-west-1"})
    done = subprocess.run([sys.executable, "-m", "pixtralctl", "status"], capture_output=True, text=True,
                          cwd=PROJECT_DIR, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["name", "zone", "type", "capacity", "state", "health"]
    assert lines[1].split() == ["i-0aaa", "eu-west-1a", "g6e.xlarge", "on-demand", "InService", "healthy"]
    assert lines[-1] == "3 replica(s)"


def test_status_without_the_aws_cli_exits_2_naming_it(tmp_path):
    _fake_pulumi(tmp_path, {"target": "aws", "autoScalingGroup": GROUP, "targetGroup": TARGET_GROUP})
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{Path(sys.executable).parent}"}
    done = subprocess.run([sys.executable, "-m", "pixtralctl", "status"], capture_output=True, text=True,
                          cwd=PROJECT_DIR, env=env, timeout=60)
    assert done.returncode == 2 and "aws CLI is not on PATH" in done.stderr, done.stderr


# --- a fleet at zero (autoscale.minReplicas 0) ---------------------------------------------------------------------

def _at_zero_outputs() -> dict:
    """The outputs `pulumi up` gives aws-fleet at zero (the program's own wake plan among them), as the mock engine
    records them."""
    from conftest import run_stack

    run = run_stack("aws-fleet", {"pixtral:onDemandBaseReplicas": "0", "pixtral:autoscale": json.dumps(
        {"minReplicas": 0, "maxReplicas": 4, "targetQpsPerReplica": 1.5})})
    assert run["error"] is None, run["error"]
    return {**run["outputs"], "autoScalingGroup": GROUP, "targetGroup": TARGET_GROUP, "region": "eu-west-1"}


def _empty_group(minimum: int, desired: int) -> dict:
    return {**ANSWERS, "autoscaling describe-auto-scaling-groups": {"AutoScalingGroups": [{
        "AutoScalingGroupName": GROUP, "MinSize": minimum, "MaxSize": 4, "DesiredCapacity": desired,
        "Instances": []}]}, "elbv2 describe-target-health": {"TargetHealthDescriptions": []}}


def _status(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pixtralctl", "status", *flags], capture_output=True, text=True,
                          cwd=PROJECT_DIR, timeout=60)


def test_a_fleet_at_zero_is_idle_with_the_wake_estimate_and_exits_0(tmp_path, monkeypatch):
    _install_fake_aws(tmp_path, _empty_group(0, 0), monkeypatch)
    _fake_pulumi(tmp_path, _at_zero_outputs())
    done = _status()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-2:] == [
        "0 replica(s)",
        "idle: scaled to zero, the first request wakes it (about 204 s: 120 s wake detection + 84 s start estimate "
        "(a boot from the stack's artefact store))"]


def test_a_fleet_at_zero_reads_as_idle_in_json_too(tmp_path, monkeypatch):
    _install_fake_aws(tmp_path, _empty_group(0, 0), monkeypatch)
    _fake_pulumi(tmp_path, _at_zero_outputs())
    done = _status("--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert (shown["replicas"], shown["state"]) == ([], "idle") and "about 204 s" in shown["message"]


def test_a_fleet_at_zero_that_a_request_has_woken_is_waking(tmp_path, monkeypatch):
    _install_fake_aws(tmp_path, _empty_group(0, 1), monkeypatch)
    _fake_pulumi(tmp_path, _at_zero_outputs())
    done = _status()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith(f"waking: scaled to zero, and a request has woken it (Auto "
                                                   f"Scaling Group {GROUP} wants 1)")


def test_a_fleet_whose_minimum_needs_a_replica_and_has_none_fails(tmp_path, monkeypatch):
    _install_fake_aws(tmp_path, _empty_group(1, 1), monkeypatch)
    _fake_pulumi(tmp_path, {"target": "aws", "autoScalingGroup": GROUP, "targetGroup": TARGET_GROUP,
                            "region": "eu-west-1"})
    done = _status()
    assert done.returncode == 1, done.stdout
    assert done.stdout.startswith(f"FAIL: no replica: Auto Scaling Group {GROUP} keeps at least 1 (its minimum)")
    assert "idle" not in done.stdout
