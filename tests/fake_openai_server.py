"""A real HTTP server on loopback that speaks enough of vLLM's OpenAI API to exercise pixtralctl's failure modes.

Behaviours (`mode`): ok, slow_start (/health 503 for `ready_after` seconds from the first request), held (every
request waits until `ready_after` seconds from the first, as the KEDA HTTP add-on's interceptor holds requests while
a set at zero wakes), error_500,
empty_answer, drop (closes the connection mid-response). Bearer auth is enforced like vLLM's; for `old_key_for`
seconds from the first request the server still holds an old key and refuses the given one, as an old pod or VM
does during a rolling update. Every request is recorded.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "mistralai/Pixtral-12B-2409"


class FakeVllm:
    def __init__(self, api_key: str = "sk-fake", mode: str = "ok", ready_after: float = 0.0,
                 old_key_for: float = 0.0, tls: ssl.SSLContext | None = None):
        """`tls`: a server-side context with a certificate, to serve HTTPS as vLLM does with --ssl-*."""
        self.api_key = api_key
        self.tls = tls
        self.mode = mode
        self.ready_after = ready_after
        self.old_key_for = old_key_for
        self.requests: list[dict] = []
        self._first_request_at: float | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeVllm:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def age(self) -> float:
        """Seconds since the first request: a client process slow to start (a loaded CI machine) sees the same
        phases as a fast one."""
        now = time.monotonic()
        if self._first_request_at is None:
            self._first_request_at = now
        return now - self._first_request_at

    def chat_requests(self) -> list[dict]:
        return [r["body"] for r in self.requests if r["path"] == "/v1/chat/completions" and r["authorized"]]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: dict | None = None) -> None:
                data = json.dumps(body or {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                if fake.age() < fake.old_key_for:
                    return False
                return self.headers.get("Authorization") == f"Bearer {fake.api_key}"

            def _record(self, body: dict | None) -> None:
                fake.requests.append({"path": self.path, "body": body, "authorized": self._authorized(),
                                      "authorization": self.headers.get("Authorization")})

            def _hold(self) -> None:
                if fake.mode == "held":
                    time.sleep(max(0.0, fake.ready_after - fake.age()))

            def do_GET(self) -> None:
                self._record(None)
                self._hold()
                if fake.mode == "slow_start" and fake.age() < fake.ready_after:
                    return self._send(503, {"error": "loading"})
                if self.path == "/health":
                    return self._send(200)
                if not self._authorized():
                    return self._send(401, {"error": "Unauthorized"})
                if self.path == "/v1/models":
                    return self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
                return self._send(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                self._record(body)
                self._hold()
                if not self._authorized():
                    return self._send(401, {"error": "Unauthorized"})
                if fake.mode == "error_500":
                    return self._send(500, {"error": {"message": "engine crashed", "type": "InternalServerError"}})
                if fake.mode == "drop":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b'{"id": "chat-1", "cho')
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                text = "" if fake.mode == "empty_answer" else "Three people jogging in a park."
                tokens = 0 if fake.mode == "empty_answer" else 7
                images = sum(1 for part in body["messages"][0]["content"]
                             if isinstance(part, dict) and part.get("type") == "image_url")
                usage = {"prompt_tokens": 10 + 100 * images, "completion_tokens": tokens,
                         "total_tokens": 10 + 100 * images + tokens}
                if body.get("stream"):
                    return self._stream(text, usage)
                return self._send(200, {
                    "id": "chat-1", "object": "chat.completion", "created": 0, "model": body.get("model"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": usage})

            def _stream(self, text: str, usage: dict) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.close_connection = True
                for word in text.split(" ") if text else []:
                    self._event({"choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]})
                    time.sleep(0.01)
                self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                self._event({"choices": [], "usage": usage})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def _event(self, chunk: dict) -> None:
                payload = {"id": "chat-1", "object": "chat.completion.chunk", "created": 0, "model": MODEL, **chunk}
                self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
                self.wfile.flush()

        return Handler
