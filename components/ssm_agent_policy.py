"""What the SSM agent on a VM needs for Session Manager, and nothing that reads parameters.

AWS's `AmazonSSMManagedInstanceCore` also grants `ssm:GetParameter(s)` on every parameter in the account: any
process on the VM could read other stacks' API keys (the account's default `aws/ssm` KMS key decrypts them).
These are the actions of AWS's "minimal Session Manager permissions" instance profile
(https://docs.aws.amazon.com/systems-manager/latest/userguide/getting-started-create-iam-instance-profile.html:
ssm:UpdateInstanceInformation and the four ssmmessages channel actions; its S3 / KMS statements serve encrypted
session logs, which this stack does not configure), plus the ec2messages actions the agent polls for Run Command.
The VM's own secrets are granted separately, by ARN.
"""

from __future__ import annotations

# The one action that takes a resource: the agent registers the instance it runs on.
INSTANCE_ACTIONS = ("ssm:UpdateInstanceInformation",)
INSTANCE_RESOURCE = "arn:aws:ec2:*:*:instance/*"
# Session Manager's channels and Run Command's message polling take no resource ARN (the Service Authorization
# Reference lists none for them): `*` is their only form.
SESSION_MANAGER_ACTIONS = (
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
)


def ssm_agent_policy() -> dict:
    """The role policy document for the SSM agent."""
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": list(INSTANCE_ACTIONS), "Resource": INSTANCE_RESOURCE},
        {"Effect": "Allow", "Action": list(SESSION_MANAGER_ACTIONS), "Resource": "*"},
    ]}
