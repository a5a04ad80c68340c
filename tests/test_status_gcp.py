"""`pixtralctl status` on a GCP fleet: one line per replica, read through a stand-in `gcloud` that answers with
the real CLI's JSON shapes (ManagedInstance, Instance, BackendServiceGroupHealth)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pixtralctl.status import replicas_of, table
from pixtralctl.target import TargetError

PROJECT, REGION = "my-project", "us-central1"
LINK = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}"
OUTPUTS = {"target": "gcp", "project": PROJECT, "region": REGION, "instanceGroups": ["pixtral-standard-1a2b",
           "pixtral-spot-3c4d"], "backendService": "pixtral-backend-5e6f", "internal": False}


def _managed(zone: str, name: str, status: str, action: str = "NONE") -> dict:
    return {"currentAction": action, "id": "123", "instance": f"{LINK}/zones/{zone}/instances/{name}",
            "instanceStatus": status, "version": {"instanceTemplate": f"{LINK}/global/instanceTemplates/t"},
            "instanceHealth": [{"detailedHealthState": "HEALTHY" if status == "RUNNING" else "UNKNOWN",
                                "healthCheck": f"{LINK}/global/healthChecks/pixtral-health"}]}


def _instance(zone: str, name: str, spot: bool) -> dict:
    scheduling = {"provisioningModel": "SPOT", "preemptible": True} if spot else \
        {"provisioningModel": "STANDARD", "preemptible": False}
    return {"name": name, "zone": f"{LINK}/zones/{zone}", "status": "RUNNING", "scheduling": scheduling,
            "machineType": f"{LINK}/zones/{zone}/machineTypes/g2-standard-24"}


ANSWERS = {
    "list-instances pixtral-standard-1a2b": [_managed("us-central1-a", "pixtral-fleet-standard-x1", "RUNNING")],
    "list-instances pixtral-spot-3c4d": [_managed("us-central1-b", "pixtral-fleet-spot-y2", "RUNNING"),
                                         _managed("us-central1-c", "pixtral-fleet-spot-z3", "STAGING", "CREATING")],
    "instances list": [_instance("us-central1-a", "pixtral-fleet-standard-x1", spot=False),
                       _instance("us-central1-b", "pixtral-fleet-spot-y2", spot=True),
                       _instance("us-central1-c", "pixtral-fleet-spot-z3", spot=True)],
    "get-health pixtral-backend-5e6f": [
        {"backend": f"{LINK}/regions/{REGION}/instanceGroups/pixtral-standard-1a2b",
         "status": {"kind": "compute#backendServiceGroupHealth", "healthStatus": [
             {"healthState": "HEALTHY", "instance": f"{LINK}/zones/us-central1-a/instances/pixtral-fleet-standard-x1",
              "ipAddress": "10.128.0.2", "port": 8081}]}},
        {"backend": f"{LINK}/regions/{REGION}/instanceGroups/pixtral-spot-3c4d",
         "status": {"kind": "compute#backendServiceGroupHealth", "healthStatus": [
             {"healthState": "UNHEALTHY", "instance": f"{LINK}/zones/us-central1-b/instances/pixtral-fleet-spot-y2",
              "ipAddress": "10.128.0.3", "port": 8081}]}}],
}

FAKE_GCLOUD = r'''#!{python}
import json, sys
args = sys.argv[1:]
open({log!r}, "a").write(json.dumps(args) + "\n")
answers = json.load(open({answers!r}))
if "--format=json" not in args:
    sys.exit("expected --format=json")
words = [a for a in args if not a.startswith("--")]
for key, answer in answers.items():
    if all(word in words for word in key.split()):
        print(json.dumps(answer))
        sys.exit(0)
sys.exit("ERROR: (gcloud) unexpected call: " + " ".join(args))
'''


@pytest.fixture
def fake_gcloud(tmp_path, monkeypatch) -> Path:
    (tmp_path / "answers.json").write_text(json.dumps(ANSWERS))
    script = tmp_path / "gcloud"
    script.write_text(FAKE_GCLOUD.format(python=sys.executable, log=str(tmp_path / "calls.log"),
                                         answers=str(tmp_path / "answers.json")))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    return tmp_path / "calls.log"


def test_one_line_per_replica_with_zone_type_capacity_state_and_load_balancer_health(fake_gcloud):
    listed = replicas_of(OUTPUTS)
    rows = [(r.name, r.zone, r.type, r.capacity, r.state, r.health) for r in listed]
    assert rows == [
        ("pixtral-fleet-standard-x1", "us-central1-a", "g2-standard-24", "standard", "RUNNING", "HEALTHY"),
        ("pixtral-fleet-spot-y2", "us-central1-b", "g2-standard-24", "Spot", "RUNNING", "UNHEALTHY"),
        ("pixtral-fleet-spot-z3", "us-central1-c", "g2-standard-24", "Spot", "STAGING (creating)", "UNKNOWN"),
    ]
    assert "pixtral-fleet-spot-z3" in table(listed).splitlines()[3]
    calls = [json.loads(line) for line in fake_gcloud.read_text().splitlines()]
    (health,) = [call for call in calls if "get-health" in call]
    assert "--global" in health and f"--project={PROJECT}" in health
    for call in calls:
        if "list-instances" in call:
            assert f"--region={REGION}" in call


def test_internal_fleet_reads_the_regional_backend_service(fake_gcloud):
    replicas_of({**OUTPUTS, "internal": True})
    calls = [json.loads(line) for line in fake_gcloud.read_text().splitlines()]
    (health,) = [call for call in calls if "get-health" in call]
    assert f"--region={REGION}" in health and "--global" not in health


def test_missing_gcloud_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TargetError, match="gcloud CLI is not on PATH"):
        replicas_of(OUTPUTS)


def test_a_failing_gcloud_call_says_which_and_why(fake_gcloud):
    with pytest.raises(TargetError, match="unexpected call"):
        replicas_of({**OUTPUTS, "instanceGroups": ["no-such-group"]})


def _fake_pulumi(folder: Path) -> None:
    script = folder / "pulumi"
    script.write_text(f"#!{sys.executable}\nimport json\nprint(json.dumps({OUTPUTS!r}))\n")
    script.chmod(0o755)


def test_pixtralctl_status_prints_the_table_from_the_stack_outputs(fake_gcloud, capsys):
    from pixtralctl.__main__ import main

    _fake_pulumi(fake_gcloud.parent)
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "pixtral-fleet-spot-y2" in out and "UNHEALTHY" in out and out.rstrip().endswith("3 replica(s)")


def test_pixtralctl_status_without_gcloud_exits_2_saying_why(tmp_path, monkeypatch, capsys):
    from pixtralctl.__main__ import main

    _fake_pulumi(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["status"]) == 2
    assert "gcloud CLI is not on PATH" in capsys.readouterr().err


# --- a fleet at zero (autoscale.minReplicas 0) ---------------------------------------------------------------------

SPOT_GROUP = "pixtral-spot-3c4d"


def _gcloud_at(tmp_path: Path, monkeypatch, described: dict) -> None:
    """The stand-in gcloud for a fleet with one group and no instance; `described` is `managed describe`'s answer
    (the API leaves out fields that are 0, as minNumReplicas and targetSize at zero)."""
    answers = {f"list-instances {SPOT_GROUP}": [], f"describe {SPOT_GROUP}": {"name": SPOT_GROUP, **described},
               "get-health pixtral-backend-5e6f": [{"backend": f"{LINK}/regions/{REGION}/instanceGroups/{SPOT_GROUP}",
                                                    "status": {"kind": "compute#backendServiceGroupHealth"}}]}
    (tmp_path / "answers.json").write_text(json.dumps(answers))
    script = tmp_path / "gcloud"
    script.write_text(FAKE_GCLOUD.format(python=sys.executable, log=str(tmp_path / "calls.log"),
                                         answers=str(tmp_path / "answers.json")))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")


def _zero_outputs() -> dict:
    """gcp-fleet at zero, with the wake plan the program exports for it (mock engine)."""
    from conftest import run_stack

    run = run_stack("gcp-fleet", {"pixtral:onDemandBaseReplicas": "0", "pixtral:autoscale": json.dumps(
        {"minReplicas": 0, "maxReplicas": 4, "targetQpsPerReplica": 2})})
    assert run["error"] is None, run["error"]
    return {**OUTPUTS, "instanceGroups": [SPOT_GROUP], "scaleToZero": run["outputs"]["scaleToZero"]}


def _status_with(tmp_path: Path, outputs: dict, capsys) -> tuple[int, str]:
    from pixtralctl.__main__ import main

    script = tmp_path / "pulumi"
    script.write_text(f"#!{sys.executable}\nimport json\nprint(json.dumps({outputs!r}))\n")
    script.chmod(0o755)
    code = main(["status"])
    return code, capsys.readouterr().out


def test_a_fleet_at_zero_is_idle_with_the_wake_estimate(tmp_path, monkeypatch, capsys):
    _gcloud_at(tmp_path, monkeypatch, {"autoscaler": {"autoscalingPolicy": {"maxNumReplicas": 4}}})
    outputs = _zero_outputs()
    code, out = _status_with(tmp_path, outputs, capsys)
    assert code == 0, out
    # The numbers are the program's own (its scaleToZero output), so a change to the estimate does not touch this.
    wake = outputs["scaleToZero"]
    detection, start = wake["detectionSeconds"], wake["startSeconds"]
    assert out.splitlines()[-1] == (
        f"idle: scaled to zero, the first request wakes it (about {detection + start} s: {detection} s wake "
        f"detection + {start} s start estimate (a boot from the stack's artefact store))")
    described = [json.loads(line) for line in (tmp_path / "calls.log").read_text().splitlines()
                 if "describe" in line]
    assert described and f"--region={REGION}" in described[0] and f"--project={PROJECT}" in described[0]


def test_a_group_whose_autoscaler_keeps_one_and_has_none_fails(tmp_path, monkeypatch, capsys):
    _gcloud_at(tmp_path, monkeypatch, {"targetSize": 1, "autoscaler": {"autoscalingPolicy": {
        "minNumReplicas": 1, "maxNumReplicas": 4}}})
    code, out = _status_with(tmp_path, {**OUTPUTS, "instanceGroups": [SPOT_GROUP]}, capsys)
    assert code == 1, out
    assert out.startswith(f"FAIL: no replica: managed instance group {SPOT_GROUP} keeps at least 1 (its minimum)")
