"""The key guard vLLM loads as middleware: every path but the health checks needs the API key.

vLLM's own --api-key leaves /invocations (the same inference as /v1) open; the end-to-end tier proves the guard
closes it on a real server, these tests pin its rules on a plain ASGI app.
"""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from pixtral_deploy.cloudinit import USERDATA_DIR
from pixtral_deploy.server import GUARD_FILE, GUARD_MIDDLEWARE

spec = importlib.util.spec_from_file_location("pixtral_guard", USERDATA_DIR / GUARD_FILE)
pixtral_guard = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pixtral_guard)


async def _served(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"served"})


def _status(path: str, authorization: str | None = None, method: str = "POST") -> int:
    guard = pixtral_guard.RequireApiKey(_served)
    headers = [(b"authorization", authorization.encode())] if authorization else []
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": headers}
    asyncio.run(guard(scope, receive, send))
    return sent[0]["status"]


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("VLLM_API_KEY", "sk-guard-test")


@pytest.mark.parametrize("path", ["/invocations", "/v1/chat/completions", "/tokenize", "/metrics", "/version",
                                  "/docs"])
def test_requests_without_the_key_are_refused_everywhere(path):
    assert _status(path) == 401
    assert _status(path, "Bearer wrong-key") == 401
    assert _status(path, "Basic sk-guard-test") == 401


@pytest.mark.parametrize("path", ["/invocations", "/v1/chat/completions", "/metrics"])
def test_requests_with_the_key_pass(path):
    assert _status(path, "Bearer sk-guard-test") == 200


@pytest.mark.parametrize("path", ["/health", "/ping"])
def test_health_checks_need_no_key(path):
    assert _status(path, method="GET") == 200


def test_cors_preflight_passes_through():
    assert _status("/v1/chat/completions", method="OPTIONS") == 200


def test_refuses_to_start_without_a_key(monkeypatch):
    monkeypatch.delenv("VLLM_API_KEY")
    with pytest.raises(RuntimeError, match="VLLM_API_KEY"):
        pixtral_guard.RequireApiKey(_served)


def test_middleware_import_path_matches_the_file():
    module, _, name = GUARD_MIDDLEWARE.rpartition(".")
    assert f"{module}.py" == GUARD_FILE and hasattr(pixtral_guard, name)
