"""Every AWS and GCP resource a shipped stack declares, through checkov's Terraform rules and parliament's IAM rules.

The program's mock run of each stack is written as Terraform plan JSON (tests/tfplan.py); one checkov run scans all
of them. A finding fails the test unless tests/checkov-cloud-skips.yaml explains it, and a skip that matches no
finding fails too, so the file says exactly what the deployed resources do not satisfy, and why.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_DIR, STACKS, required_tool, resources_of, run_stack
from tfplan import is_cloud_resource, terraform_plan

SKIPS_FILE = Path(__file__).parent / "checkov-cloud-skips.yaml"
CLOUD_STACKS = [s for s in STACKS if any(is_cloud_resource(r) for r in run_stack(s)["resources"])]
# The created clusters once their API is narrowed: the open-endpoint findings the skips explain must go away.
NARROW_API = {"pixtral:clusterApiCidrs": '["198.51.100.0/24"]'}
NARROWED = {f"{stack}-narrow-api": (stack, NARROW_API) for stack in ("eks", "gke") if stack in CLOUD_STACKS}
OPEN_API_CHECKS = {"CKV_AWS_38", "CKV_GCP_18"}
# The fleets' other HTTPS shapes: the AWS fleet's public ACM certificate with its validation record and alias; the
# GCP fleet's regional certificate and policy (internal) and its Google-managed certificate.
FLEET_SHAPES = {
    "aws-fleet-domain": ("aws-fleet", {"pixtral:domain": "pixtral.example.com",
                                       "pixtral:dnsZone": "Z0123456789ABCDEFGHIJ"}),
    "gcp-fleet-internal": ("gcp-fleet", {"pixtral:internal": "true"}),
    "gcp-fleet-domain": ("gcp-fleet", {"pixtral:domain": "pixtral.example.com", "pixtral:dnsZone": "example-com"}),
}
# With pixtral:domain every target that can have one also declares its DNS record (Route 53 / Cloud DNS).
DOMAIN = {"pixtral:domain": "pixtral.example.com"}
ZONES = {"aws": "Z0123456789ABCDEFGHIJ", "eks": "Z0123456789ABCDEFGHIJ", "gcp": "example-com", "gke": "example-com"}
WITH_DOMAIN = {f"{stack}-domain": (stack, {**DOMAIN, "pixtral:dnsZone": ZONES[stack]}) for stack in ZONES
               if stack in CLOUD_STACKS}
VARIANTS = {**NARROWED, **WITH_DOMAIN,
            **{name: shape for name, shape in FLEET_SHAPES.items() if shape[0] in CLOUD_STACKS}}


def _checkov() -> str:
    return required_tool("checkov", "pip install checkov==3.3.30 into .venv-checkov",
                         (str(PROJECT_DIR / ".venv-checkov" / "bin" / "checkov"),))


@dataclass(frozen=True)
class Scan:
    resource_count: int
    # stack -> {"passed": [check, ...], "failed": [check, ...]}, each check as checkov's JSON report has it.
    results: dict[str, dict[str, list[dict]]]


def scan_stacks(folder: Path, runs: dict[str, tuple[str, dict[str, str]]]) -> Scan:
    """One checkov run over the plans of `runs` (name -> stack and config settings); a run takes seconds, so
    every stack goes in the same one."""
    for name, (stack, settings) in runs.items():
        (folder / f"{name}.json").write_text(json.dumps(terraform_plan(run_stack(stack, settings)), indent=1))
    done = subprocess.run([_checkov(), "--framework", "terraform_plan", "--skip-download", "-o", "json",
                           "-d", str(folder)], capture_output=True, text=True, timeout=300)
    assert done.stdout.lstrip().startswith("{"), f"checkov failed:\n{done.stdout}\n{done.stderr}"
    report = json.loads(done.stdout)
    assert not report["summary"]["parsing_errors"], f"checkov could not read the plans: {report['summary']}"
    results: dict[str, dict[str, list[dict]]] = {name: {"passed": [], "failed": []} for name in runs}
    for outcome in ("passed", "failed"):
        for check in report["results"][f"{outcome}_checks"]:
            results[Path(check["file_path"]).stem][outcome].append(check)
    return Scan(report["summary"]["resource_count"], results)


@pytest.fixture(scope="module")
def scanned(tmp_path_factory) -> Scan:
    return scan_stacks(tmp_path_factory.mktemp("plans"), {**{s: (s, {}) for s in CLOUD_STACKS}, **VARIANTS})


def _skips() -> dict[str, str | dict[str, str]]:
    return yaml.safe_load(SKIPS_FILE.read_text()) or {}


def _skip_reason(check_id: str, resource_type: str) -> str | None:
    entry = _skips().get(check_id)
    if isinstance(entry, dict):
        return entry.get(resource_type)
    return entry


def _type_of(check: dict) -> str:
    return check["resource"].split(".", 1)[0]


def _count(results: dict[str, list[dict]]) -> str:
    return f"{len(results['passed'])} passed / {len(results['failed'])} failed"


def test_checkov_reads_every_declared_cloud_resource(scanned):
    # A resource the translation dropped, or one checkov could not read, would pass every rule unseen.
    runs = [run_stack(s) for s in CLOUD_STACKS] + [run_stack(s, settings) for s, settings in VARIANTS.values()]
    declared = sum(is_cloud_resource(r) for run in runs for r in run["resources"])
    assert scanned.resource_count == declared


@pytest.mark.parametrize("stack", CLOUD_STACKS + list(VARIANTS))
def test_no_unexplained_cloud_finding(stack, scanned):
    results = scanned.results[stack]
    unexplained = sorted(f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results["failed"]
                         if not _skip_reason(c["check_id"], _type_of(c)))
    assert not unexplained, (f"{stack} ({_count(results)}): fix these or explain them in {SKIPS_FILE.name}:\n"
                             + "\n".join(unexplained))


@pytest.mark.parametrize("name", NARROWED)
def test_a_narrowed_cluster_api_passes_the_open_endpoint_checks(name, scanned):
    results = scanned.results[name]
    assert not [c["check_id"] for c in results["failed"] if c["check_id"] in OPEN_API_CHECKS]
    assert {c["check_id"] for c in results["passed"]} & OPEN_API_CHECKS


def test_every_cloud_skip_still_matches_a_finding(scanned):
    found = {(c["check_id"], _type_of(c)) for results in scanned.results.values() for c in results["failed"]}
    stale = []
    for check_id, entry in _skips().items():
        types = entry.keys() if isinstance(entry, dict) else [None]
        for resource_type in types:
            if not any(f[0] == check_id and resource_type in (None, f[1]) for f in found):
                stale.append(f"{check_id} {resource_type or '(any type)'}")
    assert not stale, f"{SKIPS_FILE.name} explains findings that no longer occur, remove them: {stale}"


def _policy_documents(stack: str) -> list[tuple[str, str]]:
    """(where, document) of every IAM policy the stack declares: roles' trust policies, inline policies and bucket
    policies."""
    run = run_stack(stack)
    documents = [(f"{r['name']} assume-role policy", _as_grant_on(r["inputs"]["assumeRolePolicy"], r["outputs"]["arn"]))
                 for r in resources_of(run, "aws:iam/role:Role")]
    for type_ in ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy", "aws:s3/bucketPolicy:BucketPolicy"):
        documents += [(f"{r['name']} policy", r["inputs"]["policy"]) for r in resources_of(run, type_)]
    return documents


def _as_grant_on(trust_policy: str, role_arn: str) -> str:
    """parliament reads identity policies; a trust policy's resource is the role itself, so it is checked as the
    grant it is: these principals may call these actions on this role."""
    policy = json.loads(trust_policy)
    for statement in policy["Statement"]:
        assert "Resource" not in statement, "a trust policy has no Resource element"
        statement["Resource"] = role_arn
    return json.dumps(policy)


# What a trust policy is for, not a flaw in one: its principal gets the role's credentials by sts:AssumeRole.
TRUST_POLICY_PURPOSE = {"CREDENTIALS_EXPOSURE"}
AWS_STACKS = [s for s in CLOUD_STACKS if resources_of(run_stack(s), "aws:iam/role:Role")]


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_iam_policies_pass_parliament(stack):
    from parliament import analyze_policy_string

    documents = _policy_documents(stack)
    assert documents, f"{stack} declares IAM roles, so it has policies to check"
    problems = []
    for where, document in documents:
        findings = analyze_policy_string(document, include_community_auditors=True).findings
        problems += [f"{where}: {f.issue} {f.detail}" for f in findings
                     if not (where.endswith("assume-role policy") and f.issue in TRUST_POLICY_PURPOSE)]
    assert not problems, "\n".join(problems)
