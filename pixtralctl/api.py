"""The server's HTTP API as pixtralctl's own probes see it: one call helper and the smallest real request.

The OpenAI client sends the requests a user would send (smoke, bench); these plain calls are for what that client
hides: the status of a refused request, /health outside /v1, a server that is not up yet.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any


class NoAnswer(Exception):
    """No HTTP answer at all: connection refused, timed out or dropped mid-answer. The message says which."""


class Untrusted(NoAnswer):
    """The server's TLS certificate failed verification; the message is the verifier's reason."""


def _causes(error: BaseException) -> list[BaseException]:
    """`error` and every exception behind it: urllib's `reason`, httpx's and the OpenAI client's causes and
    contexts. A `reason` that is a string (ssl.SSLError's "WRONG_VERSION_NUMBER") is a label, not a cause."""
    seen: set[int] = set()
    found: list[BaseException] = []
    pending: list[object] = [error]
    while pending:
        current = pending.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        found.append(current)
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
    return found


def verification_failure(error: BaseException) -> ssl.SSLCertVerificationError | None:
    """The failed certificate check behind `error` (urllib's, or the OpenAI client's), if that is what it is."""
    return next((c for c in _causes(error) if isinstance(c, ssl.SSLCertVerificationError)), None)


def _closed_without_answer(cause: BaseException) -> bool:
    """The server hung up before any HTTP answer: what a TLS port does with a plain HTTP request (Python's and
    OpenSSL's servers reset the connection, uvicorn's closes it)."""
    return (isinstance(cause, (ConnectionResetError, http.client.RemoteDisconnected))
            or "without sending a response" in str(cause))


def connection_problem(error: BaseException, url: str) -> str:
    """One line for a request to `url` that got no HTTP answer: what happened and its likely cause (the scheme,
    the port, the name); a failed certificate check is `verification_failure`'s, not this."""
    parts = urllib.parse.urlsplit(url)
    https = parts.scheme == "https"
    try:
        where = f"{parts.hostname}:{parts.port or (443 if https else 80)}"
    except ValueError:
        where = parts.netloc
    other = f"{'http' if https else 'https'}://{where}"
    causes = _causes(error)
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return (f"connection refused: nothing listens on {where}; check the port (the stack's `endpoint` output "
                "has it, pixtral:port is 8081 by default) and that the VM or pod is running")
    if https and any(isinstance(c, ssl.SSLError) for c in causes):
        reason = next(c.reason for c in causes if isinstance(c, ssl.SSLError)) or "handshake failed"
        return (f"{where} does not speak TLS ({reason}): it serves plain HTTP, as a stack with pixtral:tls false "
                f"does; use {other}, or check the port")
    if not https and any(_closed_without_answer(c) for c in causes):
        return (f"{where} closed the connection without an HTTP answer, as a TLS port does to plain HTTP "
                f"(pixtral:tls is on by default); use {other}, or check the port")
    if any(isinstance(c, socket.gaierror) for c in causes):
        return f"cannot resolve {parts.hostname}: check the endpoint's host name (a new DNS record can take minutes)"
    if any(isinstance(c, TimeoutError) or "Timeout" in type(c).__name__ for c in causes):
        return (f"no answer from {where} in time: a firewall may drop the traffic (pixtral:allowedCidrs must hold "
                "your address), or the server is still starting")
    root = causes[-1]
    return str(root) or type(root).__name__


@dataclass(frozen=True)
class Reply:
    status: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def call(url: str, key: str | None = None, body: dict | None = None, timeout: float = 30,
         context: ssl.SSLContext | None = None) -> Reply:
    """GET `url`, or POST `body` as JSON, with the key as a Bearer token when given. Any status is a Reply. An
    https:// URL is verified with `context` (default: the system's CAs)."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return Reply(response.status, response.read().decode(errors="replace"))
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.read().decode(errors="replace")[:300])
    except (OSError, http.client.HTTPException) as error:
        if failed := verification_failure(error):
            raise Untrusted(failed.verify_message or failed.reason) from None
        raise NoAnswer(connection_problem(error, url)) from None


def readiness_request(model: str) -> dict:
    """One token for "ping": the smallest request vLLM must run the model for, unlike /health and /v1/models."""
    return {"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]}
