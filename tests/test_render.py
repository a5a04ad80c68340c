"""`pixtralctl render` for every shipped stack: the cloud-init the program declares, valid manifests, no secret."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_DIR, STACKS, run_stack
from manifest_schemas import validate

from pixtral_deploy.cloudinit import declared_user_data
from pixtral_deploy.manifests import NOT_MANIFESTS
from pixtral_render.cloud import MADE_UP_ON_CREATE
from pixtralctl import resource_summary
from pixtralctl.render import KNOWN_AFTER_UP, write_render


def _render(stack: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    # No Pulumi CLI and no credentials: PATH holds only the venv.
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(out.parent)}
    return subprocess.run([sys.executable, "-m", "pixtralctl", "render", "--stack", stack, "--out", str(out), *extra],
                          capture_output=True, text=True, cwd=PROJECT_DIR, env=env, timeout=300)


_RENDERED: dict[str, Path] = {}


@pytest.fixture
def rendered(stack, tmp_path_factory) -> Path:
    """`pixtralctl render` of `stack`, run once per stack: the tests below only read what it wrote."""
    if stack not in _RENDERED:
        out = tmp_path_factory.mktemp(f"render-{stack}") / "out"
        done = _render(stack, out)
        assert done.returncode == 0, done.stdout + done.stderr
        # A review step that ends in a traceback (even an "ignored" one from the SDK's event loops) reads as a crash.
        assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
        _RENDERED[stack] = out
    return _RENDERED[stack]


def test_render_writes_the_cloud_init_the_program_declares(stack, rendered):
    run = run_stack(stack)
    declared = {r["name"]: declared_user_data(r) for r in run["resources"] if declared_user_data(r)}
    files = {p.stem: p.read_text() for p in (rendered / "cloud-init").glob("*.yaml")}
    assert files == declared


def test_render_writes_valid_manifests_for_every_kubernetes_object(stack, rendered):
    run = run_stack(stack)
    kubernetes_objects = [r for r in run["resources"]
                          if r["type"].startswith("kubernetes:") and r["type"] not in NOT_MANIFESTS]
    manifests = sorted((rendered / "manifests").glob("*.yaml")) if (rendered / "manifests").exists() else []
    assert len(manifests) == len(kubernetes_objects)
    for path in manifests:
        validate(yaml.safe_load(path.read_text()))


def test_render_lists_every_resource_and_no_secret(stack, rendered):
    run = run_stack(stack)
    table = (rendered / "resources.md").read_text()
    for resource in run["resources"]:
        head = f"| `{resource['type']}` | {resource['name']} |"
        (row,) = [line for line in table.splitlines() if line.startswith(head)]
        for option in resource["options"]:
            assert f"{option}=" in row, f"{resource['name']}: option {option} not shown"
    api_key = run["outputs"]["apiKey"]
    for path in rendered.rglob("*"):
        if path.is_file():
            assert api_key not in path.read_text(), f"{path.name} contains the API key"
    assert json.loads((rendered / "outputs.json").read_text())["apiKey"] == "<secret>"


def test_render_reports_bad_config_and_writes_nothing(tmp_path):
    done = _render("aws", tmp_path / "out", "--set", "port=0")
    assert done.returncode == 1
    assert "pixtral:port" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "out").exists()


def test_render_names_the_stacks_for_an_unknown_one(tmp_path):
    done = _render("azure", tmp_path / "out")
    assert done.returncode == 2 and "aws" in done.stderr
    # stacks/ holds the user's files too: the list is what is there, not what shipped.
    assert "stacks in stacks/:" in done.stderr and "shipped" not in done.stderr


def test_render_takes_the_stack_meant_by_a_path_or_a_close_name(tmp_path):
    done = _render("stacks/Pulumi.aws.yaml", tmp_path / "out")
    assert done.returncode == 0 and "rendered stack aws:" in done.stdout, done.stdout + done.stderr
    done = _render("awss", tmp_path / "other")
    assert done.returncode == 2 and "no stack file for 'awss'; did you mean aws?" in done.stderr, done.stderr


def test_render_into_a_file_is_a_one_line_error(tmp_path):
    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    for out in (existing, existing / "render"):
        done = _render("aws", out)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.count("\n") == 1 and "exists and is not a folder" in done.stderr, done.stderr
        assert "Traceback" not in done.stdout + done.stderr
    assert existing.read_text() == "mine"


def test_render_lists_the_files_it_wrote(tmp_path):
    done = _render("aws", tmp_path / "out")
    assert done.returncode == 0, done.stdout + done.stderr
    written = sorted(p for p in (tmp_path / "out").rglob("*") if p.is_file())
    listed = sorted(Path(line.strip()) for line in done.stdout.splitlines() if line.startswith("  "))
    assert listed == written and len(written) >= 4


def _review(stack: str, tmp_path: Path, settings: dict[str, str] | None = None) -> dict[str, str]:
    """resources.md of one program run: each resource's name -> its key-settings cell."""
    run = run_stack(stack, settings)
    assert run["error"] is None, run["error"]
    write_render(run, tmp_path)
    rows = [line.split(" | ") for line in (tmp_path / "resources.md").read_text().splitlines()
            if line.startswith("| `")]
    return {f"{row[0][3:-1]} {row[1]}": row[2].removesuffix(" |") for row in rows}


def test_every_declared_resource_type_has_a_summary():
    missing = {}
    for stack in STACKS:
        for resource in run_stack(stack)["resources"]:
            if not resource_summary.key_settings(resource["type"], resource["inputs"]):
                missing.setdefault(resource["type"], (stack, resource["name"], sorted(resource["inputs"])))
    assert not missing, "\n".join(
        f"resource type {type_!r} (stack {stack}, resource {name}) has no summary in resources.md: add a line "
        f"`{type_!r}: fields(...),` to SUMMARIES in pixtralctl/resource_summary.py naming its security- and "
        f"cost-relevant inputs (it declares {inputs})" for type_, (stack, name, inputs) in missing.items())


def test_review_shows_iam_network_and_secret_access(tmp_path):
    aws = _review("aws", tmp_path / "aws")
    assert '"Action":"ssm:GetParameter"' in aws["aws:iam/rolePolicy:RolePolicy pixtral-read-secrets"]
    assert '"Principal":{"Service":"ec2.amazonaws.com"}' in aws["aws:iam/role:Role pixtral-role"]
    egress = aws["aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule pixtral-out"]
    assert "ipProtocol=-1" in egress and "cidrIpv4=0.0.0.0/0" in egress
    assert '"httpTokens":"required"' in aws["aws:ec2/instance:Instance pixtral"]
    assert "value=(secret, not shown)" in aws["aws:ssm/parameter:Parameter pixtral-api-key"]
    gcp = _review("gcp", tmp_path / "gcp")
    binding = gcp["gcp:secretmanager/secretIamMember:SecretIamMember pixtral-api-key-reader"]
    assert "role=roles/secretmanager.secretAccessor" in binding and "member=serviceAccount:pixtral-gcp@" in binding
    k8s = _review("k8s", tmp_path / "k8s")
    policy = k8s["kubernetes:networking.k8s.io/v1:NetworkPolicy pixtral-api-only"]
    assert 'spec.ingress=[{"ports":[{"port":8081' in policy and 'spec.policyTypes=["Ingress"]' in policy
    assert 'stringData keys=["VLLM_API_KEY"]' in k8s["kubernetes:core/v1:Secret pixtral-secrets"]


@pytest.mark.parametrize(("stack", "resource", "spot_setting"), [
    ("aws", "aws:ec2/instance:Instance pixtral", '"marketType":"spot"'),
    ("gcp", "gcp:compute/instance:Instance pixtral", '"provisioningModel":"SPOT"'),
    ("eks", "aws:eks/nodeGroup:NodeGroup pixtral-gpu", "capacityType=SPOT"),
    ("gke", "gcp:container/nodePool:NodePool pixtral-gpu", "nodeConfig.spot=true"),
])
def test_review_shows_spot_capacity(tmp_path, stack, resource, spot_setting):
    assert spot_setting not in _review(stack, tmp_path / "on-demand")[resource]
    assert spot_setting in _review(stack, tmp_path / "spot", {"pixtral:spot": "true"})[resource]


def test_addresses_the_cloud_assigns_are_known_after_up(stack, tmp_path):
    run = run_stack(stack)
    write_render(run, tmp_path)
    outputs = json.loads((tmp_path / "outputs.json").read_text())
    assert outputs["endpoint"] == outputs["baseUrl"] == KNOWN_AFTER_UP
    for name in ("publicIp", "instanceId"):
        assert outputs.get(name, KNOWN_AFTER_UP) == KNOWN_AFTER_UP
    for document in ("outputs.json", "resources.md"):
        text = (tmp_path / document).read_text()
        made_up = [value for value in MADE_UP_ON_CREATE if value in text]
        assert not made_up, f"{document} shows values the mock engine made up: {made_up}"
