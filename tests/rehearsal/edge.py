"""The stand-ins at the cloud's and the internet's edge a rehearsal machine reaches, each a small HTTP server run
inside the machine's own network namespace (`python -m tests.rehearsal.edge SERVICE ...`):

- `index`: PyPI's simple API (PEP 503) over the wheel folder .ci/install-rehearsal fills, for `UV_INDEX_URL`;
- `hub`: the Hugging Face Hub serving the tiny Pixtral under the stack's model id, for `HF_ENDPOINT`;
- `astral`: https://astral.sh's uv installer (the machine resolves astral.sh here and trusts the rehearsal's CA), which
  installs the pinned uv from its PyPI wheel as the real installer installs it from GitHub;
- `secrets`: Secret Manager's `versions/V:access`, behind the machine's stand-in `gcloud`;
- `aws-api`: the AWS API endpoint (`AWS_ENDPOINT_URL`), moto's server but for CompleteLifecycleAction;
- `imds`: EC2's instance metadata (IMDSv2 token, instance id) on 169.254.169.254, inside the namespace only.

SSM and Auto Scaling are moto's own server, behind `aws-api`: moto 5.2.6 has no CompleteLifecycleAction, so that
one call is answered (and recorded) here, and every other call goes through to moto unchanged. Every request is
appended to `--log` so tests can see what the machine asked for and when.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_DIR / "tests"))

from fake_hf_hub import FakeHub  # noqa: E402

# The stand-in for astral's installer: the same contract (UV_INSTALL_DIR, uv and uvx put there), the binaries from
# PyPI's uv wheel of the asked version, served by the index stand-in.
UV_INSTALLER = """#!/bin/sh
set -eu
dir=${{UV_INSTALL_DIR:?}}
work=$(mktemp -d)
curl -fsS -o "$work/uv.whl" "{index}/files/{wheel}"
python3 -m zipfile -e "$work/uv.whl" "$work/x"
mkdir -p "$dir"
install -m 0755 "$work"/x/uv-*.data/scripts/uv "$work"/x/uv-*.data/scripts/uvx "$dir"/
rm -rf "$work"
echo "installed uv into $dir"
"""


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _project_of(wheel: str) -> str:
    return _normalise(wheel.split("-", 1)[0])


class _Handler(BaseHTTPRequestHandler):
    routes: Callable[[_Handler], tuple[int, str, bytes | Path] | None]
    log_file: Path
    service: str

    def log_message(self, *args) -> None:
        pass

    def _answer(self, with_body: bool) -> None:
        with self.log_file.open("a") as log:
            log.write(json.dumps({"time": time.time(), "service": self.service, "method": self.command,
                                  "path": self.path}) + "\n")
        found = type(self).routes(self)
        status, content_type, body = found or (404, "text/plain", b"not found\n")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(body.stat().st_size if isinstance(body, Path) else len(body)))
        self.end_headers()
        if not with_body:
            return
        if isinstance(body, Path):
            # Wheels of a GB and more: streamed, not read whole.
            with body.open("rb") as source:
                shutil.copyfileobj(source, self.wfile, 1 << 20)
        else:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(True)

    def do_HEAD(self) -> None:
        self._answer(False)

    def do_PUT(self) -> None:
        self._answer(True)

    def do_POST(self) -> None:
        self._answer(True)


def _serve(service: str, port: int, routes, log: Path, tls: tuple[str, str] | None = None) -> None:
    handler = type("Handler", (_Handler,), {"routes": staticmethod(routes), "log_file": log, "service": service})
    server = ThreadingHTTPServer(("0.0.0.0", port), handler)
    server.daemon_threads = True
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


def index_routes(wheels: Path):
    names = sorted(p.name for p in wheels.glob("*.whl"))
    projects: dict[str, list[str]] = {}
    for name in names:
        projects.setdefault(_project_of(name), []).append(name)

    def routes(request: _Handler) -> tuple[int, str, bytes] | None:
        path = request.path.split("?")[0]
        if path.startswith("/files/") and (wheels / path.removeprefix("/files/")).is_file():
            return 200, "application/octet-stream", wheels / path.removeprefix("/files/")
        if path.rstrip("/") == "/simple":
            links = "".join(f'<a href="/simple/{p}/">{p}</a>\n' for p in projects)
            return 200, "text/html", f"<html><body>\n{links}</body></html>\n".encode()
        if path.startswith("/simple/"):
            files = projects.get(_normalise(path.removeprefix("/simple/").strip("/")))
            if files is None:
                return None
            links = "".join(f'<a href="/files/{f}">{f}</a>\n' for f in files)
            return 200, "text/html", f"<html><body>\n{links}</body></html>\n".encode()
        return None

    return routes


def astral_routes(index_url: str, wheels: Path):
    def routes(request: _Handler) -> tuple[int, str, bytes] | None:
        parts = request.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "uv" or parts[2] != "install.sh":
            return None
        found = sorted(wheels.glob(f"uv-{parts[1]}-*manylinux*x86_64*.whl"))
        if not found:
            return None
        return 200, "text/x-shellscript", UV_INSTALLER.format(index=index_url, wheel=found[0].name).encode()

    return routes


def secret_manager_routes(store: Path):
    """`GET /v1/projects/P/secrets/S/versions/V:access` as Secret Manager answers it, from a JSON file
    {project: {secret: {version: value}}} read on every request (a test changes it to make the store refuse)."""
    def routes(request: _Handler) -> tuple[int, str, bytes] | None:
        parts = request.path.strip("/").split("/")
        if len(parts) != 7 or parts[:2] != ["v1", "projects"] or not parts[6].endswith(":access"):
            return None
        project, secret, version = parts[2], parts[4], parts[6].removesuffix(":access")
        value = json.loads(store.read_text()).get(project, {}).get(secret, {}).get(version)
        if value is None:
            body = {"error": {"code": 404, "status": "NOT_FOUND",
                              "message": f"Secret Version [projects/{project}/secrets/{secret}/versions/{version}] "
                                         "not found or has no enabled versions."}}
            return 404, "application/json", json.dumps(body).encode()
        payload = {"name": f"projects/{project}/secrets/{secret}/versions/{version}",
                   "payload": {"data": base64.b64encode(value.encode()).decode()}}
        return 200, "application/json", json.dumps(payload).encode()

    return routes


def imds_routes(instance_id: str):
    def routes(request: _Handler) -> tuple[int, str, bytes] | None:
        if request.command == "PUT" and request.path == "/latest/api/token":
            return 200, "text/plain", b"rehearsal-imds-token"
        if request.path == "/latest/meta-data/instance-id":
            if request.headers.get("X-aws-ec2-metadata-token") != "rehearsal-imds-token":
                return 401, "text/plain", b"IMDSv2 token required\n"
            return 200, "text/plain", instance_id.encode()
        return None

    return routes


LIFECYCLE_ANSWER = (b'<CompleteLifecycleActionResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">'
                    b"<CompleteLifecycleActionResult/><ResponseMetadata><RequestId>rehearsal</RequestId>"
                    b"</ResponseMetadata></CompleteLifecycleActionResponse>")


def aws_api_routes(moto_url: str, completed: Path):
    def routes(request: _Handler) -> tuple[int, str, bytes] | None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        form = urllib.parse.parse_qs(body.decode(errors="replace"))
        if form.get("Action") == ["CompleteLifecycleAction"]:
            with completed.open("a") as out:
                out.write(json.dumps({"time": time.time(), **{k: v[0] for k, v in form.items()}}) + "\n")
            return 200, "text/xml", LIFECYCLE_ANSWER
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        forwarded = urllib.request.Request(moto_url + request.path, data=body if body else None, headers=headers,
                                           method=request.command)
        try:
            with urllib.request.urlopen(forwarded, timeout=60) as answer:
                return answer.status, answer.headers.get("Content-Type", ""), answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Content-Type", ""), error.read()

    return routes


class _LoggedRequests(list):
    """The hub stand-in's request list, each request also written to the log as it arrives (a test reading the log
    right after a short download must find it there)."""

    def __init__(self, log: Path):
        super().__init__()
        self.log = log
        self.lock = threading.Lock()

    def append(self, request: str) -> None:
        super().append(request)
        method, _, path = request.partition(" ")
        with self.lock, self.log.open("a") as out:
            out.write(json.dumps({"time": time.time(), "service": "hub", "method": method, "path": path}) + "\n")


def serve_hub(port: int, repo: str, model_dir: Path, log: Path) -> None:
    files = {p.name: p.read_bytes() for p in sorted(model_dir.iterdir()) if p.is_file()}
    hub = FakeHub(repo, files, port=port, host="0.0.0.0")
    hub.requests = _LoggedRequests(log)
    threading.Event().wait()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.rehearsal.edge")
    parser.add_argument("service", choices=("index", "hub", "astral", "secrets", "imds", "aws-api"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--wheels", type=Path)
    parser.add_argument("--index-url")
    parser.add_argument("--cert-file")
    parser.add_argument("--key-file")
    parser.add_argument("--repo")
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--store", type=Path)
    parser.add_argument("--instance-id")
    parser.add_argument("--moto-url")
    parser.add_argument("--completed", type=Path)
    args = parser.parse_args(argv)
    if args.service == "hub":
        serve_hub(args.port, args.repo, args.model_dir, args.log)
    elif args.service == "index":
        _serve("index", args.port, index_routes(args.wheels), args.log)
    elif args.service == "astral":
        _serve("astral", args.port, astral_routes(args.index_url, args.wheels), args.log,
               (args.cert_file, args.key_file))
    elif args.service == "secrets":
        _serve("secrets", args.port, secret_manager_routes(args.store), args.log)
    elif args.service == "aws-api":
        _serve("aws-api", args.port, aws_api_routes(args.moto_url, args.completed), args.log)
    else:
        _serve("imds", args.port, imds_routes(args.instance_id), args.log)


if __name__ == "__main__":
    main(sys.argv[1:])
