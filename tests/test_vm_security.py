"""The security a user expects from a VM stack on day one."""

from __future__ import annotations

import json
import re

import pytest
from conftest import STACKS, resources_of, run_stack, target_of

from components.gcp_shared import service_account_id

AWS = [s for s in STACKS if target_of(s) == "aws"]
# One VM per stack (a fleet's replicas are checked through its launch template in tests/test_aws_fleet.py).
AWS_VMS = [s for s in AWS if resources_of(run_stack(s), "aws:ec2/instance:Instance")]
GCP = [s for s in STACKS if target_of(s) == "gcp"]
# One VM (replicas 1, no autoscale); the fleet's own checks are in test_gcp_fleet.py.
GCP_VM = [s for s in GCP if resources_of(run_stack(s), "gcp:compute/instance:Instance")]
# What a GCP replica boots from: the VM itself, or each instance template of a fleet.
GCP_MACHINES = ("gcp:compute/instance:Instance", "gcp:compute/instanceTemplate:InstanceTemplate")


def _serves_tls(run: dict) -> bool:
    """Whether the VMs serve HTTPS themselves, and so hold a TLS key: pixtral:tls on, and no load balancer in front
    that terminates it (the GCP fleet's does; the AWS fleet stack sets pixtral:tls false)."""
    return run["config"].get("pixtral:tls", "true") != "false" and not any(
        r["type"].endswith(":GpuFleet") for r in run["resources"])


@pytest.mark.parametrize("stack", AWS)
def test_aws_only_the_api_port_is_open_and_only_to_allowed_cidrs(stack):
    run = run_stack(stack, {"pixtral:allowedCidrs": '["198.51.100.0/24", "2001:db8::/32"]', "pixtral:port": "9443"})
    rules = resources_of(run, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    # A fleet's replicas admit the balancer's group, not addresses (tests/test_aws_fleet.py checks which group).
    from_addresses = [r for r in rules if "referencedSecurityGroupId" not in r["inputs"]]
    assert {(r["inputs"].get("cidrIpv4") or r["inputs"].get("cidrIpv6")) for r in from_addresses} == {
        "198.51.100.0/24", "2001:db8::/32"}
    for rule in rules:
        opened = (rule["inputs"]["fromPort"], rule["inputs"]["toPort"], rule["inputs"]["ipProtocol"])
        assert opened == (9443, 9443, "tcp"), f"rule {rule['name']} opens {opened}, not only the API port"
    assert run["outputs"]["endpoint"].endswith(":9443")


@pytest.mark.parametrize("stack", AWS_VMS)
def test_aws_instance_requires_imdsv2_encrypts_disk_and_has_no_ssh_key(stack):
    (instance,) = resources_of(run_stack(stack), "aws:ec2/instance:Instance")
    inputs = instance["inputs"]
    assert inputs["metadataOptions"]["httpTokens"] == "required", "IMDSv1 must be off"
    assert inputs["rootBlockDevice"]["encrypted"] is True
    assert "keyName" not in inputs, "no SSH key: access is through SSM Session Manager"
    assert inputs["userDataReplaceOnChange"] is True


@pytest.mark.parametrize("stack", AWS)
def test_aws_instance_role_reads_only_its_own_parameters(stack):
    run = run_stack(stack, secrets={"pixtral:hfToken": "hf_test_token_value"})
    params = resources_of(run, "aws:ssm/parameter:Parameter")
    assert {p["inputs"]["type"] for p in params} == {"SecureString"}
    # The TLS private key's parameter only where the VM serves HTTPS (the AWS fleet stack sets pixtral:tls false).
    assert len(params) == 2 + _serves_tls(run), "one parameter each for the API key, the HF token (and the TLS key)"
    (policy,) = [p for p in resources_of(run, "aws:iam/rolePolicy:RolePolicy") if p["name"].endswith("-read-secrets")]
    (statement,) = json.loads(policy["inputs"]["policy"])["Statement"]
    assert (statement["Effect"], statement["Action"]) == ("Allow", "ssm:GetParameter")
    assert sorted(statement["Resource"]) == sorted(p["outputs"]["arn"] for p in params)
    # No managed policy: AmazonSSMManagedInstanceCore reads every parameter (tests/test_instance_role.py).
    assert resources_of(run, "aws:iam/rolePolicyAttachment:RolePolicyAttachment") == []


@pytest.mark.parametrize("stack", AWS_VMS)
def test_aws_spot_keeps_the_disk_through_interruptions(stack):
    (instance,) = resources_of(run_stack(stack, {"pixtral:spot": "true"}), "aws:ec2/instance:Instance")
    market = instance["inputs"]["instanceMarketOptions"]
    assert market["marketType"] == "spot"
    assert market["spotOptions"]["instanceInterruptionBehavior"] == "stop"


@pytest.mark.parametrize("stack", GCP)
def test_gcp_gpu_vm_terminates_on_host_maintenance(stack):
    for spot in ("false", "true"):
        run = run_stack(stack, {"pixtral:spot": spot} if spot == "true" else
                        {"pixtral:spot": spot, "pixtral:onDemandBaseReplicas": "0"})
        machines = [r for r in run["resources"] if r["type"] in GCP_MACHINES]
        assert machines, run["error"]
        for machine in machines:
            assert machine["inputs"]["scheduling"]["onHostMaintenance"] == "TERMINATE"
            assert machine["inputs"]["guestAccelerators"][0]["type"] == "nvidia-l4"


@pytest.mark.parametrize("stack", GCP_VM)
def test_gcp_firewall_opens_only_the_api_port_to_allowed_cidrs(stack):
    run = run_stack(stack, {"pixtral:allowedCidrs": '["198.51.100.0/24", "2001:db8::/32"]'})
    walls = resources_of(run, "gcp:compute/firewall:Firewall")
    assert sorted(tuple(w["inputs"]["sourceRanges"]) for w in walls) == [("198.51.100.0/24",), ("2001:db8::/32",)]
    for wall in walls:
        assert wall["inputs"]["allows"] == [{"protocol": "tcp", "ports": ["8081"]}], f"{wall['name']} opens more"
    (instance,) = resources_of(run, "gcp:compute/instance:Instance")
    assert set(walls[0]["inputs"]["targetTags"]) <= set(instance["inputs"]["tags"])


@pytest.mark.parametrize("stack", GCP_VM)
def test_gcp_vm_lives_in_the_stacks_own_network_not_the_projects_default(stack):
    # The project's `default` network usually carries default-allow-ssh / -rdp rules open to the Internet.
    run = run_stack(stack)
    (network,) = resources_of(run, "gcp:compute/network:Network")
    (subnet,) = resources_of(run, "gcp:compute/subnetwork:Subnetwork")
    (instance,) = resources_of(run, "gcp:compute/instance:Instance")
    assert network["inputs"]["autoCreateSubnetworks"] is False
    (interface,) = instance["inputs"]["networkInterfaces"]
    assert interface["network"] == network["outputs"]["selfLink"] != "default"
    assert interface["subnetwork"] == subnet["outputs"]["selfLink"]
    for wall in resources_of(run, "gcp:compute/firewall:Firewall"):
        assert wall["inputs"]["network"] == network["outputs"]["selfLink"], "a rule on another network"


@pytest.mark.parametrize("stack", GCP_VM)
def test_gcp_vm_uses_the_network_the_user_names(stack):
    run = run_stack(stack, {"pixtral:network": "team-vpc", "pixtral:subnetwork": "team-subnet"})
    assert resources_of(run, "gcp:compute/network:Network") == []
    (instance,) = resources_of(run, "gcp:compute/instance:Instance")
    assert instance["inputs"]["networkInterfaces"][0]["network"] == "team-vpc"
    assert instance["inputs"]["networkInterfaces"][0]["subnetwork"] == "team-subnet"
    refused = run_stack(stack, {"pixtral:subnetwork": "team-subnet"})
    assert "pixtral:subnetwork: team-subnet is not allowed" in refused["error"] and refused["resources"] == []


@pytest.mark.parametrize("stack", GCP_VM)
def test_gcp_vm_blocks_project_ssh_keys_and_is_a_shielded_vm(stack):
    (instance,) = resources_of(run_stack(stack), "gcp:compute/instance:Instance")
    assert instance["inputs"]["metadata"]["block-project-ssh-keys"] == "TRUE"
    assert instance["inputs"]["metadata"]["enable-oslogin"] == "TRUE"
    shielded = instance["inputs"]["shieldedInstanceConfig"]
    assert shielded["enableVtpm"] and shielded["enableIntegrityMonitoring"]


@pytest.mark.parametrize("stack", GCP)
def test_gcp_vm_identity_reads_only_its_own_secrets(stack):
    run = run_stack(stack, secrets={"pixtral:hfToken": "hf_test_token_value"})
    members = resources_of(run, "gcp:secretmanager/secretIamMember:SecretIamMember")
    secrets = {s["inputs"]["secretId"] for s in resources_of(run, "gcp:secretmanager/secret:Secret")}
    # The API key, the HF token and (serving HTTPS) the TLS private key.
    assert {m["inputs"]["secretId"] for m in members} == secrets and len(secrets) == 2 + _serves_tls(run)
    (account,) = resources_of(run, "gcp:serviceaccount/account:Account")
    assert {m["inputs"]["member"] for m in members} == {f"serviceAccount:{account['outputs']['email']}"}
    assert {m["inputs"]["role"] for m in members} == {"roles/secretmanager.secretAccessor"}


@pytest.mark.parametrize("stack", GCP)
def test_gcp_vm_identity_is_the_stacks_own(stack):
    (account,) = resources_of(run_stack(stack), "gcp:serviceaccount/account:Account")
    assert account["inputs"]["accountId"] == service_account_id(stack, "pixtral")
    assert stack in account["inputs"]["accountId"]


def test_gcp_service_account_ids_are_valid_and_apart_for_every_stack_name():
    # Two stacks in one project (a team's dev and prod) must not ask for the same account id: GCP answers 409.
    stacks = ["gcp", "gcp-dev", "gcp-prod", "Team.Vision_Prod", "a-very-long-stack-name-for-team-vision-eu-1",
              "a-very-long-stack-name-for-team-vision-eu-2"]
    ids = [service_account_id(stack, "pixtral") for stack in stacks]
    assert len(set(ids)) == len(ids), ids
    for account_id in ids:
        assert re.fullmatch(r"[a-z][-a-z0-9]{4,28}[a-z0-9]", account_id), account_id


@pytest.mark.parametrize("stack", [s for s in GCP if s not in GCP_VM])
def test_gcp_fleet_replicas_live_in_the_stacks_own_network(stack):
    run = run_stack(stack)
    (network,) = resources_of(run, "gcp:compute/network:Network")
    templates = resources_of(run, "gcp:compute/instanceTemplate:InstanceTemplate")
    assert templates
    for template in templates:
        assert template["inputs"]["networkInterfaces"][0]["network"] == network["outputs"]["selfLink"]
    for wall in resources_of(run, "gcp:compute/firewall:Firewall"):
        assert wall["inputs"]["network"] == network["outputs"]["selfLink"], "a rule on another network"
