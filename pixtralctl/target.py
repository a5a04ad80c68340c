"""Which deployment a command talks to: from flags, the environment, or the Pulumi stack's outputs."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import api
from .errors import Failure, UsageError

if TYPE_CHECKING:
    import openai


class TargetError(UsageError):
    """The deployment to talk to cannot be determined; the message says how to name it."""


@dataclass(frozen=True)
class Target:
    endpoint: str
    api_key: str
    model: str | None
    show_secrets: bool = False
    # PEM of the CA that signs the server's certificate (the stack's caCertificate); None: the system's CAs.
    ca_cert: str | None = None
    # The stack's outputs were read and hold no caCertificate: a public certificate serves (a fleet's load balancer
    # with pixtral:domain), which only the system's CAs can verify.
    public_certificate: bool = False

    @property
    def base_url(self) -> str:
        return f"{self.endpoint}/v1"

    def ssl_context(self) -> ssl.SSLContext:
        """Certificates are always verified: against the stack CA alone when known, else the system's CAs."""
        return ssl.create_default_context(cadata=self.ca_cert) if self.ca_cert else ssl.create_default_context()

    def openai_client(self, timeout: float) -> openai.OpenAI:
        import openai  # only smoke and bench need it; `wait` starts faster without it

        return openai.OpenAI(base_url=self.base_url, api_key=self.api_key, timeout=timeout, max_retries=0,
                             http_client=openai.DefaultHttpxClient(verify=self.ssl_context(), timeout=timeout))

    def untrusted(self, reason: object) -> str:
        """The one line for a certificate that failed verification."""
        if self.ca_cert:
            hint = "the CA given (the stack's caCertificate or --ca-cert) did not sign it"
        elif self.public_certificate:
            # No stack CA to pass: the managed certificate is not (yet) the one served for this name.
            hint = ("the stack exports no caCertificate: its load balancer serves a public certificate for "
                    "pixtral:domain, which the system's CAs verify once it is issued (ACM: after DNS validation; "
                    "Google-managed: up to about 60 minutes after the domain's record points at the load balancer)")
        else:
            hint = ("pass the stack's CA with --ca-cert FILE or PIXTRAL_CA_CERT (pulumi stack output caCertificate > "
                    "ca.pem)")
        return f"the TLS certificate of {self.endpoint} is not trusted ({reason}); {hint}"

    def certificate_error(self, error: BaseException) -> str | None:
        """That line when `error` (or what caused it) is a failed certificate check, else None."""
        failed = api.verification_failure(error)
        return self.untrusted(failed.verify_message or failed.reason) if failed else None

    def shown_key(self) -> str:
        """The key as it may be printed: masked unless the user asked for secrets."""
        return self.api_key if self.show_secrets else mask(self.api_key)


def mask(secret: str) -> str:
    return f"{secret[:3]}...({len(secret)} chars)" if len(secret) > 8 else "***"


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("deployment (default: the current Pulumi stack's outputs)")
    group.add_argument("--stack", help="Pulumi stack whose outputs to read")
    group.add_argument("--endpoint", default=os.environ.get("PIXTRAL_ENDPOINT"),
                       help="https://HOST:PORT of the server (env PIXTRAL_ENDPOINT)")
    group.add_argument("--api-key", default=os.environ.get("PIXTRAL_API_KEY"),
                       help="Bearer key (env PIXTRAL_API_KEY)")
    group.add_argument("--ca-cert", type=Path, default=os.environ.get("PIXTRAL_CA_CERT"), metavar="FILE",
                       help="PEM file of the CA to verify the server with (env PIXTRAL_CA_CERT; default: the stack's "
                            "`caCertificate` output, else the system's CAs)")
    group.add_argument("--model", help="served model name (default: the stack's `model` output, else the first "
                                       "model the server lists)")
    group.add_argument("--show-secrets", action="store_true", help="print the API key instead of masking it")


ENDPOINT_HINT = "pass --endpoint and --api-key (or set PIXTRAL_ENDPOINT and PIXTRAL_API_KEY)"


def stack_outputs(stack: str | None, instead: str = ENDPOINT_HINT) -> dict:
    """The stack's outputs through the Pulumi CLI; `instead` tells the user what to pass when there is none."""
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise TargetError(f"no Pulumi CLI on PATH to read the stack outputs; {instead}")
    command = [pulumi, "stack", "output", "--json", "--show-secrets"] + (["--stack", stack] if stack else [])
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise TargetError(f"`pulumi stack output` failed: {done.stderr.strip() or done.stdout.strip()}")
    return json.loads(done.stdout or "{}")


def _read_ca(path: Path | str | None) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text()
    except OSError as error:
        raise TargetError(f"--ca-cert {path}: cannot read it ({error.strerror})") from None


def resolve(args: argparse.Namespace) -> Target:
    endpoint, api_key, model = args.endpoint, args.api_key, args.model
    ca_cert = _read_ca(getattr(args, "ca_cert", None))
    public_certificate = False
    if not (endpoint and api_key):
        outputs = stack_outputs(args.stack)
        endpoint = endpoint or outputs.get("endpoint")
        api_key = api_key or outputs.get("apiKey")
        model = model or outputs.get("model")
        public_certificate = not ca_cert and "caCertificate" not in outputs
        ca_cert = ca_cert or outputs.get("caCertificate")
    if not endpoint or not api_key:
        raise TargetError("the stack has no `endpoint`/`apiKey` outputs; pass --endpoint and --api-key")
    if not endpoint.startswith(("http://", "https://")):
        raise TargetError(f"--endpoint {endpoint!r} is not a URL; expected https://HOST:PORT")
    return Target(endpoint.rstrip("/"), api_key, model, args.show_secrets, ca_cert, public_certificate)


def served_model(target: Target, timeout: float = 10) -> str:
    """The model to request: the configured one, else the first the server lists."""
    if target.model:
        return target.model
    try:
        reply = api.call(f"{target.base_url}/models", target.api_key, timeout=timeout, context=target.ssl_context())
    except api.Untrusted as error:
        raise Failure(target.untrusted(error)) from None
    except api.NoAnswer as error:
        raise Failure(f"no answer from {target.endpoint} ({error}); is it up? (pixtralctl wait)") from None
    if reply.status in (401, 403):
        raise Failure(f"{target.base_url}/models answered {reply.status}: the API key ({target.shown_key()}) was "
                      "refused")
    if reply.status != 200:
        raise Failure(f"{target.base_url}/models answered {reply.status}; is the server ready? (pixtralctl wait)")
    try:
        models = reply.json().get("data") or []
    except (ValueError, AttributeError):
        raise Failure(f"{target.base_url}/models did not answer a model list: {reply.text[:160]!r}") from None
    if not models:
        raise Failure(f"{target.base_url}/models lists no model; pass --model")
    return models[0]["id"]
