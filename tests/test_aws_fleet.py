"""Pixtral as a service on AWS (`replicas` > 1 or `autoscale`): what `pulumi up` would declare for a fleet.

The real program under the mock engine, for the shipped `aws-fleet` stack and variations of it; the contract is
docs/scaling.md.
"""

from __future__ import annotations

import json
import math
import re
import subprocess

import jsonschema
import pytest
import yaml
from conftest import (
    PROJECT_DIR,
    environment_file,
    pem_body,
    required_tool,
    resources_of,
    run_stack,
    vm_files,
    vm_user_data,
)
from cryptography import x509

from pixtral_deploy.catalog import MACHINE_TYPES, model_download_gb
from pixtral_deploy.cloudinit import METRICS_TOKEN_FILE
from pixtral_deploy.coldstart import estimate_cold_start, later_boot, wake_from_zero, warm_start
from pixtral_deploy.fleetboot import AGENT_CONFIG_FILE, SCRAPE_CONFIG_FILE
from pixtral_deploy.scaling import parse_autoscale
from pixtral_deploy.spec import load_spec
from pixtral_deploy.storage import vm_storage
from pixtral_deploy.targets.aws import Aws

GROUP = "aws:autoscaling/group:Group"
POLICY = "aws:autoscaling/policy:Policy"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
BALANCER = "aws:lb/loadBalancer:LoadBalancer"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
ACM_CERTIFICATE = "aws:acm/certificate:Certificate"
VALIDATION = "aws:acm/certificateValidation:CertificateValidation"
RECORD = "aws:route53/record:Record"
DOMAIN = {"pixtral:domain": "pixtral.example.com", "pixtral:dnsZone": "Z0123456789ABCDEFGHIJ"}
QUEUE = {"pixtral:autoscale": '{"minReplicas": 2, "maxReplicas": 6, "targetQueuePerReplica": 4}'}
# A warm pool: on-demand, one type (AWS keeps warm pools for no other group).
WARM = {"pixtral:warmPool": "2", "pixtral:spot": "false", "pixtral:onDemandBaseReplicas": "0",
        "pixtral:instanceTypes": '["g6e.xlarge"]'}
API_KEY = "sk-fleet-key-never-in-user-data-0123456789"
AGENT_SCHEMA = json.loads((PROJECT_DIR / "tests/data/cloudwatch-agent-schema.json").read_text())


def fleet(settings: dict | None = None, secrets: dict | None = None) -> dict:
    run = run_stack("aws-fleet", settings, secrets)
    assert run["error"] is None, run["error"]
    return run


def one(run: dict, type_: str) -> dict:
    (resource,) = resources_of(run, type_)
    return resource


def declared(run: dict) -> list[tuple[str, str]]:
    return sorted((r["type"], r["name"]) for r in run["resources"])


def tracking_policy(run: dict) -> dict:
    (policy,) = [p["inputs"] for p in resources_of(run, POLICY) if p["inputs"]["policyType"] == "TargetTrackingScaling"]
    return policy


def test_two_and_fifty_replicas_declare_the_same_resources():
    two = run_stack("aws", {"pixtral:replicas": "2"})
    fifty = run_stack("aws", {"pixtral:replicas": "50"})
    assert two["error"] is None and fifty["error"] is None
    assert declared(two) == declared(fifty)
    assert (one(two, GROUP)["inputs"]["minSize"], one(fifty, GROUP)["inputs"]["maxSize"]) == (2, 50)
    assert not resources_of(two, "aws:ec2/instance:Instance"), "a fleet declares no instance of its own"


@pytest.mark.parametrize("target", ["targetQpsPerReplica", "targetQueuePerReplica"])
def test_autoscaled_up_to_two_and_up_to_fifty_declare_the_same_resources(target):
    def up_to(n: int) -> dict:
        return fleet({"pixtral:autoscale": json.dumps({"minReplicas": 1, "maxReplicas": n, target: 2})})
    two, fifty = up_to(2), up_to(50)
    assert declared(two) == declared(fifty)
    assert resources_of(two, ALARM), "scale-in is an alarm of the fleet's own, whatever the range"


def test_one_replica_stays_a_single_vm():
    run = run_stack("aws")
    assert resources_of(run, "aws:ec2/instance:Instance") and not resources_of(run, GROUP)


def test_min_max_and_the_spot_on_demand_split_are_as_configured():
    group = one(fleet(), GROUP)["inputs"]
    assert (group["minSize"], group["maxSize"]) == (1, 4)
    distribution = group["mixedInstancesPolicy"]["instancesDistribution"]
    assert distribution["onDemandBaseCapacity"] == 1
    assert distribution["onDemandPercentageAboveBaseCapacity"] == 0, "above the base, every replica is spot"
    assert distribution["spotAllocationStrategy"].startswith("capacity-optimized")
    assert group["capacityRebalance"] is True
    on_demand = one(fleet({"pixtral:spot": "false", "pixtral:onDemandBaseReplicas": "0"}), GROUP)["inputs"]
    assert on_demand["mixedInstancesPolicy"]["instancesDistribution"]["onDemandPercentageAboveBaseCapacity"] == 100
    assert on_demand["capacityRebalance"] is False


def test_candidate_types_are_the_overrides_in_order():
    policy = one(fleet(), GROUP)["inputs"]["mixedInstancesPolicy"]["launchTemplate"]
    assert [o["instanceType"] for o in policy["overrides"]] == ["g6e.xlarge", "g6e.2xlarge"]


def test_qps_target_is_requests_per_minute_per_target():
    run = fleet()
    tracking = tracking_policy(run)["targetTrackingConfiguration"]
    assert tracking["targetValue"] == 90, "targetQpsPerReplica 1.5 over ALB's per-minute count"
    metric = tracking["predefinedMetricSpecification"]
    assert metric["predefinedMetricType"] == "ALBRequestCountPerTarget"
    balancer, target_group = one(run, BALANCER)["outputs"], one(run, TARGET_GROUP)["outputs"]
    assert metric["resourceLabel"] == f"{balancer['arnSuffix']}/{target_group['arnSuffix']}"
    assert tracking_policy(run)["estimatedInstanceWarmup"] == 300, "upscaleDelaySeconds' default"


def test_queue_target_tracks_vllms_waiting_requests_averaged_over_the_fleet():
    run = fleet(QUEUE)
    tracking = tracking_policy(run)["targetTrackingConfiguration"]
    metric = tracking["customizedMetricSpecification"]
    assert (tracking["targetValue"], metric["metricName"], metric["statistic"]) == (
        4, "vllm:num_requests_waiting", "Average")
    # The dimension the replicas publish under is the one the policy reads.
    (dimension,) = metric["metricDimensions"]
    scrape = yaml.safe_load(vm_files(run)[SCRAPE_CONFIG_FILE])
    assert scrape["scrape_configs"][0]["static_configs"][0]["labels"] == {dimension["name"]: dimension["value"]}
    attachments = resources_of(run, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    attached = {a["inputs"]["policyArn"] for a in attachments}
    assert "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy" in attached


def test_the_scraper_authenticates_with_the_key_without_the_key_in_user_data():
    run = fleet(QUEUE, {"pixtral:apiKey": API_KEY})
    user_data = vm_user_data(run)
    assert API_KEY not in user_data
    scrape = yaml.safe_load(vm_files(run)[SCRAPE_CONFIG_FILE])["scrape_configs"][0]
    assert scrape["bearer_token_file"] == METRICS_TOKEN_FILE
    assert scrape["static_configs"][0]["targets"] == ["127.0.0.1:8081"]
    # fetch-secrets.sh writes the token, root-only, as on the GCP fleet (tests/test_gcp_fleet.py runs it); the
    # publishing unit never sees the key.
    files = vm_files(run)
    assert environment_file(files)["PIXTRAL_METRICS_TOKEN_FILE"] == METRICS_TOKEN_FILE
    assert "secrets.env" not in files["/etc/systemd/system/pixtral-metrics.service"]
    assert "VLLM_API_KEY" not in files["/usr/local/lib/pixtral/publish-metrics.sh"]


def test_cloudwatch_agent_configuration_passes_the_agents_own_schema():
    config = json.loads(vm_files(fleet(QUEUE))[AGENT_CONFIG_FILE])
    jsonschema.Draft4Validator(AGENT_SCHEMA).validate(config)
    prometheus = config["logs"]["metrics_collected"]["prometheus"]
    assert prometheus["prometheus_config_path"] == SCRAPE_CONFIG_FILE


def test_agent_schema_check_is_live():
    # The vendored schema refuses a misspelt field of the same configuration.
    config = json.loads(vm_files(fleet(QUEUE))[AGENT_CONFIG_FILE])
    declaration = config["logs"]["metrics_collected"]["prometheus"]["emf_processor"]["metric_declaration"][0]
    declaration["metric_selector"] = declaration.pop("metric_selectors")
    assert list(jsonschema.Draft4Validator(AGENT_SCHEMA).iter_errors(config))


@pytest.mark.parametrize("settings", [{}, QUEUE, WARM], ids=["qps", "queue", "warm-pool"])
def test_launch_template_cloud_init_passes_cloud_inits_schema(settings, tmp_path):
    cloud_init = required_tool("cloud-init", "apt-get install cloud-init")
    path = tmp_path / "user-data"
    path.write_text(vm_user_data(fleet(settings)))
    done = subprocess.run([cloud_init, "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_launch_template_carries_the_single_vms_guarantees():
    template = one(fleet(), TEMPLATE)["inputs"]
    assert template["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required",
                                           "httpPutResponseHopLimit": 1}
    (root,) = template["blockDeviceMappings"]
    assert (root["ebs"]["encrypted"], root["ebs"]["volumeType"], root["ebs"]["throughput"]) == ("true", "gp3", 1000)
    assert "keyName" not in template, "no SSH key: access is through SSM Session Manager"
    assert template["iamInstanceProfile"]["arn"].endswith("instance-profile/pixtral-profile")


def test_health_check_is_vllms_health_on_the_replicas_port():
    run = fleet({"pixtral:port": "9001"})
    target_group = one(run, TARGET_GROUP)["inputs"]
    assert (target_group["port"], target_group["protocol"]) == (9001, "HTTP")
    check = target_group["healthCheck"]
    assert (check["path"], check["port"], check["matcher"]) == ("/health", "traffic-port", "200")
    assert target_group["loadBalancingAlgorithmType"] == "least_outstanding_requests"
    assert one(run, LISTENER)["inputs"]["port"] == 9001
    assert run["outputs"]["endpoint"] == f"https://{one(run, BALANCER)['outputs']['dnsName']}:9001"
    assert one(run, GROUP)["inputs"]["healthCheckType"] == "ELB"


def test_a_long_generation_is_neither_cut_nor_dropped_on_drain():
    run = fleet()
    longest = 32768 / 10  # maxModelLen at the slowest expected decode (one L4 under a full batch), tokens/s
    assert one(run, BALANCER)["inputs"]["idleTimeout"] > longest
    assert one(run, TARGET_GROUP)["inputs"]["deregistrationDelay"] >= longest


def test_a_context_longer_than_an_hour_of_decode_stays_within_the_albs_limits():
    run = fleet({"pixtral:maxModelLen": "131072"})
    assert one(run, BALANCER)["inputs"]["idleTimeout"] <= 4000
    assert one(run, TARGET_GROUP)["inputs"]["deregistrationDelay"] == 3600


@pytest.mark.parametrize(("settings", "storage_kept"), [({}, False), (WARM, True)], ids=["nvme", "warm-pool"])
def test_grace_period_comes_from_the_slowest_candidates_cold_start(settings, storage_kept):
    run = fleet(settings)
    types = json.loads(run["config"]["pixtral:instanceTypes"])
    # The fleet keeps an artefact store (warmStarts on): its first replica uploads the weights and streams them.
    estimates = [estimate_cold_start(MACHINE_TYPES[t], model_download_gb("mistralai/Pixtral-12B-2409"),
                                     vm_storage(MACHINE_TYPES[t], 200, storage_kept), store=True).total for t in types]
    grace = one(run, GROUP)["inputs"]["healthCheckGracePeriod"]
    assert grace == math.ceil(max(600, max(estimates) * 2) / 60) * 60
    assert grace != 300, "AWS's default would kill replicas during their first download"


def test_replicas_admit_the_api_port_only_from_the_load_balancer():
    run = fleet({"pixtral:allowedCidrs": '["198.51.100.0/24"]'})
    groups = {g["name"]: g for g in resources_of(run, "aws:ec2/securityGroup:SecurityGroup")}
    # mockrun gives each resource the id "<resource name>-id", as the cloud would give it one.
    replica_id, balancer_id = f"{groups['pixtral-replicas']['name']}-id", f"{groups['pixtral-lb']['name']}-id"
    rules = resources_of(run, INGRESS)
    to_replicas = [r["inputs"] for r in rules if r["inputs"]["securityGroupId"] == replica_id]
    assert len(to_replicas) == 1, f"replicas admit more than the load balancer: {to_replicas}"
    assert to_replicas[0]["referencedSecurityGroupId"] == balancer_id
    assert (to_replicas[0]["fromPort"], to_replicas[0]["toPort"]) == (8081, 8081)
    assert "cidrIpv4" not in to_replicas[0] and "cidrIpv6" not in to_replicas[0]
    to_balancer = [r["inputs"] for r in rules if r["inputs"]["securityGroupId"] == balancer_id]
    assert [(r["cidrIpv4"], r["fromPort"]) for r in to_balancer] == [("198.51.100.0/24", 8081)]
    template = one(run, TEMPLATE)["inputs"]
    assert template["networkInterfaces"][0]["securityGroups"] == [replica_id]
    assert one(run, BALANCER)["inputs"]["securityGroups"] == [balancer_id]


def test_internal_gives_an_internal_balancer_and_no_public_address():
    run = fleet({"pixtral:internal": "true"})
    assert one(run, BALANCER)["inputs"]["internal"] is True
    assert one(run, TEMPLATE)["inputs"]["networkInterfaces"][0]["associatePublicIpAddress"] == "false"
    assert any("NAT gateway" in line for line in run["log"]), "the VPC must route replicas out"
    public = fleet()
    assert one(public, BALANCER)["inputs"]["internal"] is False


def test_balancer_and_group_span_two_zones_offering_every_candidate():
    run = fleet()
    subnets = one(run, GROUP)["inputs"]["vpcZoneIdentifiers"]
    assert len(subnets) >= 2 and one(run, BALANCER)["inputs"]["subnets"] == subnets


def test_rolling_update_launches_new_replicas_first():
    refresh = one(fleet(), GROUP)["inputs"]["instanceRefresh"]
    assert refresh["strategy"] == "Rolling" and refresh["preferences"]["minHealthyPercentage"] == 100


def test_outputs_name_the_group_and_target_group():
    run = fleet()
    assert run["outputs"]["autoScalingGroup"] == one(run, GROUP)["outputs"]["name"]
    assert run["outputs"]["targetGroup"] == one(run, TARGET_GROUP)["outputs"]["arn"]
    assert run["outputs"]["baseUrl"] == run["outputs"]["endpoint"] + "/v1"


def test_warm_pool_holds_stopped_instances_with_the_weights_on_ebs():
    run = fleet(WARM)
    group = one(run, GROUP)["inputs"]
    assert group["warmPool"]["poolState"] == "Stopped" and group["warmPool"]["minSize"] == 2
    assert "mixedInstancesPolicy" not in group, "AWS refuses a warm pool beside a mixed instances policy"
    (hook,) = group["initialLifecycleHooks"]
    assert hook["lifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
    files = vm_files(run)
    # Instance store is blank after a stop: the cache must be on the root volume.
    assert environment_file(files)["PIXTRAL_LOCAL_NVME"] == "0"
    assert environment_file(files)["PIXTRAL_LIFECYCLE_HOOK"] == hook["name"]
    assert "/etc/systemd/system/pixtral-lifecycle.service" in files
    assert environment_file(vm_files(fleet()))["PIXTRAL_LOCAL_NVME"] == "1", "without a pool, local NVMe"
    (policy,) = [p for p in resources_of(run, "aws:iam/rolePolicy:RolePolicy") if p["name"] == "pixtral-lifecycle"]
    statements = json.loads(policy["inputs"]["policy"])["Statement"]
    assert statements[0]["Resource"] == one(run, GROUP)["outputs"]["arn"]
    assert any("warm pool" in line and "resumes" in line for line in run["log"])


BAD_AUTOSCALE = {
    "min above max": ('{"minReplicas": 5, "maxReplicas": 2, "targetQpsPerReplica": 1}', "minReplicas=5"),
    "both targets": ('{"minReplicas": 1, "maxReplicas": 2, "targetQpsPerReplica": 1, "targetQueuePerReplica": 2}',
                     "exactly one target"),
    "no target": ('{"minReplicas": 1, "maxReplicas": 2}', "exactly one target"),
    "unknown key": ('{"minReplicas": 1, "maxReplicas": 2, "targetQps": 1}', "autoscale.targetQps is not one"),
    "negative min": ('{"minReplicas": -1, "maxReplicas": 2, "targetQpsPerReplica": 1}', "autoscale.minReplicas"),
}


@pytest.mark.parametrize("case", sorted(BAD_AUTOSCALE))
def test_bad_autoscale_maps_are_refused_naming_the_key_before_any_resource(case):
    value, expected = BAD_AUTOSCALE[case]
    run = run_stack("aws-fleet", {"pixtral:autoscale": value})
    assert run["error"] and "pixtral:autoscale" in run["error"] and expected in run["error"], run["error"]
    assert run["resources"] == []


def test_candidates_with_different_gpu_counts_are_refused_naming_both():
    run = run_stack("aws-fleet", {"pixtral:instanceTypes": '["g6e.xlarge", "g6e.12xlarge"]'})
    assert run["error"] and "g6e.xlarge" in run["error"] and "g6e.12xlarge" in run["error"]
    assert "same GPU count" in run["error"] and run["resources"] == []


@pytest.mark.parametrize(("settings", "expected"), [
    ({"pixtral:warmPool": "1"}, "pixtral:warmPool"),  # spot in the stack file
    ({**WARM, "pixtral:instanceTypes": '["g6e.xlarge", "g6e.2xlarge"]'}, "several candidate types"),
    ({"pixtral:subnetId": "subnet-0123abcd"}, "pixtral:subnetId"),
], ids=["warm-pool-with-spot", "warm-pool-with-two-types", "one-subnet"])
def test_fleet_settings_aws_cannot_honour_are_refused_before_any_resource(settings, expected):
    run = run_stack("aws-fleet", settings)
    assert run["error"] and expected in run["error"], run["error"]
    assert run["resources"] == []


def test_warm_pool_on_a_single_vm_is_refused():
    run = run_stack("aws", {"pixtral:warmPool": "1"})
    assert run["error"] and "pixtral:warmPool" in run["error"] and run["resources"] == []


# HTTPS at the balancer (pixtral:tls, on by default; issue 11's contract for the fleets).

def test_the_balancer_serves_https_with_a_tls13_policy_and_forwards_plain_http():
    run = fleet()
    listener = one(run, LISTENER)["inputs"]
    assert (listener["protocol"], listener["port"]) == ("HTTPS", 8081)
    assert listener["certificateArn"] == one(run, ACM_CERTIFICATE)["outputs"]["arn"]
    # TLS 1.3 and 1.2 only: the ELB documentation's recommended policy, not the API's default ELBSecurityPolicy-2016-08
    # (which still accepts TLS 1.0).
    assert listener["sslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"
    target_group = one(run, TARGET_GROUP)["inputs"]
    assert (target_group["protocol"], target_group["healthCheck"]["protocol"]) == ("HTTP", "HTTP")
    # The replicas serve plain HTTP inside the VPC: no TLS flags, files or key to fetch.
    files = vm_files(run)
    assert "--ssl-" not in files["/etc/pixtral/vllm.args"]
    env = environment_file(files)
    assert (env["PIXTRAL_SCHEME"], env["PIXTRAL_TLS_KEY_SECRET"]) == ("http", "")
    assert not [path for path in files if path.startswith("/etc/pixtral/tls")]
    assert not [p for p in resources_of(run, "aws:ssm/parameter:Parameter") if p["name"].endswith("tls-key")]
    assert run["outputs"]["endpoint"] == f"https://{one(run, BALANCER)['outputs']['dnsName']}:8081"


@pytest.mark.parametrize("settings", [{}, {"pixtral:internal": "true"}], ids=["public", "internal"])
def test_the_balancers_certificate_names_its_dns_name_and_is_signed_by_the_stack_ca(settings):
    run = fleet(settings)
    imported = one(run, ACM_CERTIFICATE)["inputs"]
    certificate = x509.load_pem_x509_certificate(imported["certificateBody"].encode())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    # Only the balancer's DNS name: its addresses change, and no one calls it at 127.0.0.1.
    assert names.get_values_for_type(x509.DNSName) == [one(run, BALANCER)["outputs"]["dnsName"]]
    assert names.get_values_for_type(x509.IPAddress) == []
    ca_pem = run["outputs"]["caCertificate"]
    certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem.encode()))
    assert imported["certificateChain"] == ca_pem, "ACM serves the chain clients verify against caCertificate"
    assert "domainName" not in imported and "validationMethod" not in imported, "an import, not an ACM request"


def test_the_balancers_private_key_is_only_in_the_acm_certificates_secret_input():
    run = fleet(QUEUE, {"pixtral:apiKey": API_KEY})
    imported = one(run, ACM_CERTIFICATE)["inputs"]
    body = pem_body(imported["privateKey"])
    assert "PRIVATE KEY-----" in imported["privateKey"] and len(body) > 64
    (template,) = resources_of(run, TEMPLATE)
    assert body[:64] not in vm_user_data(run) and body[:64] not in json.dumps(template["inputs"])
    for resource in run["resources"]:
        if resource["type"].startswith("tls:") or resource["type"] == ACM_CERTIFICATE:
            continue
        assert body[:64] not in json.dumps(resource["inputs"]), f"{resource['type']} {resource['name']} has the key"
    assert body[:64] not in json.dumps(run["outputs"]) and body[:64] not in "\n".join(run["log"])


def test_a_domain_gets_a_public_dns_validated_certificate_and_an_alias_to_the_balancer():
    run = fleet(DOMAIN)
    zone, domain = DOMAIN["pixtral:dnsZone"], DOMAIN["pixtral:domain"]
    certificate = one(run, ACM_CERTIFICATE)
    assert (certificate["inputs"]["domainName"], certificate["inputs"]["validationMethod"]) == (domain, "DNS")
    assert "privateKey" not in certificate["inputs"], "ACM makes and keeps the key of a public certificate"
    (asked,) = certificate["outputs"]["domainValidationOptions"]
    records = {r["inputs"]["type"]: r for r in resources_of(run, RECORD)}
    validation_record = records[asked["resourceRecordType"]]
    assert (validation_record["inputs"]["zoneId"], validation_record["inputs"]["name"],
            validation_record["inputs"]["records"]) == (zone, asked["resourceRecordName"],
                                                        [asked["resourceRecordValue"]])
    validation = one(run, VALIDATION)["inputs"]
    assert validation["certificateArn"] == certificate["outputs"]["arn"]
    assert validation["validationRecordFqdns"] == [validation_record["outputs"]["fqdn"]]
    # The listener takes the certificate once validated, never a pending one.
    assert one(run, LISTENER)["inputs"]["certificateArn"] == one(run, VALIDATION)["outputs"]["certificateArn"]
    balancer = one(run, BALANCER)["outputs"]
    alias = records["A"]["inputs"]
    assert (alias["zoneId"], alias["name"]) == (zone, domain) and "records" not in alias
    assert alias["aliases"] == [{"name": balancer["dnsName"], "zoneId": balancer["zoneId"],
                                 "evaluateTargetHealth": True}]
    assert run["outputs"]["endpoint"] == f"https://{domain}:8081"
    # No stack CA: clients verify the public certificate against their system's CAs.
    assert not [r for r in run["resources"] if r["type"].startswith("tls:")]
    assert "caCertificate" not in run["outputs"]


def test_tls_false_keeps_a_plain_http_listener_and_warns():
    run = fleet({"pixtral:tls": "false"})
    listener = one(run, LISTENER)["inputs"]
    assert listener["protocol"] == "HTTP" and "sslPolicy" not in listener and "certificateArn" not in listener
    assert not resources_of(run, ACM_CERTIFICATE) and "caCertificate" not in run["outputs"]
    assert run["outputs"]["endpoint"].startswith("http://")
    (warning,) = [line for line in run["log"] if line.startswith("warning: pixtral:tls is false")]
    assert "remove pixtral:tls to serve HTTPS" in warning


# The scale-in alarm (SkyServe's downscale_delay_seconds): target tracking only scales out; an alarm of our own
# removes replicas once the load has wanted fewer for every minute of downscaleDelaySeconds.
QPS_AUTOSCALE = {"minReplicas": 1, "maxReplicas": 8, "targetQpsPerReplica": 1.5}
QUEUE_AUTOSCALE = {"minReplicas": 2, "maxReplicas": 8, "targetQueuePerReplica": 2.5}


def autoscaled(autoscale: dict, **extra) -> dict:
    return fleet({"pixtral:autoscale": json.dumps({**autoscale, **extra})})


@pytest.mark.parametrize("autoscale", [QPS_AUTOSCALE, QUEUE_AUTOSCALE], ids=["qps", "queue"])
def test_target_tracking_never_scales_in(autoscale):
    tracking = tracking_policy(autoscaled(autoscale))["targetTrackingConfiguration"]
    assert tracking["disableScaleIn"] is True, "AWS's own scale-in alarm (15 minutes) would ignore the delay"


@pytest.mark.parametrize("autoscale", [QPS_AUTOSCALE, QUEUE_AUTOSCALE], ids=["qps", "queue"])
@pytest.mark.parametrize(("delay", "minutes"), [(None, 20), (1200, 20), (300, 5), (90, 2), (0, 1), (86400, 1440)])
def test_scale_in_waits_every_minute_of_downscale_delay(autoscale, delay, minutes):
    run = autoscaled(autoscale, **({} if delay is None else {"downscaleDelaySeconds": delay}))
    alarm = one(run, ALARM)["inputs"]
    assert (alarm["evaluationPeriods"], alarm["datapointsToAlarm"]) == (minutes, minutes), \
        f"downscaleDelaySeconds {delay}: every one of {minutes} one-minute periods must want fewer replicas"
    assert {q["metric"]["period"] for q in alarm["metricQueries"] if "metric" in q} == {60}
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    assert alarm["treatMissingData"] == "notBreaching", "a gap in the data restarts the wait"


@pytest.mark.parametrize("autoscale", [QPS_AUTOSCALE, QUEUE_AUTOSCALE], ids=["qps", "queue"])
def test_scale_in_alarm_removes_one_replica_per_step(autoscale):
    run = autoscaled(autoscale)
    (step,) = [p for p in resources_of(run, POLICY) if p["inputs"]["policyType"] == "SimpleScaling"]
    assert (step["inputs"]["adjustmentType"], step["inputs"]["scalingAdjustment"]) == ("ChangeInCapacity", -1)
    assert step["inputs"]["cooldown"] == 120
    assert one(run, ALARM)["inputs"]["alarmActions"] == [step["outputs"]["arn"]]
    group = one(run, GROUP)
    assert step["inputs"]["autoscalingGroupName"] == group["outputs"]["name"]
    assert "GroupInServiceInstances" in group["inputs"]["enabledMetrics"]
    assert group["inputs"]["metricsGranularity"] == "1Minute"


def _queries(alarm: dict) -> dict[str, dict]:
    return {q["id"]: q for q in alarm["metricQueries"]}


def _excess(alarm: dict, values: dict[str, float | None]) -> float:
    """The alarm's returned expression for one minute's metric values (None: no datapoint), evaluated with the
    semantics of the CloudWatch metric-math functions it uses."""
    functions = {"CEIL": math.ceil, "FILL": lambda value, filler: filler if value is None else value,
                 "IF": lambda condition, then, otherwise: then if condition else otherwise}
    scope = dict(values)
    for query in alarm["metricQueries"]:
        if "expression" in query:
            scope[query["id"]] = eval(query["expression"], {"__builtins__": {}, **functions}, scope)  # noqa: S307
    (returned,) = [q["id"] for q in alarm["metricQueries"] if q["returnData"]]
    return scope[returned]


@pytest.mark.parametrize(("requests_per_minute", "in_service"), [
    (None, 3), (0, 3), (1, 3), (90, 3), (91, 3), (180, 3), (181, 3), (270, 3), (400, 3), (0, 1)])
def test_qps_scale_in_is_skyserves_rule_over_the_balancers_request_count(requests_per_minute, in_service):
    run = autoscaled(QPS_AUTOSCALE)
    alarm = one(run, ALARM)["inputs"]
    queries = _queries(alarm)
    requests, group = queries["requests"]["metric"], queries["in_service"]["metric"]
    balancer, target_group = one(run, BALANCER)["outputs"], one(run, TARGET_GROUP)["outputs"]
    assert (requests["namespace"], requests["metricName"], requests["stat"]) == ("AWS/ApplicationELB", "RequestCount",
                                                                                "Sum")
    assert requests["dimensions"] == {"LoadBalancer": balancer["arnSuffix"], "TargetGroup": target_group["arnSuffix"]}
    assert (group["namespace"], group["metricName"]) == ("AWS/AutoScaling", "GroupInServiceInstances")
    assert group["dimensions"] == {"AutoScalingGroupName": one(run, GROUP)["outputs"]["name"]}
    # SkyServe: desired = ceil(requests per second over the 60 s window / targetQpsPerReplica), within [min, max].
    policy = parse_autoscale(json.dumps(QPS_AUTOSCALE))
    wanted = policy.desired_replicas((requests_per_minute or 0) / 60)
    excess = _excess(alarm, {"requests": requests_per_minute, "in_service": in_service})
    assert excess == in_service - wanted
    assert (excess >= alarm["threshold"]) == (in_service > wanted), "breaching exactly when replicas are spare"


@pytest.mark.parametrize(("waiting_per_replica", "in_service"), [
    (None, 4), (0, 4), (0.5, 4), (1.25, 4), (1.3, 4), (2.5, 4), (3, 4), (0, 2)])
def test_queue_scale_in_is_the_fleets_waiting_requests_over_the_target(waiting_per_replica, in_service):
    run = autoscaled(QUEUE_AUTOSCALE)
    alarm = one(run, ALARM)["inputs"]
    queue = _queries(alarm)["queue"]["metric"]
    assert (queue["metricName"], queue["stat"]) == ("vllm:num_requests_waiting", "Average")
    # The series the replicas publish (their scrape label is the metric's dimension).
    scrape = yaml.safe_load(vm_files(run)[SCRAPE_CONFIG_FILE])
    assert scrape["scrape_configs"][0]["static_configs"][0]["labels"] == queue["dimensions"]
    policy = parse_autoscale(json.dumps(QUEUE_AUTOSCALE))
    wanted = policy.desired_replicas((waiting_per_replica or 0) * in_service)
    excess = _excess(alarm, {"queue": waiting_per_replica, "in_service": in_service})
    assert excess == in_service - wanted


def test_downscale_delay_beyond_a_day_is_refused_before_any_resource():
    run = run_stack("aws-fleet", {"pixtral:autoscale": json.dumps({**QPS_AUTOSCALE, "downscaleDelaySeconds": 86401})})
    assert run["error"] and "pixtral:autoscale" in run["error"] and "downscaleDelaySeconds=86401" in run["error"]
    assert "86400" in run["error"] and run["resources"] == []


# Scale to zero (docs/scaling.md "Scale to zero"): minReplicas 0, a wake alarm on the balancer's refused requests, the
# scale-in rule down to 0. The shipped stack keeps one on-demand replica, which a fleet at zero cannot have.
ZERO_QPS = {"minReplicas": 0, "maxReplicas": 4, "targetQpsPerReplica": 1.5}
ZERO_QUEUE = {"minReplicas": 0, "maxReplicas": 4, "targetQueuePerReplica": 2.5}


def at_zero(autoscale: dict, **settings) -> dict:
    return fleet({"pixtral:onDemandBaseReplicas": "0", "pixtral:autoscale": json.dumps(autoscale), **settings})


def named(run: dict, type_: str, name: str) -> dict:
    (resource,) = [r for r in resources_of(run, type_) if r["name"] == name]
    return resource


@pytest.mark.parametrize("autoscale", [ZERO_QPS, ZERO_QUEUE], ids=["qps", "queue"])
def test_a_fleet_at_zero_has_a_minimum_of_zero_and_joins_the_balancer_only_once_vllm_answers(autoscale):
    run = at_zero(autoscale)
    group = one(run, GROUP)
    assert (group["inputs"]["minSize"], group["inputs"]["maxSize"]) == (0, 4)
    assert {"GroupInServiceInstances", "GroupDesiredCapacity"} <= set(group["inputs"]["enabledMetrics"])
    # Held at launch until vLLM answers, so that callers get the balancer's 503 until then, not a loading replica.
    (hook,) = group["inputs"]["initialLifecycleHooks"]
    assert hook["lifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
    files = vm_files(run)
    assert environment_file(files)["PIXTRAL_LIFECYCLE_HOOK"] == hook["name"]
    assert "/etc/systemd/system/pixtral-lifecycle.service" in files
    policy = named(run, "aws:iam/rolePolicy:RolePolicy", "pixtral-lifecycle")
    assert json.loads(policy["inputs"]["policy"])["Statement"][0]["Resource"] == group["outputs"]["arn"]


def test_a_fleet_with_a_minimum_declares_no_wake_and_no_launch_hold():
    run = autoscaled(QPS_AUTOSCALE)
    assert [a["name"] for a in resources_of(run, ALARM)] == ["pixtral-scale-in"]
    assert "initialLifecycleHooks" not in one(run, GROUP)["inputs"]
    assert environment_file(vm_files(run))["PIXTRAL_LIFECYCLE_HOOK"] == ""


@pytest.mark.parametrize("autoscale", [ZERO_QPS, ZERO_QUEUE], ids=["qps", "queue"])
def test_refused_requests_at_zero_set_one_replica_at_once(autoscale):
    run = at_zero(autoscale)
    wake = named(run, POLICY, "pixtral-wake")["inputs"]
    # A step policy has no cooldown to wait out; exact capacity 1, however often the alarm re-invokes it.
    assert (wake["policyType"], wake["adjustmentType"]) == ("StepScaling", "ExactCapacity")
    assert wake["stepAdjustments"] == [{"scalingAdjustment": 1, "metricIntervalLowerBound": "0"}]
    assert "cooldown" not in wake and wake["autoscalingGroupName"] == one(run, GROUP)["outputs"]["name"]
    alarm = named(run, ALARM, "pixtral-wake")["inputs"]
    assert alarm["alarmActions"] == [named(run, POLICY, "pixtral-wake")["outputs"]["arn"]]
    assert (alarm["evaluationPeriods"], alarm["datapointsToAlarm"], alarm["threshold"]) == (1, 1, 1)
    assert alarm["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    queries = _queries(alarm)
    refused, desired = queries["refused"]["metric"], queries["desired"]["metric"]
    # What an ALB with no registered target answers, counted where RequestCount (target answers only) does not.
    assert (refused["namespace"], refused["metricName"], refused["stat"], refused["period"]) == (
        "AWS/ApplicationELB", "HTTPCode_ELB_503_Count", "Sum", 60)
    assert refused["dimensions"] == {"LoadBalancer": one(run, BALANCER)["outputs"]["arnSuffix"]}
    assert (desired["namespace"], desired["metricName"], desired["stat"]) == ("AWS/AutoScaling",
                                                                            "GroupDesiredCapacity", "Maximum")
    assert desired["dimensions"] == {"AutoScalingGroupName": one(run, GROUP)["outputs"]["name"]}
    for refused_count, wanted, fires in [(None, 0, False), (0, 0, False), (1, 0, True), (40, 0, True),
                                         (40, 1, False), (40, 3, False), (40, None, False)]:
        value = _excess(alarm, {"refused": refused_count, "desired": wanted})
        assert (value >= alarm["threshold"]) == fires, (refused_count, wanted, value)


@pytest.mark.parametrize(("autoscale", "minute", "last_replica_goes"), [
    (ZERO_QPS, {"requests": None}, True),
    (ZERO_QPS, {"requests": 0}, True),
    (ZERO_QPS, {"requests": 1}, False),
    (ZERO_QUEUE, {"queue": None, "requests": None}, True),
    (ZERO_QUEUE, {"queue": 0, "requests": None}, True),
    # Generating with nothing waiting: an empty queue, and not idle.
    (ZERO_QUEUE, {"queue": 0, "requests": 2}, False),
    (ZERO_QUEUE, {"queue": 3, "requests": 2}, False),
], ids=["qps-no-data", "qps-none", "qps-one", "queue-no-data", "queue-empty-idle", "queue-empty-busy",
        "queue-waiting"])
def test_the_last_replica_goes_only_after_minutes_without_a_request(autoscale, minute, last_replica_goes):
    run = at_zero(autoscale)
    alarm = named(run, ALARM, "pixtral-scale-in")["inputs"]
    if "requests" in minute:
        requests = _queries(alarm)["requests"]["metric"]
        assert (requests["metricName"], requests["dimensions"]) == ("RequestCount", {
            "LoadBalancer": one(run, BALANCER)["outputs"]["arnSuffix"],
            "TargetGroup": one(run, TARGET_GROUP)["outputs"]["arnSuffix"]})
    excess = _excess(alarm, {"in_service": 1, **minute})
    assert (excess >= alarm["threshold"]) == last_replica_goes, (minute, excess)
    assert _excess(alarm, {"in_service": 0, **minute}) < alarm["threshold"], "nothing to remove at zero"


@pytest.mark.parametrize("warm_pool", [False, True], ids=["cold", "warm-pool"])
def test_pulumi_up_states_what_the_first_caller_waits(warm_pool):
    settings = {**WARM, "pixtral:warmPool": "1"} if warm_pool else {}
    run = at_zero(ZERO_QPS, **settings)
    spec = load_spec({k.split(":", 1)[1]: v for k, v in run["config"].items() if k.startswith("pixtral:")})
    detection, start = wake_from_zero(spec)
    assert detection == Aws.wake_detection_seconds
    # Without a pool the replica boots from the artefact store an earlier replica filled (warmStarts is on).
    assert start.total == (warm_start(spec) if warm_pool else later_boot(spec)).total
    (line,) = [line for line in run["log"] if line.startswith("info: scale to zero")]
    assert f"about {detection + start.total:.0f} s from the first request" in line, line
    assert ("resumed from the warm pool" in line) == warm_pool
    assert ("a boot from the stack's artefact store" in line) != warm_pool
    if warm_pool:
        group = one(run, GROUP)["inputs"]
        assert group["warmPool"]["minSize"] == 1 and group["minSize"] == 0
        assert len(group["initialLifecycleHooks"]) == 1


def test_an_on_demand_base_with_a_fleet_at_zero_is_refused_before_any_resource():
    run = run_stack("aws-fleet", {"pixtral:autoscale": json.dumps(ZERO_QPS)})  # the stack keeps one on-demand
    assert run["error"] and "pixtral:onDemandBaseReplicas" in run["error"], run["error"]
    assert "at most autoscale.minReplicas (0)" in run["error"] and run["resources"] == []


def _documented_wake(marker: str) -> str:
    text = (PROJECT_DIR / "docs" / "fleets.md").read_text()
    (found,) = re.findall(rf"<!-- wake:{marker} -->~(\d+) s<!-- /wake -->", text)
    return found


@pytest.mark.parametrize(("marker", "settings"), [
    ("aws-cold", {}),
    ("aws-warm", {**WARM, "pixtral:warmPool": "1"}),
], ids=["cold", "warm-pool"])
def test_the_fleet_docs_state_the_wake_the_program_estimates(marker, settings):
    run = at_zero(ZERO_QPS, **settings)
    detection, start = wake_from_zero(load_spec({k.split(":", 1)[1]: v for k, v in run["config"].items()
                                                 if k.startswith("pixtral:")}))
    assert _documented_wake(marker) == f"{detection + start.total:.0f}"
