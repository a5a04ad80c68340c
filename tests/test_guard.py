"""The key guard vLLM loads as middleware: every path but the health checks needs the API key.

vLLM's own --api-key leaves /invocations (the same inference as /v1) open; the end-to-end tier proves the guard
closes it on a real server, these tests pin its rules on a plain ASGI app.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys

import pytest

from pixtral_deploy.cloudinit import USERDATA_DIR
from pixtral_deploy.server import GUARD_FILE, GUARD_MIDDLEWARE

spec = importlib.util.spec_from_file_location("pixtral_guard", USERDATA_DIR / GUARD_FILE)
pixtral_guard = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pixtral_guard)


async def _served(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"served"})


def _status(path: str, authorization: str | None = None, method: str = "POST",
            headers: dict[str, str] | None = None, argv: list[str] | None = None) -> int:
    """The status the guard answers with; `argv` stands for vLLM's command line (None: this process's own)."""
    guard = pixtral_guard.RequireApiKey(_served) if argv is None else pixtral_guard.RequireApiKey(_served, argv)
    sent_headers = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    if authorization:
        sent_headers.append((b"authorization", authorization.encode()))
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": sent_headers}
    asyncio.run(guard(scope, receive, send))
    return sent[0]["status"]


PREFLIGHT = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
CORS_ARGS = ["--allowed-origins", '["https://app.example.com"]']


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


@pytest.mark.parametrize("path", ["/metrics", "/metrics/", "/metricsX", "/v1/chat/completions", "/invocations"])
def test_options_without_the_key_is_refused(path):
    # vLLM's apps answer any method: a keyless OPTIONS /metrics returned the whole metrics text.
    assert _status(path, method="OPTIONS") == 401
    assert _status(path, method="OPTIONS", headers=PREFLIGHT, argv=[]) == 401
    assert _status(path, "Bearer sk-guard-test", method="OPTIONS") == 200


@pytest.mark.parametrize("argv", [CORS_ARGS, ['--allowed_origins=["*"]'], ["--port", "8081", *CORS_ARGS]])
def test_cors_preflight_needs_no_key_once_origins_are_configured(argv):
    # Browsers send preflights without credentials; vLLM's CORS middleware (below the guard) answers them.
    assert _status("/v1/chat/completions", method="OPTIONS", headers=PREFLIGHT, argv=argv) == 200


@pytest.mark.parametrize("headers", [{}, {"Origin": "https://app.example.com"},
                                     {"Access-Control-Request-Method": "POST"}])
def test_options_that_is_not_a_preflight_needs_the_key_even_with_cors(headers):
    # Without both headers vLLM's CORS middleware passes the request on to the route, which would answer it.
    assert _status("/metrics", method="OPTIONS", headers=headers, argv=CORS_ARGS) == 401


def test_a_preflight_header_does_not_open_other_methods():
    assert _status("/metrics", method="GET", headers=PREFLIGHT, argv=CORS_ARGS) == 401


def test_the_guard_reads_cors_origins_from_the_servers_command_line(monkeypatch):
    # vLLM loads the guard with no arguments of its own: it learns of --allowed-origins from sys.argv.
    monkeypatch.setattr(sys, "argv", ["api_server.py", "--model", "m", *CORS_ARGS])
    assert _status("/v1/chat/completions", method="OPTIONS", headers=PREFLIGHT) == 200
    monkeypatch.setattr(sys, "argv", ["api_server.py", "--model", "m", "--allowed-media-domains", "x.example"])
    assert _status("/v1/chat/completions", method="OPTIONS", headers=PREFLIGHT) == 401


def test_refuses_to_start_without_a_key(monkeypatch):
    monkeypatch.delenv("VLLM_API_KEY")
    with pytest.raises(RuntimeError, match="VLLM_API_KEY"):
        pixtral_guard.RequireApiKey(_served)


def test_middleware_import_path_matches_the_file():
    module, _, name = GUARD_MIDDLEWARE.rpartition(".")
    assert f"{module}.py" == GUARD_FILE and hasattr(pixtral_guard, name)


def _passed_on(scope: dict) -> bool:
    """Whether the guard hands `scope` to the app behind it (raising is refusing too)."""
    reached = []

    async def app(scope, receive, send):
        reached.append(scope["type"])

    async def receive():
        return {"type": f"{scope['type']}.startup"}

    async def send(message):
        pass

    try:
        asyncio.run(pixtral_guard.RequireApiKey(app, argv=[])(scope, receive, send))
    except ValueError:
        return False
    return reached == [scope["type"]]


@pytest.mark.parametrize("scope_type", ["webtransport", "http2", "HTTP", "", "lifespan.startup"])
def test_a_scope_type_the_guard_does_not_know_never_reaches_the_server(scope_type):
    # Such a scope may still carry a request (a newer ASGI server's protocol): without a check it would pass keyless.
    assert not _passed_on({"type": scope_type, "path": "/v1/chat/completions", "headers": []})


def test_lifespan_passes_so_the_server_starts_and_stops():
    assert _passed_on({"type": "lifespan", "asgi": {"version": "3.0"}})
