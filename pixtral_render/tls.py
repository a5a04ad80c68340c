"""What the `tls` provider returns for each of its resources, computed for the mock engine with `cryptography`.

The provider makes keys and certificates locally (no cloud), so the mock does the same: real PEM from the
resource's inputs, which tests parse to check the subject alternative names, the signature chain and the key usage.
Unlike the provider, the mock is deterministic (keys derived from the resource's name, deterministic ECDSA, serials
from the inputs, validity from today's midnight, or from RENDER_DAY_VARIABLE's day when set): two runs of one stack
declare the same user data, as two `pulumi up` runs do with the certificate kept in the state.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import os
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TLS_TYPES = ("tls:index/privateKey:PrivateKey", "tls:index/selfSignedCert:SelfSignedCert",
             "tls:index/certRequest:CertRequest", "tls:index/locallySignedCert:LocallySignedCert")


# The provider's curve names (its default is P224).
_CURVES = {"P224": ec.SECP224R1, "P256": ec.SECP256R1, "P384": ec.SECP384R1, "P521": ec.SECP521R1}


def _pem(data: bytes) -> str:
    return data.decode()


def _key(pem: str) -> ec.EllipticCurvePrivateKey:
    return serialization.load_pem_private_key(pem.encode(), password=None)


def _name(subject: dict[str, Any] | None) -> x509.Name:
    subject = subject or {}
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, subject["commonName"])] if subject.get("commonName") else []
    if subject.get("organization"):
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject["organization"]))
    return x509.Name(attributes)


def _alternative_names(inputs: dict[str, Any]) -> list[x509.GeneralName]:
    return ([x509.DNSName(name) for name in inputs.get("dnsNames") or []]
            + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in inputs.get("ipAddresses") or []])


def _digest(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest(), "big")


def _private_key(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    assert inputs.get("algorithm") == "ECDSA", "the mock makes the ECDSA keys the program asks for"
    # Any integer in [1, n) is a valid key; n > 2**223 for every curve here.
    key = ec.derive_private_key(_digest("mock key", name) % (2**223) + 1, _CURVES[inputs.get("ecdsaCurve", "P224")]())
    return {
        "privateKeyPem": _pem(key.private_bytes(serialization.Encoding.PEM,
                                                serialization.PrivateFormat.TraditionalOpenSSL,
                                                serialization.NoEncryption())),
        "privateKeyPemPkcs8": _pem(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption())),
        "publicKeyPem": _pem(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo)),
    }


# YYYY-MM-DD: the day every certificate's validity starts from, in place of today. A test session sets it once, so
# that runs on either side of midnight declare the same certificates (a suite that ran across midnight compared a
# render after it with a run before it, and their user data differed).
RENDER_DAY_VARIABLE = "PIXTRAL_RENDER_DAY"


def validity_start() -> datetime.datetime:
    day = os.environ.get(RENDER_DAY_VARIABLE)
    if day:
        return datetime.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=datetime.timezone.utc)
    return datetime.datetime.now(datetime.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def _certificate(subject: x509.Name, issuer: x509.Name, public_key: Any, signer: Any, inputs: dict[str, Any],
                 names: list[x509.GeneralName]) -> str:
    now = validity_start()
    uses = set(inputs.get("allowedUses") or [])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(_digest("serial", inputs) >> 100).not_valid_before(now)
               .not_valid_after(now + datetime.timedelta(hours=int(inputs["validityPeriodHours"])))
               .add_extension(x509.BasicConstraints(ca=bool(inputs.get("isCaCertificate")), path_length=None),
                              critical=True))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if "server_auth" in uses:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    builder = builder.add_extension(x509.KeyUsage(
        digital_signature="digital_signature" in uses, content_commitment=False,
        key_encipherment="key_encipherment" in uses, data_encipherment=False, key_agreement=False,
        key_cert_sign="cert_signing" in uses, crl_sign="crl_signing" in uses, encipher_only=False,
        decipher_only=False), critical=True)
    return _pem(builder.sign(signer, hashes.SHA256(), ecdsa_deterministic=True).public_bytes(
        serialization.Encoding.PEM))


def _self_signed(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    key = _key(inputs["privateKeyPem"])
    name = _name(inputs.get("subject"))
    return {"certPem": _certificate(name, name, key.public_key(), key, inputs, _alternative_names(inputs)),
            "readyForRenewal": False}


def _request(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    builder = x509.CertificateSigningRequestBuilder().subject_name(_name(inputs.get("subject")))
    if names := _alternative_names(inputs):
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    request = builder.sign(_key(inputs["privateKeyPem"]), hashes.SHA256(), ecdsa_deterministic=True)
    return {"certRequestPem": _pem(request.public_bytes(serialization.Encoding.PEM))}


def _locally_signed(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    request = x509.load_pem_x509_csr(inputs["certRequestPem"].encode())
    ca = x509.load_pem_x509_certificate(inputs["caCertPem"].encode())
    try:
        names = list(request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        names = []
    return {"certPem": _certificate(request.subject, ca.subject, request.public_key(),
                                    _key(inputs["caPrivateKeyPem"]), inputs, names),
            "readyForRenewal": False}


def tls_outputs(type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The outputs the provider would add to `inputs` for the resource `name` of one of TLS_TYPES."""
    make = {"tls:index/privateKey:PrivateKey": _private_key, "tls:index/selfSignedCert:SelfSignedCert": _self_signed,
            "tls:index/certRequest:CertRequest": _request,
            "tls:index/locallySignedCert:LocallySignedCert": _locally_signed}[type_]
    return make(name, inputs)
