"""Pixtral as a service on GCP (stack gcp-fleet): what `pulumi up` declares, run through the real program."""

from __future__ import annotations

import json
import math
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import environment_file, required_tool, resources_of, run_stack, vm_files, vm_user_data
from test_vm_updates import _fake_store_cli

from components.gcp_fleet import GOOGLE_LB_RANGES, LB_UTILIZATION_TARGET, PROXY_ONLY_SUBNET_RANGE
from pixtral_deploy.catalog import GPU_ZONES
from pixtral_deploy.cloudinit import METRICS_TOKEN_FILE
from pixtral_deploy.coldstart import cold_start, later_boot, wake_from_zero
from pixtral_deploy.fleet_plan import health_grace_seconds
from pixtral_deploy.ops_agent import OPS_AGENT_CONFIG, QUEUE_METRIC
from pixtral_deploy.scaling import parse_autoscale
from pixtral_deploy.spec import load_spec
from pixtral_deploy.targets.gcp import Gcp

STACK = "gcp-fleet"
GROUP = "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
AUTOSCALER = "gcp:compute/regionAutoscaler:RegionAutoscaler"
BACKEND = "gcp:compute/backendService:BackendService"
FIREWALL = "gcp:compute/firewall:Firewall"
HEALTH_CHECK = "gcp:compute/healthCheck:HealthCheck"
NARROW = ["198.51.100.0/24", "2001:db8::/32"]


def _ok(stack: str = STACK, settings: dict | None = None) -> dict:
    run = run_stack(stack, settings)
    assert run["error"] is None, run["error"]
    return run


def _groups(run: dict) -> dict[str, dict]:
    """Each group's inputs by capacity (the template it runs says standard or Spot)."""
    templates = {t["outputs"]["selfLinkUnique"]: t for t in resources_of(run, TEMPLATE)}
    groups = {}
    for group in resources_of(run, GROUP):
        template = templates[group["inputs"]["versions"][0]["instanceTemplate"]]
        groups[template["inputs"]["labels"]["capacity"]] = {**group["inputs"], "template": template["inputs"]}
    return groups


def _autoscalers(run: dict) -> dict[str, dict]:
    """Each autoscaler's policy by the capacity of the group it drives."""
    by_group = {f"{g['name']}-id": capacity for capacity, g in
                ((g["inputs"]["baseInstanceName"].rsplit("-", 1)[1], g) for g in resources_of(run, GROUP))}
    return {by_group[a["inputs"]["target"]]: a["inputs"]["autoscalingPolicy"] for a in resources_of(run, AUTOSCALER)}


def _deployment(run: dict):
    return load_spec({k.split(":", 1)[1]: v for k, v in run["config"].items() if k.startswith("pixtral:")})


def _shape(run: dict) -> list[tuple[str, str]]:
    return sorted((r["type"], r["name"]) for r in run["resources"])


def test_one_replica_keeps_the_single_vm():
    run = _ok("gcp")
    assert resources_of(run, "gcp:compute/instance:Instance") and not resources_of(run, GROUP)


@pytest.mark.parametrize("settings", [
    ({"pixtral:replicas": "2"}, {"pixtral:replicas": "50"}),
    ({"pixtral:autoscale": '{"minReplicas": 2, "maxReplicas": 2, "targetQpsPerReplica": 2}'},
     {"pixtral:autoscale": '{"minReplicas": 2, "maxReplicas": 50, "targetQpsPerReplica": 2}'}),
], ids=["fixed", "autoscaled"])
def test_two_and_fifty_replicas_declare_the_same_resources(settings):
    small, large = (_ok(STACK, {"pixtral:spot": "false", "pixtral:onDemandBaseReplicas": "0",
                                **({"pixtral:autoscale": ""} if "pixtral:replicas" in s else {}), **s})
                    for s in settings)
    assert _shape(small) == _shape(large)
    assert len(resources_of(large, GROUP)) == 1


def test_autoscaled_spot_fleet_keeps_the_on_demand_base_and_scales_the_rest_on_spot():
    run = _ok()  # the stack: autoscale 1-4, spot, onDemandBaseReplicas 1
    groups = _groups(run)
    assert set(groups) == {"standard", "spot"}
    assert groups["standard"]["targetSize"] == 1, "the on-demand base is fixed"
    assert "provisioningModel" not in groups["standard"]["template"]["scheduling"]
    assert groups["spot"]["template"]["scheduling"]["provisioningModel"] == "SPOT"
    assert "targetSize" not in groups["spot"], "the autoscaler owns the Spot group's size"
    policies = _autoscalers(run)
    assert set(policies) == {"spot"}, "the base group is not autoscaled"
    assert (policies["spot"]["minReplicas"], policies["spot"]["maxReplicas"]) == (0, 3)
    for group in groups.values():
        assert group["template"]["scheduling"]["onHostMaintenance"] == "TERMINATE"


def test_fixed_spot_fleet_splits_base_and_spot():
    run = _ok("gcp", {"pixtral:replicas": "5", "pixtral:spot": "true", "pixtral:onDemandBaseReplicas": "2"})
    groups = _groups(run)
    assert (groups["standard"]["targetSize"], groups["spot"]["targetSize"]) == (2, 3)
    assert not resources_of(run, AUTOSCALER)


def test_without_spot_every_replica_is_standard():
    run = _ok(STACK, {"pixtral:spot": "false", "pixtral:onDemandBaseReplicas": "0"})
    groups = _groups(run)
    assert set(groups) == {"standard"}
    assert groups["standard"]["template"]["scheduling"].get("provisioningModel") in (None, "STANDARD")
    assert (_autoscalers(run)["standard"]["minReplicas"], _autoscalers(run)["standard"]["maxReplicas"]) == (1, 4)


def test_health_check_is_vllms_health_on_the_api_port():
    run = _ok(STACK, {"pixtral:port": "9000"})
    (check,) = resources_of(run, HEALTH_CHECK)
    assert check["inputs"]["httpHealthCheck"] == {"port": 9000, "requestPath": "/health"}
    (backend,) = resources_of(run, BACKEND)
    assert backend["inputs"]["healthChecks"] == f"{check['name']}-id"
    for group in _groups(run).values():
        assert group["namedPorts"] == [{"name": backend["inputs"]["portName"], "port": 9000}]
        assert group["autoHealingPolicies"]["healthCheck"] == f"{check['name']}-id"
    assert run["outputs"]["endpoint"] == "https://198.51.100.20:9000"


def test_autohealing_waits_for_the_cold_start():
    run = _ok()
    deployment = _deployment(run)
    estimate = cold_start(deployment)
    for group in _groups(run).values():
        delay = group["autoHealingPolicies"]["initialDelaySec"]
        assert delay == health_grace_seconds(deployment)
        assert delay >= 2 * estimate.total, f"{delay} s would recreate replicas still loading ({estimate.total:.0f} s)"
        assert delay > 300, "never the platform's default of a few minutes"


def test_updates_add_new_replicas_before_removing_old_ones():
    run = _ok()
    for group in _groups(run).values():
        policy = group["updatePolicy"]
        assert policy["type"] == "PROACTIVE" and policy["maxUnavailableFixed"] == 0
        assert policy["maxSurgeFixed"] >= max(1, len(group["distributionPolicyZones"]))
    for template in resources_of(run, TEMPLATE):
        assert not template["options"].get("deleteBeforeReplace")


def test_replicas_take_the_api_port_only_from_googles_load_balancer_ranges():
    run = _ok(STACK, {"pixtral:allowedCidrs": json.dumps(NARROW)})
    (wall,) = resources_of(run, FIREWALL)
    assert sorted(wall["inputs"]["sourceRanges"]) == sorted(GOOGLE_LB_RANGES)
    assert wall["inputs"]["allows"] == [{"protocol": "tcp", "ports": ["8081"]}]
    for template in resources_of(run, TEMPLATE):
        assert set(wall["inputs"]["targetTags"]) <= set(template["inputs"]["tags"])


def test_allowed_cidrs_are_enforced_by_cloud_armor_at_the_load_balancer():
    cidrs = [f"198.51.{i}.0/24" for i in range(11)] + ["2001:db8::/32"]
    run = _ok(STACK, {"pixtral:allowedCidrs": json.dumps(cidrs)})
    (policy,) = resources_of(run, "gcp:compute/securityPolicy:SecurityPolicy")
    rules = sorted(policy["inputs"]["rules"], key=lambda rule: rule["priority"])
    allowed = [c for rule in rules if rule["action"] == "allow" for c in rule["match"]["config"]["srcIpRanges"]]
    assert sorted(allowed) == sorted(cidrs)
    assert rules[-1]["action"].startswith("deny") and rules[-1]["match"]["config"]["srcIpRanges"] == ["*"]
    assert rules[-1]["priority"] == 2147483647, "the default rule denies"
    (backend,) = resources_of(run, BACKEND)
    assert backend["inputs"]["securityPolicy"] == policy["outputs"]["selfLink"]
    # Everyone allowed: no policy to pay for.
    assert not resources_of(_ok(), "gcp:compute/securityPolicy:SecurityPolicy")


def test_internal_load_balancer_has_an_internal_scheme_and_no_public_address():
    run = _ok(STACK, {"pixtral:internal": "true"})
    types = {r["type"] for r in run["resources"]}
    public = {"gcp:compute/globalAddress:GlobalAddress", "gcp:compute/globalForwardingRule:GlobalForwardingRule",
              BACKEND}
    assert not types & public
    (address,) = resources_of(run, "gcp:compute/address:Address")
    assert address["inputs"]["addressType"] == "INTERNAL"
    (rule,) = resources_of(run, "gcp:compute/forwardingRule:ForwardingRule")
    (backend,) = resources_of(run, "gcp:compute/regionBackendService:RegionBackendService")
    assert rule["inputs"]["loadBalancingScheme"] == backend["inputs"]["loadBalancingScheme"] == "INTERNAL_MANAGED"
    assert run["outputs"]["endpoint"].startswith("https://10."), run["outputs"]["endpoint"]
    (wall,) = resources_of(run, FIREWALL)
    assert sorted(wall["inputs"]["sourceRanges"]) == sorted(GOOGLE_LB_RANGES + (PROXY_ONLY_SUBNET_RANGE,))


def test_external_load_balancer_balances_on_least_requests_and_never_cuts_a_long_answer():
    run = _ok()
    (backend,) = resources_of(run, BACKEND)
    inputs = backend["inputs"]
    assert inputs["loadBalancingScheme"] == "EXTERNAL_MANAGED" and inputs["localityLbPolicy"] == "LEAST_REQUEST"
    longest = 32768 / 10  # maxModelLen at the slowest expected decode (one L4 under a full batch), tokens/s
    assert inputs["timeoutSec"] > longest
    assert 3600 >= inputs["connectionDrainingTimeoutSec"] >= longest
    (rule,) = resources_of(run, "gcp:compute/globalForwardingRule:GlobalForwardingRule")
    assert rule["inputs"]["portRange"] == "8081"
    groups = {g["outputs"]["instanceGroup"] for g in resources_of(run, GROUP)}
    assert {entry["group"] for entry in inputs["backends"]} == groups and len(groups) == 2


def test_autoscaler_numbers_follow_from_the_targets():
    autoscale = {"minReplicas": 2, "maxReplicas": 6, "targetQpsPerReplica": 1.5, "upscaleDelaySeconds": 900,
                 "downscaleDelaySeconds": 1800}
    run = _ok(STACK, {"pixtral:autoscale": json.dumps(autoscale)})
    policy = _autoscalers(run)["spot"]
    assert (policy["minReplicas"], policy["maxReplicas"]) == (1, 5), "the base replica is outside the Spot range"
    (backend,) = resources_of(run, BACKEND)
    for entry in backend["inputs"]["backends"]:
        assert entry["balancingMode"] == "RATE"
        # per-instance rate x utilization target = the QPS target per replica
        assert math.isclose(entry["maxRatePerInstance"] * policy["loadBalancingUtilization"]["target"], 1.5)
    assert policy["loadBalancingUtilization"]["target"] == LB_UTILIZATION_TARGET
    assert policy["cooldownPeriod"] == 900
    assert policy["scaleInControl"] == {"timeWindowSec": 1800, "maxScaledInReplicas": {"fixed": 1}}


def test_zones_are_those_of_the_region_that_offer_the_gpu():
    (group, *_) = _groups(_ok()).values()
    assert group["distributionPolicyZones"] == list(GPU_ZONES["nvidia-l4"]["us-central1"])
    run = _ok(STACK, {"pixtral:zones": '["us-central1-b", "us-central1-f"]'})
    for group in _groups(run).values():
        assert group["distributionPolicyZones"] == ["us-central1-b"]
    assert any("us-central1-f do not offer nvidia-l4" in line for line in run["log"])


@pytest.mark.parametrize("settings, named", [
    ({"pixtral:autoscale": '{"minReplicas": 3, "maxReplicas": 2, "targetQpsPerReplica": 2}'}, "maxReplicas"),
    ({"pixtral:autoscale": '{"minReplicas": 1, "maxReplicas": 2}'}, "exactly one target"),
    ({"pixtral:autoscale": '{"minReplicas": 1, "maxReplicas": 2, "targetQps": 2}'}, "targetQpsPerReplica"),
    ({"pixtral:autoscale": '{"minReplicas": 1, "maxReplicas": 2, "targetQpsPerReplica": 2, '
                           '"downscaleDelaySeconds": 7200}'}, "downscaleDelaySeconds"),
    ({"pixtral:autoscale": '{"minReplicas": 1, "maxReplicas": 2, "targetQueuePerReplica": 0}'}, "targetQueue"),
    ({"pixtral:zones": '["us-central1-f"]'}, "offers nvidia-l4"),
    ({"pixtral:onDemandBaseReplicas": "9"}, "at most the 4"),
    ({"pixtral:machineTypes": '["g2-standard-24", "a2-highgpu-2g"]', "pixtral:machineType": ""}, "same GPU"),
], ids=["min-above-max", "no-target", "misspelt-target", "gcp-scale-in-window", "queue-target-zero", "zones",
        "base-above-max", "candidates-with-other-gpus"])
def test_bad_fleet_settings_are_refused_by_name_before_any_resource(settings, named):
    run = run_stack(STACK, settings)
    key = next(iter(settings)).split(":")[1]
    assert run["error"] and f"pixtral:{key}" in run["error"] and named in run["error"], run["error"]
    assert run["resources"] == []


def test_both_templates_boot_the_single_vms_cloud_init():
    run = _ok()
    documents = {t["inputs"]["metadata"]["user-data"] for t in resources_of(run, TEMPLATE)}
    assert len(documents) == 1 and vm_user_data(run) in documents
    # The replicas serve plain HTTP behind the load balancer, which terminates HTTPS: compare with a single VM that
    # serves plain HTTP too.
    single = vm_user_data(_ok("gcp", {"pixtral:tls": "false"}))
    # The same boot plan as the single VM's, to the secret names (the fleet's stack differs only in its name).
    assert documents.pop().replace("gcp-fleet", "gcp") == single
    (account,) = resources_of(run, "gcp:serviceaccount/account:Account")
    for template in resources_of(run, TEMPLATE):
        assert template["inputs"]["serviceAccount"]["email"] == account["outputs"]["email"]
        assert template["inputs"]["disks"][0]["diskType"] == "pd-ssd"


def test_outputs_name_the_load_balancer_and_the_groups():
    outputs = _ok()["outputs"]
    assert outputs["endpoint"] == f"https://{outputs['address']}:8081"
    assert outputs["instanceGroups"] == sorted(outputs["instanceGroups"], key=lambda n: "spot" in n)
    assert len(outputs["instanceGroups"]) == 2 and outputs["region"] == "us-central1"


QUEUE = {"pixtral:autoscale": '{"minReplicas": 1, "maxReplicas": 4, "targetQueuePerReplica": 4}'}
API_KEY = "sk-queue-test-key-0123456789abcdef"


def test_queue_target_scales_on_vllms_waiting_requests_per_instance():
    run = _ok(STACK, QUEUE)
    policy = _autoscalers(run)["spot"]
    assert policy["metrics"] == [{"name": QUEUE_METRIC, "target": 4, "type": "GAUGE",
                                  "filter": 'resource.type = "prometheus_target"'}]
    assert "loadBalancingUtilization" not in policy
    # The Ops Agent writes the metric with the replicas' own identity, allowed to write metrics and nothing more.
    (writer,) = resources_of(run, "gcp:projects/iAMMember:IAMMember")
    (account,) = resources_of(run, "gcp:serviceaccount/account:Account")
    assert (writer["inputs"]["role"], writer["inputs"]["member"]) == (
        "roles/monitoring.metricWriter", f"serviceAccount:{account['outputs']['email']}")
    assert not resources_of(_ok(), "gcp:projects/iAMMember:IAMMember"), "QPS scaling needs no metric writer"


def test_ops_agent_scrapes_vllm_metrics_with_the_key_from_a_root_only_file():
    run = run_stack(STACK, {**QUEUE, "pixtral:port": "9000"}, secrets={"pixtral:apiKey": API_KEY})
    files = vm_files(run)
    config = yaml.safe_load(files[OPS_AGENT_CONFIG])
    (scrape,) = config["metrics"]["receivers"]["vllm"]["config"]["scrape_configs"]
    assert scrape["static_configs"] == [{"targets": ["localhost:9000"]}] and scrape["metrics_path"] == "/metrics"
    assert scrape["authorization"] == {"type": "Bearer", "credentials_file": METRICS_TOKEN_FILE}
    assert config["metrics"]["service"]["pipelines"]["vllm"]["receivers"] == ["vllm"]
    (keep,) = scrape["metric_relabel_configs"]
    assert keep["action"] == "keep" and re.fullmatch(keep["regex"], "vllm:num_requests_waiting")
    assert API_KEY not in vm_user_data(run)
    runcmd = yaml.safe_load(vm_user_data(run))["runcmd"]
    # The agent validates that the token file exists: it is made (empty, root-only) before the agent installs.
    placeholder = runcmd.index(["install", "-m", "0600", "/dev/null", METRICS_TOKEN_FILE])
    assert any("google-cloud-ops-agent" in " ".join(cmd) for cmd in runcmd[placeholder + 1:])
    assert OPS_AGENT_CONFIG not in vm_files(_ok()), "no agent without the queue target"


def test_fetch_secrets_writes_the_scrape_token_root_only(tmp_path):
    run = run_stack(STACK, QUEUE, secrets={"pixtral:apiKey": API_KEY})
    files = vm_files(run)
    env = environment_file(files)
    assert env["PIXTRAL_METRICS_TOKEN_FILE"] == METRICS_TOKEN_FILE
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ("pixtral-lib.sh", "fetch-secrets.sh"):
        (lib / name).write_text(files[f"/usr/local/lib/pixtral/{name}"])
    (version,) = [v["outputs"]["version"] for v in resources_of(run, "gcp:secretmanager/secretVersion:SecretVersion")]
    fake = _fake_store_cli(tmp_path / "bin", {env["PIXTRAL_API_KEY_SECRET"]: {version: API_KEY}}, "gcloud")
    token = tmp_path / "metrics-token"
    env.update({"PIXTRAL_LIB": str(lib), "PIXTRAL_STATE_DIR": str(tmp_path / "state"), "PIXTRAL_RETRY_SECONDS": "0",
                "PIXTRAL_SECRETS_FILE": str(tmp_path / "secrets.env"), "PIXTRAL_METRICS_TOKEN_FILE": str(token),
                "PATH": f"{fake}:{os.environ['PATH']}", "HOME": str(tmp_path)})
    done = subprocess.run(["bash", str(lib / "fetch-secrets.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert token.read_text() == API_KEY, "the Bearer token is the key alone, no newline"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600


def test_queue_template_cloud_init_passes_cloud_inits_own_schema(tmp_path):
    cloud_init = required_tool("cloud-init", "apt-get install cloud-init")
    path = tmp_path / "user-data"
    path.write_text(vm_user_data(_ok(STACK, QUEUE)))
    done = subprocess.run([cloud_init, "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert done.returncode == 0 and "Valid cloud-config" in done.stdout, done.stdout + done.stderr


def test_candidate_machine_types_are_the_groups_ranked_choices():
    candidates = ["g2-standard-8", "g2-standard-16", "g2-standard-12"]
    run = _ok(STACK, {"pixtral:machineType": "", "pixtral:machineTypes": json.dumps(candidates),
                      "pixtral:acceleratorCount": "1"})
    for group in _groups(run).values():
        selections = group["instanceFlexibilityPolicy"]["instanceSelections"]
        assert [(s["rank"], s["machineTypes"]) for s in selections] == [(0, ["g2-standard-8"]),
                                                                        (1, ["g2-standard-16"]),
                                                                        (2, ["g2-standard-12"])]
        assert group["template"]["machineType"] == "g2-standard-8"
    # One L4 holds Pixtral only in fp8: one command line for every candidate.
    assert "--quantization" in vm_files(run)["/etc/pixtral/vllm.args"]
    assert "instanceFlexibilityPolicy" not in next(iter(_groups(_ok()).values()))


# -- HTTPS at the load balancer -------------------------------------------------------------------------------

HTTPS_PROXY = "gcp:compute/targetHttpsProxy:TargetHttpsProxy"
REGION_HTTPS_PROXY = "gcp:compute/regionTargetHttpsProxy:RegionTargetHttpsProxy"
CERTIFICATE = "gcp:compute/sSLCertificate:SSLCertificate"
REGION_CERTIFICATE = "gcp:compute/regionSslCertificate:RegionSslCertificate"
MANAGED_CERTIFICATE = "gcp:compute/managedSslCertificate:ManagedSslCertificate"
HTTP_PROXIES = ("gcp:compute/targetHttpProxy:TargetHttpProxy",
                "gcp:compute/regionTargetHttpProxy:RegionTargetHttpProxy")
DOMAIN = {"pixtral:domain": "pixtral.example.com", "pixtral:dnsZone": "example-com"}


def _sans(pem: str) -> tuple[list[str], list[str]]:
    from cryptography import x509

    names = x509.load_pem_x509_certificate(pem.encode()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    return [str(ip) for ip in names.get_values_for_type(x509.IPAddress)], names.get_values_for_type(x509.DNSName)


def _verify_with_stack_ca(run: dict, pem: str) -> None:
    from cryptography import x509

    ca = x509.load_pem_x509_certificate(run["outputs"]["caCertificate"].encode())
    x509.load_pem_x509_certificate(pem.encode()).verify_directly_issued_by(ca)


def _https_proxy(run: dict, proxy_type: str, policy_type: str) -> tuple[dict, dict]:
    """The one HTTPS proxy, checked to be what the forwarding rule targets and to require TLS 1.2 and up."""
    assert not [r for r in run["resources"] if r["type"] in HTTP_PROXIES], "a plain HTTP proxy beside HTTPS"
    (proxy,) = resources_of(run, proxy_type)
    (rule,) = [r for r in run["resources"] if r["type"].endswith("orwardingRule")]
    assert rule["inputs"]["target"] == f"{proxy['name']}-id"
    (policy,) = resources_of(run, policy_type)
    assert proxy["inputs"]["sslPolicy"] == policy["outputs"]["selfLink"]
    assert policy["inputs"]["minTlsVersion"] == "TLS_1_2"
    assert policy["inputs"]["profile"] in ("MODERN", "RESTRICTED")
    return proxy, rule


def test_the_load_balancer_serves_https_with_the_stack_cas_certificate_for_its_address():
    run = _ok()
    proxy, rule = _https_proxy(run, HTTPS_PROXY, "gcp:compute/sSLPolicy:SSLPolicy")
    (certificate,) = resources_of(run, CERTIFICATE)
    assert proxy["inputs"]["sslCertificates"] == [certificate["outputs"]["selfLink"]]
    address = run["outputs"]["address"]
    assert address in _sans(certificate["inputs"]["certificate"])[0]
    _verify_with_stack_ca(run, certificate["inputs"]["certificate"])
    assert run["outputs"]["endpoint"] == f"https://{address}:8081" and rule["inputs"]["portRange"] == "8081"
    assert not resources_of(run, MANAGED_CERTIFICATE) and not resources_of(run, "gcp:dns/recordSet:RecordSet")
    # Auto-named and replaced create-first: a re-issued certificate exists beside the old one while the proxy
    # switches to it (Compute Engine refuses to delete a certificate a proxy uses).
    assert "name" not in certificate["inputs"] and not certificate["options"].get("deleteBeforeReplace")


def test_behind_the_load_balancer_everything_is_plain_http_inside_the_vpc():
    run = _ok()
    (backend,) = resources_of(run, BACKEND)
    assert backend["inputs"]["protocol"] == "HTTP"
    (check,) = resources_of(run, HEALTH_CHECK)
    assert "httpHealthCheck" in check["inputs"] and "httpsHealthCheck" not in check["inputs"]
    files = vm_files(run)
    assert not [a for a in files["/etc/pixtral/vllm.args"].splitlines() if a.startswith("--ssl-")]
    assert environment_file(files)["PIXTRAL_SCHEME"] == "http"
    # No replica holds a TLS key: no tls-key secret for their identity to read.
    assert not [s for s in resources_of(run, "gcp:secretmanager/secret:Secret") if s["name"].endswith("-tls-key")]


def test_the_tls_private_key_is_only_in_the_certificates_secret_input():
    run = _ok()
    (certificate,) = resources_of(run, CERTIFICATE)
    key = certificate["inputs"]["privateKey"]
    assert "PRIVATE KEY-----" in key
    body = "".join(line for line in key.strip().splitlines() if not line.startswith("-----"))
    for resource in run["resources"]:
        if resource["type"].startswith("tls:") or resource is certificate:
            continue
        assert body[:64] not in json.dumps(resource["inputs"]), f"{resource['type']} {resource['name']} has the key"
    for template in resources_of(run, TEMPLATE):
        assert body[:64] not in json.dumps(template["inputs"]["metadata"])
    assert body[:64] not in json.dumps(run["outputs"]) and body[:64] not in "\n".join(run["log"])


def test_internal_https_uses_a_regional_certificate_for_the_internal_address():
    run = _ok(STACK, {"pixtral:internal": "true"})
    proxy, _ = _https_proxy(run, REGION_HTTPS_PROXY, "gcp:compute/regionSslPolicy:RegionSslPolicy")
    (certificate,) = resources_of(run, REGION_CERTIFICATE)
    assert certificate["inputs"]["region"] == proxy["inputs"]["region"] == "us-central1"
    assert proxy["inputs"]["sslCertificates"] == [certificate["outputs"]["selfLink"]]
    (address,) = resources_of(run, "gcp:compute/address:Address")
    assert address["outputs"]["address"] in _sans(certificate["inputs"]["certificate"])[0]
    assert run["outputs"]["endpoint"] == f"https://{address['outputs']['address']}:8081"
    assert not resources_of(run, CERTIFICATE) and not resources_of(run, HTTPS_PROXY)


def test_a_domain_gets_a_google_managed_certificate_and_its_dns_record():
    run = _ok(STACK, DOMAIN)
    proxy, _ = _https_proxy(run, HTTPS_PROXY, "gcp:compute/sSLPolicy:SSLPolicy")
    (managed,) = resources_of(run, MANAGED_CERTIFICATE)
    assert managed["inputs"]["managed"]["domains"] == ["pixtral.example.com"]
    assert proxy["inputs"]["sslCertificates"] == [managed["outputs"]["selfLink"]]
    (record,) = resources_of(run, "gcp:dns/recordSet:RecordSet")
    assert (record["inputs"]["managedZone"], record["inputs"]["name"], record["inputs"]["type"],
            record["inputs"]["rrdatas"]) == ("example-com", "pixtral.example.com.", "A", [run["outputs"]["address"]])
    assert record["parent"] == "pixtral:gcp:GpuFleet"
    assert run["outputs"]["endpoint"] == "https://pixtral.example.com:8081"
    # A public certificate: no stack CA, so clients verify with their system CAs (pixtralctl too).
    assert "caCertificate" not in run["outputs"]
    assert not [r for r in run["resources"] if r["type"].startswith("tls:")]
    assert not resources_of(run, CERTIFICATE)


def test_an_internal_load_balancer_with_a_domain_keeps_the_stack_ca_for_the_domain_and_address():
    # Google-managed (classic) certificates do not serve internal load balancers.
    run = _ok(STACK, {**DOMAIN, "pixtral:internal": "true"})
    assert not resources_of(run, MANAGED_CERTIFICATE)
    (certificate,) = resources_of(run, REGION_CERTIFICATE)
    ips, dns_names = _sans(certificate["inputs"]["certificate"])
    (address,) = resources_of(run, "gcp:compute/address:Address")
    assert "pixtral.example.com" in dns_names and address["outputs"]["address"] in ips
    _verify_with_stack_ca(run, certificate["inputs"]["certificate"])
    (record,) = resources_of(run, "gcp:dns/recordSet:RecordSet")
    assert record["inputs"]["rrdatas"] == [address["outputs"]["address"]]
    assert run["outputs"]["endpoint"] == "https://pixtral.example.com:8081"


def test_tls_false_keeps_the_plain_http_proxy_and_warns():
    run = _ok(STACK, {"pixtral:tls": "false"})
    (proxy,) = resources_of(run, "gcp:compute/targetHttpProxy:TargetHttpProxy")
    (rule,) = resources_of(run, "gcp:compute/globalForwardingRule:GlobalForwardingRule")
    assert rule["inputs"]["target"] == f"{proxy['name']}-id"
    assert not [r for r in run["resources"] if "ssl" in r["type"].lower() or "Https" in r["type"]]
    assert run["outputs"]["endpoint"] == f"http://{run['outputs']['address']}:8081"
    (warning,) = [line for line in run["log"] if "pixtral:tls is false" in line]
    assert "remove pixtral:tls to serve HTTPS" in warning


# Scale to zero (docs/scaling.md): the autoscaler's minimum 0 on a per-group signal, the load balancer's request count
# for the fleet's backend service. The shipped stack keeps one standard replica, which a fleet at zero cannot have.
ZERO_QPS = {"minReplicas": 0, "maxReplicas": 4, "targetQpsPerReplica": 2}
ZERO_QUEUE = {"minReplicas": 0, "maxReplicas": 4, "targetQueuePerReplica": 4}
REGION_BACKEND = "gcp:compute/regionBackendService:RegionBackendService"


def _at_zero(autoscale: dict, **settings) -> dict:
    return _ok(STACK, {"pixtral:onDemandBaseReplicas": "0", "pixtral:autoscale": json.dumps(autoscale), **settings})


def _request_signal(policy: dict) -> dict:
    (signal,) = [m for m in policy["metrics"] if "request_count" in m["name"]]
    return signal


@pytest.mark.parametrize(("internal", "metric", "resource", "backend_type"), [
    (False, "loadbalancing.googleapis.com/https/request_count", "https_lb_rule", BACKEND),
    (True, "loadbalancing.googleapis.com/https/internal/request_count", "internal_http_lb_rule", REGION_BACKEND),
], ids=["external", "internal"])
def test_a_fleet_at_zero_scales_on_the_load_balancers_requests_for_its_backend(internal, metric, resource,
                                                                               backend_type):
    run = _at_zero(ZERO_QPS, **{"pixtral:internal": str(internal).lower()})
    assert list(_groups(run)) == ["spot"], "no on-demand base beside a fleet at zero"
    policy = _autoscalers(run)["spot"]
    assert (policy["minReplicas"], policy["maxReplicas"]) == (0, 4)
    # Serving capacity needs a VM to measure: a per-group metric is what the autoscaler can scale to zero on.
    assert "loadBalancingUtilization" not in policy
    (backend,) = resources_of(run, backend_type)
    assert policy["metrics"] == [{
        "name": metric, "singleInstanceAssignment": 2,
        "filter": f'resource.type = "{resource}" AND resource.labels.backend_target_name = '
                  f'"{backend["outputs"]["name"]}"'}]
    # A per-group filter: a resource type other than gce_instance, selectors joined by AND, equality only.
    selectors = policy["metrics"][0]["filter"].split(" AND ")
    assert all(" = " in selector and "(" not in selector for selector in selectors)
    assert policy["scaleInControl"]["maxScaledInReplicas"] == {"fixed": 1}


@pytest.mark.parametrize("requests_per_second", [0, 1 / 60, 0.5, 2, 2.01, 5.9, 8, 40])
def test_qps_at_zero_is_skyserves_rule_over_the_load_balancers_request_rate(requests_per_second):
    policy = _autoscalers(_at_zero(ZERO_QPS))["spot"]
    assignment = _request_signal(policy)["singleInstanceAssignment"]
    wanted = parse_autoscale(json.dumps(ZERO_QPS)).desired_replicas(requests_per_second)
    # The autoscaler keeps the group proportional to the metric, rounding up (within min and max).
    asked = min(policy["maxReplicas"], max(policy["minReplicas"], math.ceil(requests_per_second / assignment)))
    assert asked == wanted


@pytest.mark.parametrize("requests_per_second", [0, 1 / 3600, 1 / 60, 1, 50, 500])
def test_queue_at_zero_keeps_its_queue_signal_and_wakes_one_replica_on_requests(requests_per_second):
    policy = _autoscalers(_at_zero(ZERO_QUEUE))["spot"]
    queue = [m for m in policy["metrics"] if m["name"] == QUEUE_METRIC]
    assert queue == [{"name": QUEUE_METRIC, "target": 4, "type": "GAUGE",
                      "filter": 'resource.type = "prometheus_target"'}]
    assignment = _request_signal(policy)["singleInstanceAssignment"]
    # One replica while any request arrives, none once they stop; more is the queue signal's to ask.
    assert math.ceil(requests_per_second / assignment) == (1 if requests_per_second else 0)


def test_a_fleet_with_a_minimum_keeps_serving_capacity_and_no_request_signal():
    policy = _autoscalers(_ok())["spot"]
    assert "loadBalancingUtilization" in policy and "metrics" not in policy


def test_pulumi_up_states_what_the_first_caller_waits_on_gcp():
    run = _at_zero(ZERO_QPS)
    detection, start = wake_from_zero(_deployment(run))
    assert detection == Gcp.wake_detection_seconds and start.total == later_boot(_deployment(run)).total
    (line,) = [line for line in run["log"] if line.startswith("info: scale to zero")]
    assert f"about {detection + start.total:.0f} s from the first request" in line, line


def test_an_on_demand_base_with_a_fleet_at_zero_is_refused_on_gcp_before_any_resource():
    run = run_stack(STACK, {"pixtral:autoscale": json.dumps(ZERO_QPS)})  # the stack keeps one standard replica
    assert run["error"] and "pixtral:onDemandBaseReplicas" in run["error"], run["error"]
    assert "at most autoscale.minReplicas (0)" in run["error"] and run["resources"] == []


def test_the_fleet_docs_state_the_wake_the_program_estimates_on_gcp():
    text = (Path(__file__).parent.parent / "docs" / "fleets.md").read_text()
    (documented,) = re.findall(r"<!-- wake:gcp-cold -->~(\d+) s<!-- /wake -->", text)
    detection, start = wake_from_zero(_deployment(_at_zero(ZERO_QPS)))
    assert documented == f"{detection + start.total:.0f}"
