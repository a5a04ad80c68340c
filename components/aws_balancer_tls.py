"""HTTPS at the AWS fleet's Application Load Balancer: the ACM certificate its listener serves, and the domain's
alias record.

TLS ends at the balancer; it reaches the replicas over plain HTTP inside the VPC, as SkyServe's load balancer does
(the replicas' security group admits the API port from the balancer's group only). With `pixtral:domain` the
certificate is a public one ACM issues and renews itself once a DNS record proves the domain; without one, the stack
CA signs a certificate for the balancer's DNS name and ACM holds an imported copy (`pulumi up` re-imports it when it
re-issues the certificate, before it expires).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.stack_ca import StackCa

# TLS 1.3, and TLS 1.2 with forward-secret AEAD ciphers only, plus hybrid post-quantum key exchange for clients
# that offer it: the policy the ELB documentation ("Security policies for your Application Load Balancer")
# recommends and the console's default. The API's clients (curl, httpx, the OpenAI SDKs) all speak TLS 1.2 or 1.3.
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"
# ACM asks for one CNAME per name; the record only needs to live while ACM checks it and renews.
VALIDATION_RECORD_TTL = 300


def imported_certificate(name: str, ca: StackCa, balancer: aws.lb.LoadBalancer,
                         parent: pulumi.Resource) -> pulumi.Output[str]:
    """The stack CA's certificate for the balancer's DNS name, imported into ACM; its ARN.

    Only the DNS name: an ALB's addresses change over its life, and no one calls it at 127.0.0.1. Clients trust the
    stack's `caCertificate`, exactly as for a single VM. The private key reaches ACM as a Pulumi secret input and
    goes nowhere else (not into the replicas' user data: they serve plain HTTP)."""
    certificate = ca.issue(f"{name}-lb", ip_addresses=[], dns_names=[balancer.dns_name], parent=parent,
                           loopback=False)
    imported = aws.acm.Certificate(
        f"{name}-lb-tls",
        private_key=certificate.private_key_pem,
        certificate_body=certificate.cert_pem,
        certificate_chain=ca.cert_pem,
        tags={"Name": f"pixtral-{name}"},
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return imported.arn


def public_certificate(name: str, domain: str, zone_id: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    """A public ACM certificate for `domain`, validated by the DNS record ACM asks for in the user's Route 53 zone;
    the ARN once ACM has issued it (the listener must not be given a certificate still pending)."""
    child = pulumi.ResourceOptions(parent=parent)
    certificate = aws.acm.Certificate(f"{name}-lb-tls", domain_name=domain, validation_method="DNS",
                                      tags={"Name": f"pixtral-{name}"}, opts=child)
    # One domain, so one validation option.
    option = certificate.domain_validation_options.apply(lambda options: options[0])
    record = aws.route53.Record(
        f"{name}-lb-tls-validation",
        zone_id=zone_id,
        name=option.resource_record_name,
        type=option.resource_record_type,
        records=[option.resource_record_value],
        ttl=VALIDATION_RECORD_TTL,
        opts=child,
    )
    validated = aws.acm.CertificateValidation(f"{name}-lb-tls-validated", certificate_arn=certificate.arn,
                                              validation_record_fqdns=[record.fqdn], opts=child)
    return validated.certificate_arn


def domain_alias(name: str, zone_id: str, domain: str, balancer: aws.lb.LoadBalancer,
                 parent: pulumi.Resource) -> aws.route53.Record:
    """pixtral:domain in the user's zone as an alias of the balancer: Route 53 follows the balancer's changing
    addresses itself. Evaluating target health lets a failover record the user adds beside it take over while the
    fleet has no healthy replica."""
    return aws.route53.Record(
        f"{name}-dns",
        zone_id=zone_id,
        name=domain,
        type="A",
        aliases=[aws.route53.RecordAliasArgs(name=balancer.dns_name, zone_id=balancer.zone_id,
                                             evaluate_target_health=True)],
        opts=pulumi.ResourceOptions(parent=parent),
    )
