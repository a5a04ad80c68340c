"""The AWS VM's instance role: Session Manager works, and the only parameters it can read are this stack's.

The role's effective grants are its inline policies plus its attached managed policies. Every managed policy a
role here may carry is listed below with the document AWS publishes for its default version; an ARN not listed
fails the test, since its grants would be unknown.
"""

from __future__ import annotations

import fnmatch
import json

import pytest
from conftest import resources_of, run_stack, stacks_of

AWS = stacks_of("aws")
# https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonSSMManagedInstanceCore.html (v2, default)
MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore": [
        {"Effect": "Allow", "Resource": "*", "Action": [
            "ssm:DescribeAssociation", "ssm:GetDeployablePatchSnapshotForInstance", "ssm:GetDocument",
            "ssm:DescribeDocument", "ssm:GetManifest", "ssm:GetParameter", "ssm:GetParameters",
            "ssm:ListAssociations", "ssm:ListInstanceAssociations", "ssm:PutInventory", "ssm:PutComplianceItems",
            "ssm:PutConfigurePackageResult", "ssm:UpdateAssociationStatus", "ssm:UpdateInstanceAssociationStatus",
            "ssm:UpdateInstanceInformation"]},
        {"Effect": "Allow", "Resource": "*", "Action": [
            "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel",
            "ssmmessages:OpenDataChannel"]},
        {"Effect": "Allow", "Resource": "*", "Action": [
            "ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage",
            "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply"]},
    ],
}
# AWS's minimal Session Manager permissions for an instance profile:
# https://docs.aws.amazon.com/systems-manager/latest/userguide/getting-started-create-iam-instance-profile.html
SESSION_MANAGER_MINIMUM = ("ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel",
                           "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel",
                           "ssmmessages:OpenDataChannel")
# Every SSM action that returns a parameter's value.
PARAMETER_READS = ("ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:GetParameterHistory")


def _as_list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _role_statements(run: dict) -> list[dict]:
    """The Allow/Deny statements in force for the instance role: inline policies and attached managed ones."""
    (profile,) = resources_of(run, "aws:iam/instanceProfile:InstanceProfile")
    (role,) = [r for r in resources_of(run, "aws:iam/role:Role") if r["outputs"]["name"] == profile["inputs"]["role"]]
    # Policies name the role by name or by id; the mock engine's ids are "<resource name>-id".
    references = {role["outputs"]["name"], f"{role['name']}-id"}
    statements = []
    for policy in resources_of(run, "aws:iam/rolePolicy:RolePolicy"):
        assert policy["inputs"]["role"] in references, f"inline policy {policy['name']} is on another role"
        statements += json.loads(policy["inputs"]["policy"])["Statement"]
    for attachment in resources_of(run, "aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        arn = attachment["inputs"]["policyArn"]
        assert arn in MANAGED_POLICIES, f"{arn} is attached, but its document is not known to this test"
        statements += MANAGED_POLICIES[arn]
    return statements


def _allowed(statements: list[dict], action: str) -> list[str]:
    """The resources `action` is allowed on (patterns as written)."""
    resources = []
    for statement in statements:
        assert "NotAction" not in statement and "NotResource" not in statement, statement
        if statement["Effect"] == "Allow" and any(fnmatch.fnmatchcase(action.lower(), pattern.lower())
                                                  for pattern in _as_list(statement["Action"])):
            resources += _as_list(statement["Resource"])
    return resources


@pytest.mark.parametrize("stack", AWS)
def test_instance_role_reads_no_parameter_but_this_stacks_own(stack):
    run = run_stack(stack, secrets={"pixtral:hfToken": "hf_test_token_value_0123456789"})
    own = {p["outputs"]["arn"] for p in resources_of(run, "aws:ssm/parameter:Parameter")}
    statements = _role_statements(run)
    for action in PARAMETER_READS:
        beyond = set(_allowed(statements, action)) - own
        assert not beyond, f"the VM's role may call {action} on {sorted(beyond)}: other stacks' keys are readable"
    assert set(_allowed(statements, "ssm:GetParameter")) == own, "the VM must still read its own secrets"


@pytest.mark.parametrize("stack", AWS)
def test_instance_role_keeps_session_manager_access(stack):
    statements = _role_statements(run_stack(stack))
    for action in SESSION_MANAGER_MINIMUM:
        # Registering the instance takes the instance's ARN as its resource; the channels take none.
        needed = "arn:aws:ec2:region:account:instance/i-0123" if action.startswith("ssm:") else "*"
        assert any(fnmatch.fnmatchcase(needed, pattern) for pattern in _allowed(statements, action)), \
            f"the SSM agent needs {action} on {needed} for Session Manager"


# The artefact store (pixtral:warmStarts, on by default): what the replicas' role may do to S3.
S3_WRITES_NEVER_ALLOWED = ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:DeleteBucket", "s3:PutBucketPolicy",
                           "s3:DeleteBucketPolicy", "s3:PutLifecycleConfiguration", "s3:PutBucketPublicAccessBlock",
                           "s3:PutBucketOwnershipControls", "s3:PutEncryptionConfiguration", "s3:PutObjectAcl",
                           "s3:PutBucketAcl", "s3:PutBucketVersioning", "s3:BypassGovernanceRetention")
# Objects the boot publishes (pixtral_deploy/artefacts.py's layout), and places it never writes.
PUBLISHED = ("vllm/0.32.0/py3.12/venv.tar", "vllm/0.32.0/py3.12/manifest.json",
             "compile/0.32.0/nvidia-l40s-x1/cache.tar", "model/mistralai--Pixtral-12B-2409/hub.tar",
             "claims/model/mistralai--Pixtral-12B-2409")
NOT_PUBLISHED = ("manifest.json", "other/venv.tar", "vllmx/0.32.0/venv.tar", "claims", "")


def _store_arn(run: dict) -> str:
    (bucket,) = resources_of(run, "aws:s3/bucket:Bucket")
    return bucket["outputs"]["arn"]


def _matches(resources: list[str], arn: str) -> bool:
    return any(fnmatch.fnmatchcase(arn, pattern) for pattern in resources)


@pytest.mark.parametrize("stack", AWS)
def test_instance_role_reads_and_publishes_artefacts_in_its_stacks_bucket_only(stack):
    run = run_stack(stack)
    statements = _role_statements(run)
    bucket = _store_arn(run)
    assert _allowed(statements, "s3:GetObject") == [f"{bucket}/*"], "read every artefact of this bucket, no other"
    # Without ListBucket a missing manifest answers 403, which the boot could not tell from a broken role.
    assert _allowed(statements, "s3:ListBucket") == [bucket]
    for action in ("s3:PutObject", "s3:AbortMultipartUpload"):
        writable = _allowed(statements, action)
        assert all(_matches(writable, f"{bucket}/{key}") for key in PUBLISHED), (action, writable)
        assert not any(_matches(writable, f"{bucket}/{key}") for key in NOT_PUBLISHED), (action, writable)
        assert not any(_matches(writable, f"arn:aws:s3:::another-bucket/{key}") for key in PUBLISHED)


@pytest.mark.parametrize("stack", AWS)
def test_instance_role_cannot_delete_artefacts_or_change_the_bucket(stack):
    statements = _role_statements(run_stack(stack))
    granted = {action: _allowed(statements, action) for action in S3_WRITES_NEVER_ALLOWED}
    assert not any(granted.values()), f"the replicas' role may {[a for a, r in granted.items() if r]}"


@pytest.mark.parametrize("stack", AWS)
def test_instance_role_has_no_s3_right_without_warm_starts(stack):
    statements = _role_statements(run_stack(stack, {"pixtral:warmStarts": "false"}))
    s3 = [s for s in statements if any(a.lower().startswith("s3:") or a == "*" for a in _as_list(s["Action"]))]
    assert s3 == [], s3
