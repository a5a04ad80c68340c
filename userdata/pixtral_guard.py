"""ASGI middleware that vLLM loads with `--middleware pixtral_guard.RequireApiKey`: the API key on every path.

vLLM's own `--api-key` guards only /v1, /v2 and /inference. /invocations (the same inference as /v1), /tokenize,
/metrics and the rest stay open, which is not what a user of a public endpoint expects. This middleware refuses
every request without the key except the health checks load balancers and kubelets use. Standard library only:
it runs inside vLLM's Python on the VM and in the container.

OPTIONS needs the key too: vLLM's apps answer any method, so a keyless OPTIONS /metrics would return the metrics.
The one exception is a CORS preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`, which browsers
send without credentials) when the server was started with `--allowed-origins`: vLLM's CORS middleware, which sits
below this one, answers such a request itself and never passes it on to a route.
"""

import hashlib
import hmac
import os
import sys

# Health checks carry no key; they reveal nothing and run no inference.
OPEN_PATHS = ("/health", "/ping")
# vLLM's parser accepts `_` for `-`, and `--flag=value` as well as `--flag value`. An abbreviated form (vLLM also
# accepts unambiguous prefixes) is not recognised here: preflights then need the key, which fails closed.
CORS_ORIGINS_FLAGS = ("--allowed-origins", "--allowed_origins")


def cors_origins_configured(argv: list) -> bool:
    """Whether the server's command line sets CORS origins (read from the process's own arguments, so the guard
    needs no setting of its own and sees what vLLM was given on every target)."""
    return any(arg.partition("=")[0] in CORS_ORIGINS_FLAGS for arg in argv)


class RequireApiKey:
    def __init__(self, app, argv=None):
        self.app = app
        key = os.environ.get("VLLM_API_KEY", "")
        if not key:
            raise RuntimeError("VLLM_API_KEY is not set: refusing to serve an endpoint without an API key")
        self._digest = hashlib.sha256(key.encode()).digest()
        self._preflight_open = cors_origins_configured(sys.argv[1:] if argv is None else argv)

    def _authorized(self, headers: dict) -> bool:
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(hashlib.sha256(token.encode()).digest(), self._digest)

    def _is_cors_preflight(self, scope, headers: dict) -> bool:
        return (self._preflight_open and scope.get("method") == "OPTIONS" and b"origin" in headers
                and b"access-control-request-method" in headers)

    def _allowed(self, scope) -> bool:
        if scope["type"] == "lifespan":
            return True  # start-up and shutdown: no request, no client
        headers = {name.lower(): value for name, value in scope.get("headers") or []}
        path = scope["path"][len(scope.get("root_path", "")):] if scope["path"].startswith(
            scope.get("root_path", "")) else scope["path"]
        return path in OPEN_PATHS or self._is_cors_preflight(scope, headers) or self._authorized(headers)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket", "lifespan"):
            # A scope type this guard does not know carries requests it cannot check: fail closed, never pass it on.
            raise ValueError(f"pixtral_guard: refusing ASGI scope type {scope['type']!r}")
        if self._allowed(scope):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
            await send({"type": "http.response.body", "body": b'{"error": "Unauthorized"}'})
