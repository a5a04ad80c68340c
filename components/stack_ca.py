"""The stack's own certificate authority, and the server certificates it signs for an endpoint's names.

No public CA can issue a certificate for a bare Elastic IP / static address (or, without ACME, for the user's
domain on a single VM), so each stack has a CA of its own: its certificate is the public `caCertificate` output
clients trust (curl --cacert, httpx verify=, pixtralctl), its key stays a Pulumi secret in the state. A load
balancer in front of a fleet can use a managed public certificate instead (ACM, Google-managed) and needs no CA.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

from pixtral_deploy.cloudinit import TlsFiles

# ECDSA P-256: accepted by every TLS client in use, and fast for the server's handshakes.
KEY_ALGORITHM = "ECDSA"
KEY_CURVE = "P256"
CA_VALIDITY_HOURS = 10 * 365 * 24
# The CA is renewed a year ahead; a new CA changes `caCertificate`, which pixtralctl reads on every run.
CA_EARLY_RENEWAL_HOURS = 365 * 24
SERVER_VALIDITY_HOURS = 365 * 24
# `pulumi up` during the last 30 days of a server certificate issues a new one; it reaches the server like a rotated
# API key does (VM: new secret version, so a replaced VM; pods: new Secret name, so the pods roll).
SERVER_EARLY_RENEWAL_HOURS = 30 * 24
ORGANIZATION = "pixtral-deploy"
# Names every server certificate carries besides the endpoint's: the VM's own health check calls 127.0.0.1, and
# `kubectl port-forward` users call localhost.
LOOPBACK_IPS = ("127.0.0.1",)
LOOPBACK_NAMES = ("localhost",)


@dataclass
class ServerCertificate:
    """A server's certificate (public, PEM) and its private key (a Pulumi secret, PEM)."""

    cert_pem: pulumi.Output[str]
    private_key_pem: pulumi.Output[str]


class StackCa(pulumi.ComponentResource):
    """A private key and a self-signed CA certificate, made once per stack; `issue` signs server certificates."""

    cert_pem: pulumi.Output[str]

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pixtral:tls:StackCa", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = tls.PrivateKey(f"{name}-ca-key", algorithm=KEY_ALGORITHM, ecdsa_curve=KEY_CURVE, opts=child)
        self._private_key_pem = pulumi.Output.secret(key.private_key_pem)
        certificate = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=self._private_key_pem,
            is_ca_certificate=True,
            subject=tls.SelfSignedCertSubjectArgs(common_name=f"pixtral-deploy CA ({pulumi.get_stack()})",
                                                  organization=ORGANIZATION),
            validity_period_hours=CA_VALIDITY_HOURS,
            early_renewal_hours=CA_EARLY_RENEWAL_HOURS,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=child,
        )
        # Public by nature: unsecret, in case the engine marks it secret for the key it was made with.
        self.cert_pem = pulumi.Output.unsecret(certificate.cert_pem)
        self.register_outputs({"cert_pem": self.cert_pem})

    def issue(self, name: str, ip_addresses: pulumi.Input[Sequence[pulumi.Input[str]]],
              dns_names: pulumi.Input[Sequence[pulumi.Input[str]]], parent: pulumi.Resource,
              loopback: bool = True) -> ServerCertificate:
        """A server certificate for exactly these names (the subject alternative names clients check), declared as
        children of `parent`, the component that serves with it. `loopback=False` leaves out the loopback names,
        for a certificate no one reaches at 127.0.0.1 (a load balancer's)."""
        child = pulumi.ResourceOptions(parent=parent)
        loopback_ips, loopback_names = (LOOPBACK_IPS, LOOPBACK_NAMES) if loopback else ((), ())
        ip_addresses = pulumi.Output.from_input(ip_addresses).apply(lambda ips: [*ips, *loopback_ips])
        dns_names = pulumi.Output.from_input(dns_names).apply(lambda names: [*names, *loopback_names])
        key = tls.PrivateKey(f"{name}-tls-key", algorithm=KEY_ALGORITHM, ecdsa_curve=KEY_CURVE, opts=child)
        private_key_pem = pulumi.Output.secret(key.private_key_pem)
        request = tls.CertRequest(
            f"{name}-tls-request",
            private_key_pem=private_key_pem,
            ip_addresses=ip_addresses,
            dns_names=dns_names,
            subject=tls.CertRequestSubjectArgs(common_name="pixtral-deploy server", organization=ORGANIZATION),
            opts=child,
        )
        certificate = tls.LocallySignedCert(
            f"{name}-tls",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=self._private_key_pem,
            ca_cert_pem=self.cert_pem,
            validity_period_hours=SERVER_VALIDITY_HOURS,
            early_renewal_hours=SERVER_EARLY_RENEWAL_HOURS,
            allowed_uses=["digital_signature", "key_encipherment", "server_auth"],
            opts=child,
        )
        return ServerCertificate(pulumi.Output.unsecret(certificate.cert_pem), private_key_pem)

    def tls_files(self, certificate: ServerCertificate) -> pulumi.Output[TlsFiles]:
        """The public files a VM's cloud-init writes for `certificate`: it, and this CA's (for the health check)."""
        return pulumi.Output.all(certificate.cert_pem, self.cert_pem).apply(lambda pems: TlsFiles(pems[0], pems[1]))
