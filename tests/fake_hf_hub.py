"""A loopback stand-in for the Hugging Face Hub's HTTP API, enough for `hf download` of one model.

It answers the calls a snapshot download makes: the model's revision info (commit), its file tree, and a HEAD/GET
per file under /{repo}/resolve/{revision}/{file}. Each file answer waits `delay` seconds, so a test can
see the download take time while something else runs.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repo: str, files: dict[str, bytes], delay: float = 0.0, port: int = 0, host: str = "127.0.0.1"):
        self.repo = repo
        self.files = files
        self.delay = delay
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _file(self) -> tuple[str, bytes] | None:
                prefix = f"/{hub.repo}/resolve/"
                if not self.path.startswith(prefix):
                    return None
                name = self.path[len(prefix):].split("/", 1)[1].split("?")[0]
                return (name, hub.files[name]) if name in hub.files else None

            def _headers(self, status: int, length: int, extra: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in {"Content-Length": str(length), **extra}.items():
                    self.send_header(key, value)
                self.end_headers()

            def _serve(self, with_body: bool) -> None:
                hub.requests.append(f"{self.command} {self.path}")
                if self.path.startswith(f"/api/models/{hub.repo}/revision/"):
                    body = json.dumps({"id": hub.repo, "sha": COMMIT,
                                       "siblings": [{"rfilename": name} for name in hub.files]}).encode()
                    self._headers(200, len(body), {"Content-Type": "application/json"})
                    self.wfile.write(body if with_body else b"")
                    return
                if self.path.startswith(f"/api/models/{hub.repo}/tree/"):
                    body = json.dumps([{"type": "file", "path": name, "size": len(data),
                                        "oid": hashlib.sha1(data).hexdigest()}
                                       for name, data in hub.files.items()]).encode()
                    self._headers(200, len(body), {"Content-Type": "application/json"})
                    self.wfile.write(body if with_body else b"")
                    return
                found = self._file()
                if found is None:
                    self._headers(404, 0, {"X-Error-Code": "EntryNotFound"})
                    return
                name, data = found
                if with_body:
                    time.sleep(hub.delay)
                self._headers(200, len(data), {"ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                                               "X-Repo-Commit": COMMIT, "Content-Type": "application/octet-stream"})
                if with_body:
                    self.wfile.write(data)

            def do_HEAD(self) -> None:
                self._serve(with_body=False)

            def do_GET(self) -> None:
                self._serve(with_body=True)

        return Handler
