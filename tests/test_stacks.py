"""Every shipped stack file, run through the real program: what a user gets from `pulumi up`."""

from __future__ import annotations

import re

from conftest import resources_of, run_stack, tls_on

VM_INSTANCE_TYPES = {"aws": "aws:ec2/instance:Instance", "gcp": "gcp:compute/instance:Instance"}


def test_outputs_ci_reads_are_present_and_well_formed(deployed):
    outputs = deployed["outputs"]
    port = int(deployed["config"].get("pixtral:port", 8081))
    scheme = "https" if tls_on(deployed) else "http"
    assert re.fullmatch(rf"{scheme}://[^/:]+:{port}", outputs["endpoint"]), outputs["endpoint"]
    assert outputs["baseUrl"] == outputs["endpoint"] + "/v1"
    assert outputs["model"] == deployed["config"].get("pixtral:servedModelName", "mistralai/Pixtral-12B-2409")
    assert outputs["target"] == deployed["config"]["pixtral:target"]
    assert outputs["apiKey"], "apiKey output is empty"
    if tls_on(deployed):
        assert outputs["caCertificate"].startswith("-----BEGIN CERTIFICATE-----"), "clients need the CA to verify"
    else:
        assert "caCertificate" not in outputs


def test_api_key_output_is_secret_and_the_only_secret(deployed):
    # caCertificate is deliberately plain: clients read it to trust the endpoint.
    assert deployed["secret_outputs"] == ["apiKey"]
    assert ("caCertificate" in deployed["outputs"]) == tls_on(deployed)


def test_tls_false_keeps_the_plain_http_contract(stack):
    run = run_stack(stack, {"pixtral:tls": "false"})
    port = int(run["config"].get("pixtral:port", 8081))
    assert re.fullmatch(rf"http://[^/:]+:{port}", run["outputs"]["endpoint"]), run["outputs"]["endpoint"]
    assert run["secret_outputs"] == ["apiKey"] and "caCertificate" not in run["outputs"]


def test_generated_api_key_when_none_is_configured(deployed):
    passwords = resources_of(deployed, "random:index/randomPassword:RandomPassword")
    assert len(passwords) == 1 and passwords[0]["inputs"]["length"] >= 32
    assert passwords[0]["inputs"]["special"] is False, "the key must survive env files and shells unquoted"


def test_every_resource_is_parented_to_a_pixtral_component(deployed):
    # `pulumi stack` and the console group resources by component; a top-level cloud resource belongs to no part.
    components = [r for r in deployed["resources"] if r["type"].startswith("pixtral:")]
    assert components, "no pixtral:* component declared"
    orphans = [(r["type"], r["name"], r["parent"]) for r in deployed["resources"]
               if not r["type"].startswith("pixtral:") and not (r["parent"] or "").startswith("pixtral:")]
    assert orphans == [], f"resources that are not children of a pixtral: component: {orphans}"
    assert {r["parent"] for r in components} <= {"pulumi:pulumi:Stack"} | {r["type"] for r in components}


def test_no_resource_is_protected_or_retained_on_destroy(deployed):
    # `pulumi destroy` skips protected resources and leaves retainOnDelete ones behind in the cloud, still billed.
    kept = [(r["type"], r["name"], r["options"]) for r in deployed["resources"]
            if r["options"].get("protect") or r["options"].get("retainOnDelete")]
    assert kept == [], f"resources that `pulumi destroy` would not remove: {kept}"
