"""HTTPS by default: every shipped stack serves TLS with a certificate its own CA signs for the endpoint's address,
the private key stays a secret end to end, and `pixtral:tls false` brings plain HTTP back with a warning."""

from __future__ import annotations

import base64
import datetime
import json
from urllib.parse import urlsplit

import pytest
from conftest import (
    STACKS,
    pem_body,
    pod_controller,
    replicas_serve_tls,
    resources_of,
    run_stack,
    target_of,
    tls_on,
    vm_files,
)
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from pixtral_deploy.cloudinit import declared_user_data
from pixtral_deploy.network import is_ip_address
from pixtral_deploy.server import TLS_CA_FILE, TLS_CERT_FILE, TLS_DIR, TLS_KEY_FILE

# The shipped stacks that serve HTTPS (a stack file may set pixtral:tls false).
TLS_STACKS = [s for s in STACKS if tls_on(run_stack(s))]
# Where TLS ends at a load balancer in front of plain-HTTP replicas (the fleets: tests/test_aws_fleet.py,
# tests/test_gcp_fleet.py).
LB_STACKS = [s for s in TLS_STACKS if not replicas_serve_tls(run_stack(s))]
VM_STACKS = [s for s in TLS_STACKS if target_of(s) in ("aws", "gcp") and s not in LB_STACKS]
KUBERNETES_STACKS = [s for s in TLS_STACKS if target_of(s) not in ("aws", "gcp")]
# Where the server's private key may be: the cloud's secret stores and the Kubernetes Secret (encrypted in state).
SECRET_HOLDERS = {
    "aws:ssm/parameter:Parameter": "value",
    # The AWS fleet's balancer: the stack CA's certificate imported into ACM (its key a secret input).
    "aws:acm/certificate:Certificate": "privateKey",
    "gcp:secretmanager/secretVersion:SecretVersion": "secretData",
    "kubernetes:core/v1:Secret": "stringData",
    # The GCP fleet's balancer: its self-managed certificate (the provider marks the input secret).
    "gcp:compute/sSLCertificate:SSLCertificate": "privateKey",
    "gcp:compute/regionSslCertificate:RegionSslCertificate": "privateKey",
}
# A load balancer's certificate that holds the stack CA's server certificate and key.
LB_CERTIFICATES = ("aws:acm/certificate:Certificate", "gcp:compute/sSLCertificate:SSLCertificate",
                   "gcp:compute/regionSslCertificate:RegionSslCertificate")


def _write_files(run: dict) -> dict[str, str]:
    # The one VM's cloud-config, or the one every template of a fleet shares.
    return vm_files(run)


@pytest.fixture(params=TLS_STACKS)
def deployed(request) -> dict:
    """A shipped stack that serves HTTPS, run as shipped."""
    run = run_stack(request.param)
    assert run["error"] is None, f"stack {request.param} failed: {run['error']}"
    return run


def _tls_secret(run: dict) -> dict:
    (secret,) = [s for s in resources_of(run, "kubernetes:core/v1:Secret")
                 if s["inputs"]["type"] == "kubernetes.io/tls"]
    return secret


def _lb_certificate(run: dict) -> dict | None:
    """The load balancer's certificate resource holding the stack CA's certificate, where one terminates HTTPS."""
    (certificate,) = [r for r in run["resources"] if r["type"] in LB_CERTIFICATES] or [None]
    return certificate


def _lb_certificate_pem(resource: dict) -> str:
    # ACM calls the certificate its body; Compute Engine calls it the certificate.
    return resource["inputs"].get("certificateBody") or resource["inputs"]["certificate"]


def _served_certificate(run: dict) -> x509.Certificate:
    """The certificate the server is given: the load balancer's, in the VM's user data, or in the pods' TLS
    Secret."""
    if lb_certificate := _lb_certificate(run):
        return x509.load_pem_x509_certificate(_lb_certificate_pem(lb_certificate).encode())
    if [declared_user_data(r) for r in run["resources"] if declared_user_data(r)]:
        pem = _write_files(run)[f"{TLS_DIR}/{TLS_CERT_FILE}"]
    else:
        pem = _tls_secret(run)["inputs"]["stringData"][TLS_CERT_FILE]
    return x509.load_pem_x509_certificate(pem.encode())


def _stored_private_key(run: dict) -> str:
    """The server's private key, where the stack stores it for the server (or gives it to the load balancer)."""
    if lb_certificate := _lb_certificate(run):
        return lb_certificate["inputs"]["privateKey"]
    for parameter in resources_of(run, "aws:ssm/parameter:Parameter"):
        if parameter["inputs"]["name"].endswith("/tls-key"):
            return parameter["inputs"]["value"]
    for version in resources_of(run, "gcp:secretmanager/secretVersion:SecretVersion"):
        if version["name"].endswith("-tls-key-version"):
            return version["inputs"]["secretData"]
    return _tls_secret(run)["inputs"]["stringData"][TLS_KEY_FILE]


def _sans(certificate: x509.Certificate) -> tuple[list[str], list[str]]:
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ([str(ip) for ip in names.get_values_for_type(x509.IPAddress)],
            names.get_values_for_type(x509.DNSName))


def test_endpoint_is_https_and_the_ca_is_a_plain_output(deployed):
    outputs = deployed["outputs"]
    assert outputs["endpoint"].startswith("https://"), outputs["endpoint"]
    assert outputs["baseUrl"] == outputs["endpoint"] + "/v1"
    ca = x509.load_pem_x509_certificate(outputs["caCertificate"].encode())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert "caCertificate" not in deployed["secret_outputs"], "the CA certificate is public: users must read it"


def test_certificate_names_the_endpoint_and_is_signed_by_the_stack_ca(deployed):
    certificate = _served_certificate(deployed)
    host = urlsplit(deployed["outputs"]["endpoint"]).hostname
    ips, dns_names = _sans(certificate)
    assert host in (ips if is_ip_address(host) else dns_names), f"{host} is not in the certificate: {ips}, {dns_names}"
    ca = x509.load_pem_x509_certificate(deployed["outputs"]["caCertificate"].encode())
    certificate.verify_directly_issued_by(ca)
    usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages


def test_certificate_is_reissued_before_it_expires(deployed):
    (signed,) = resources_of(deployed, "tls:index/locallySignedCert:LocallySignedCert")
    renewal, validity = signed["inputs"]["earlyRenewalHours"], signed["inputs"]["validityPeriodHours"]
    assert 7 * 24 <= renewal < validity, "pulumi up must re-issue the certificate well before it expires"


def test_private_key_is_in_the_secret_store_and_nowhere_else(deployed):
    key = _stored_private_key(deployed)
    assert "PRIVATE KEY-----" in key
    body = pem_body(key)
    for resource in deployed["resources"]:
        if resource["type"].startswith("tls:"):
            continue  # the key's own provider resources: it is made there, as a Pulumi secret
        holder_field = SECRET_HOLDERS.get(resource["type"])
        inputs = {k: v for k, v in resource["inputs"].items() if k != holder_field}
        text = json.dumps(inputs) + (declared_user_data(resource) or "")
        assert body not in text and body[:64] not in text, \
            f"{resource['type']} {resource['name']} carries the TLS private key outside a secret store"
    assert body[:64] not in json.dumps(deployed["outputs"]), "the TLS private key is in an output"
    assert body[:64] not in "\n".join(deployed["log"]), "the TLS private key is in the log"


def test_the_server_is_started_with_the_key_and_certificate_it_is_given(deployed):
    if lb_certificate := _lb_certificate(deployed):
        # TLS ends at the load balancer: the replicas serve plain HTTP inside the VPC, and hold no key.
        files = _write_files(deployed)
        assert not [a for a in files["/etc/pixtral/vllm.args"].splitlines() if a.startswith("--ssl-")]
        assert "PIXTRAL_SCHEME=http\n" in files["/etc/pixtral/pixtral.env"]
        assert "PIXTRAL_TLS_KEY_SECRET=\n" in files["/etc/pixtral/pixtral.env"]
        assert not [path for path in files if path.startswith(TLS_DIR)]
        for listener in resources_of(deployed, "aws:lb/listener:Listener"):
            assert listener["inputs"]["certificateArn"] == lb_certificate["outputs"]["arn"]
        return
    if deployed["config"]["pixtral:target"] in ("aws", "gcp"):
        files = _write_files(deployed)
        args = files["/etc/pixtral/vllm.args"].splitlines()
        env = dict(line.split("=", 1) for line in files["/etc/pixtral/pixtral.env"].splitlines() if line)
        assert args[args.index("--ssl-certfile") + 1] in files, "vLLM's certificate file is not written"
        # fetch-secrets.sh writes the key there (tests/test_vm_updates.py runs it).
        assert args[args.index("--ssl-keyfile") + 1] == env["PIXTRAL_TLS_KEY_FILE"]
        assert env["PIXTRAL_TLS_KEY_SECRET"] and f"{TLS_DIR}/{TLS_KEY_FILE}" not in files
        return
    deployment = pod_controller(deployed)
    pod = deployment["inputs"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "tls"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "tls"]
    assert mount["readOnly"] is True
    assert args[args.index("--ssl-keyfile") + 1] == f"{mount['mountPath']}/{TLS_KEY_FILE}"
    assert args[args.index("--ssl-certfile") + 1] == f"{mount['mountPath']}/{TLS_CERT_FILE}"
    secret = _tls_secret(deployed)
    # Generated name: a renewed certificate is a new Secret, so the pod template changes and the pods roll.
    assert "name" not in secret["inputs"]["metadata"]
    assert volume["secret"]["secretName"] == secret["outputs"]["metadata"]["name"]
    assert volume["secret"]["defaultMode"] & 0o007 == 0, "the key must not be readable by every user in the pod"


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_kubelet_probes_speak_https(stack):
    deployment = pod_controller(run_stack(stack))
    (container,) = deployment["inputs"]["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS", probe


@pytest.mark.parametrize("stack", VM_STACKS)
def test_the_vms_health_check_verifies_the_server_with_the_stack_ca(stack):
    run = run_stack(stack)
    files = _write_files(run)
    env = dict(line.split("=", 1) for line in files["/etc/pixtral/pixtral.env"].splitlines() if line)
    assert env["PIXTRAL_SCHEME"] == "https"
    assert files[env["PIXTRAL_TLS_CA_FILE"]] == run["outputs"]["caCertificate"]
    assert env["PIXTRAL_TLS_CA_FILE"] == f"{TLS_DIR}/{TLS_CA_FILE}"
    # await-ready.sh calls 127.0.0.1 and verifies with --cacert: the certificate must name it.
    assert "127.0.0.1" in _sans(_served_certificate(run))[0]
    assert '--cacert "$PIXTRAL_TLS_CA_FILE"' in files["/usr/local/lib/pixtral/await-ready.sh"]


@pytest.mark.parametrize("stack", STACKS)
def test_tls_false_serves_plain_http_with_a_warning(stack):
    run = run_stack(stack, {"pixtral:tls": "false"})
    assert run["error"] is None, run["error"]
    assert run["outputs"]["endpoint"].startswith("http://"), run["outputs"]["endpoint"]
    assert "caCertificate" not in run["outputs"]
    assert not [r for r in run["resources"] if r["type"].startswith("tls:")]
    assert any(line.startswith("warning: pixtral:tls is false") for line in run["log"]), run["log"]
    text = json.dumps([r["inputs"] for r in run["resources"]]) + "".join(
        declared_user_data(r) or "" for r in run["resources"])
    assert "--ssl-" not in text and "kubernetes.io/tls" not in text
    if target_of(stack) in ("aws", "gcp"):
        files = _write_files(run)
        assert "PIXTRAL_SCHEME=http\n" in files["/etc/pixtral/pixtral.env"]
        assert not [path for path in files if path.startswith(TLS_DIR)]
    else:
        deployment = pod_controller(run)
        (container,) = deployment["inputs"]["spec"]["template"]["spec"]["containers"]
        assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTP"


def test_the_default_https_run_logs_no_plain_http_warning(deployed):
    assert not any("pixtral:tls" in line for line in deployed["log"])


DOMAIN = "pixtral.example.com"
ZONES = {"aws": "Z0123456789ABCDEFGHIJ", "gcp": "example-com", "eks": "Z0123456789ABCDEFGHIJ",
         "gke": "example-com"}
# The clusters the program creates, whose cloud's DNS it writes to; and the existing ones, whose cloud it does not know.
CLUSTER_STACKS = [s for s in KUBERNETES_STACKS if target_of(s) in ("eks", "gke")]
EXISTING_CLUSTER_STACKS = [s for s in KUBERNETES_STACKS if target_of(s) == "kubernetes"]


@pytest.mark.parametrize("stack", VM_STACKS)
def test_domain_gets_a_dns_record_the_endpoint_and_the_certificate(stack):
    target = target_of(stack)
    run = run_stack(stack, {"pixtral:domain": DOMAIN, "pixtral:dnsZone": ZONES[target]})
    assert run["error"] is None, run["error"]
    assert run["outputs"]["endpoint"] == f"https://{DOMAIN}:8081"
    address = run["outputs"]["publicIp"]
    if target == "aws":
        (record,) = resources_of(run, "aws:route53/record:Record")
        assert (record["inputs"]["zoneId"], record["inputs"]["name"], record["inputs"]["type"],
                record["inputs"]["records"]) == (ZONES[target], DOMAIN, "A", [address])
    else:
        (record,) = resources_of(run, "gcp:dns/recordSet:RecordSet")
        assert (record["inputs"]["managedZone"], record["inputs"]["name"], record["inputs"]["type"],
                record["inputs"]["rrdatas"]) == (ZONES[target], f"{DOMAIN}.", "A", [address])
    assert record["parent"].startswith("pixtral:")
    ips, dns_names = _sans(_served_certificate(run))
    assert DOMAIN in dns_names and address in ips


@pytest.mark.parametrize(("settings", "message"), [
    ({"pixtral:domain": DOMAIN}, "pixtral:domain: pixtral.example.com is not allowed; expected pixtral:dnsZone"),
    ({"pixtral:dnsZone": "Z0123"}, "pixtral:dnsZone: Z0123 is not allowed; expected pixtral:domain"),
    ({"pixtral:domain": "https://pixtral.example.com", "pixtral:dnsZone": "Z0123"},
     "pixtral:domain: https://pixtral.example.com is not allowed; expected a lowercase DNS name"),
    ({"pixtral:tls": "yes"}, "pixtral:tls: yes is not allowed; expected true or false"),
])
def test_bad_tls_settings_name_the_key(settings, message):
    run = run_stack("aws", settings)
    assert run["error"] is not None and message in run["error"], run["error"]
    assert not [r for r in run["resources"] if not r["type"].startswith("pixtral:")], "declared before the error"


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
def test_domain_on_a_created_cluster_names_the_services_load_balancer(stack):
    target = target_of(stack)
    run = run_stack(stack, {"pixtral:domain": DOMAIN, "pixtral:dnsZone": ZONES[target]})
    assert run["error"] is None, run["error"]
    (service,) = resources_of(run, "kubernetes:core/v1:Service")
    (port,) = service["inputs"]["spec"]["ports"]
    assert run["outputs"]["endpoint"] == f"https://{DOMAIN}:{port['port']}"
    (ingress,) = service["outputs"]["status"]["loadBalancer"]["ingress"]
    if target == "eks":
        # AWS load balancers publish a name, not an address: the domain is an alias of it.
        (record,) = resources_of(run, "aws:route53/record:Record")
        assert (record["inputs"]["zoneId"], record["inputs"]["name"], record["inputs"]["type"],
                record["inputs"]["records"]) == (ZONES[target], DOMAIN, "CNAME", [ingress["hostname"]])
        address = ingress["hostname"]
    else:
        (record,) = resources_of(run, "gcp:dns/recordSet:RecordSet")
        assert (record["inputs"]["managedZone"], record["inputs"]["name"], record["inputs"]["type"],
                record["inputs"]["rrdatas"]) == (ZONES[target], f"{DOMAIN}.", "A", [ingress["ip"]])
        address = ingress["ip"]
    assert record["parent"].startswith("pixtral:")
    certificate = _served_certificate(run)
    ips, dns_names = _sans(certificate)
    # The domain for clients, and still the load balancer's address and the in-cluster name.
    assert DOMAIN in dns_names and address in ips + dns_names, (ips, dns_names)
    assert any(name.endswith(".svc.cluster.local") for name in dns_names), dns_names
    certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(run["outputs"]["caCertificate"].encode()))


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
def test_domain_without_a_load_balancer_is_refused_by_name(stack):
    run = run_stack(stack, {"pixtral:domain": DOMAIN, "pixtral:dnsZone": ZONES[target_of(stack)],
                            "pixtral:serviceType": "ClusterIP"})
    assert "pixtral:domain: pixtral.example.com is not allowed; expected no domain with pixtral:serviceType " \
           "ClusterIP" in (run["error"] or ""), run["error"]
    assert not [r for r in run["resources"] if not r["type"].startswith("pixtral:")], "declared before the error"


@pytest.mark.parametrize("stack", EXISTING_CLUSTER_STACKS)
def test_domain_is_refused_on_an_existing_cluster_by_name(stack):
    run = run_stack(stack, {"pixtral:domain": DOMAIN, "pixtral:dnsZone": "zone"})
    error = run["error"] or ""
    assert ("pixtral:domain only applies to target aws, gcp, eks or gke, not to pixtral:target kubernetes (the "
            "program knows no DNS service of an existing cluster's cloud") in error, error
    assert "pixtral:dnsZone only applies to target aws, gcp, eks or gke" in error, error
    assert not [r for r in run["resources"] if not r["type"].startswith("pixtral:")], "declared before the error"


def test_ssl_flags_in_extra_args_are_refused():
    run = run_stack("aws", {"pixtral:extraArgs": json.dumps(["--ssl-certfile", "/tmp/c.pem"])})
    assert "reads it as --ssl-certfile, which is set from pixtral:tls" in (run["error"] or ""), run["error"]


def test_load_balancer_service_waits_only_for_its_address():
    # The pods mount a certificate naming the load balancer's address: the Service must not wait for the pods.
    run = run_stack("eks")
    (service,) = resources_of(run, "kubernetes:core/v1:Service")
    assert service["inputs"]["metadata"]["annotations"]["pulumi.com/waitFor"] == \
        "jsonpath={.status.loadBalancer.ingress}"


def test_mock_key_pem_is_real(deployed):
    # Guards the searches above: the key they look for must be a real PEM key, not an empty or fixed string.
    key = _stored_private_key(deployed)
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    assert load_pem_private_key(key.encode(), password=None).key_size >= 256
    assert base64.b64decode(pem_body(key))


def test_a_session_declares_one_day_s_certificates_across_midnight(monkeypatch):
    """The mock's certificates start on the session's day (tests/conftest.py sets it), not on the clock's: a render
    after midnight declares the user data a run before it did."""
    from pixtral_render.tls import RENDER_DAY_VARIABLE, validity_start

    monkeypatch.setenv(RENDER_DAY_VARIABLE, "2026-12-06")
    assert validity_start().isoformat() == "2026-12-06T00:00:00+00:00"
    monkeypatch.delenv(RENDER_DAY_VARIABLE)
    assert validity_start().hour == 0 and validity_start().date() >= datetime.date(2026, 12, 7)
