"""ASGI middleware that vLLM loads with `--middleware pixtral_guard.RequireApiKey`: the API key on every path.

vLLM's own `--api-key` guards only /v1, /v2 and /inference. /invocations (the same inference as /v1), /tokenize,
/metrics and the rest stay open, which is not what a user of a public endpoint expects. This middleware refuses
every request without the key except the health checks load balancers and kubelets use. Standard library only:
it runs inside vLLM's Python on the VM and in the container.
"""

import hashlib
import hmac
import os

# Health checks carry no key; they reveal nothing and run no inference.
OPEN_PATHS = ("/health", "/ping")


class RequireApiKey:
    def __init__(self, app):
        self.app = app
        key = os.environ.get("VLLM_API_KEY", "")
        if not key:
            raise RuntimeError("VLLM_API_KEY is not set: refusing to serve an endpoint without an API key")
        self._digest = hashlib.sha256(key.encode()).digest()

    def _authorized(self, scope) -> bool:
        headers = dict(scope.get("headers") or [])
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(hashlib.sha256(token.encode()).digest(), self._digest)

    def _allowed(self, scope) -> bool:
        if scope["type"] not in ("http", "websocket") or scope.get("method") == "OPTIONS":
            return True
        path = scope["path"][len(scope.get("root_path", "")):] if scope["path"].startswith(
            scope.get("root_path", "")) else scope["path"]
        return path in OPEN_PATHS or self._authorized(scope)

    async def __call__(self, scope, receive, send):
        if self._allowed(scope):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
            await send({"type": "http.response.body", "body": b'{"error": "Unauthorized"}'})
