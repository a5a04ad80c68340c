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
