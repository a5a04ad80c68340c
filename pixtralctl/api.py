"""The server's HTTP API as pixtralctl's own probes see it: one call helper and the smallest real request.

The OpenAI client sends the requests a user would send (smoke, bench); these plain calls are for what that client
hides: the status of a refused request, /health outside /v1, a server that is not up yet.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


class NoAnswer(Exception):
    """No HTTP answer at all: connection refused, timed out or dropped mid-answer. The message says which."""


class Untrusted(NoAnswer):
    """The server's TLS certificate failed verification; the message is the verifier's reason."""


def verification_failure(error: BaseException) -> ssl.SSLCertVerificationError | None:
    """The failed certificate check behind `error` (urllib's, or the OpenAI client's), if that is what it is."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None),
                    *(a for a in current.args if isinstance(a, BaseException))]
    return None


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
        # URLError carries the socket error as `reason`; a cut connection is an HTTPException of its own.
        raise NoAnswer(str(getattr(error, "reason", error) or type(error).__name__)) from None


def readiness_request(model: str) -> dict:
    """One token for "ping": the smallest request vLLM must run the model for, unlike /health and /v1/models."""
    return {"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]}
