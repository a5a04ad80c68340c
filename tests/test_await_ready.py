"""The readiness probe of pixtral-vllm.service sends the key without showing it to other users of the VM.

`await-ready.sh` runs for real with the real curl against a stand-in API on loopback that answers only the right
Bearer key; a wrapper first on PATH records the command line curl gets, which is what `ps` shows to every user.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
from pathlib import Path

import pytest
from conftest import required_tool

from pixtral_deploy.cloudinit import USERDATA_DIR

API_KEY = "sk-await-ready-key-9c1e"


class _ModelsApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the handler API's name)
        authorized = self.headers.get("Authorization") == f"Bearer {API_KEY}"
        self.server.seen.append(authorized)
        self.send_response(200 if authorized else 401)
        self.end_headers()
        self.wfile.write(b'{"data": []}')

    def log_message(self, *args):
        pass


@pytest.fixture
def models_api():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ModelsApi)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _recording_curl(folder: Path, real_curl: str) -> Path:
    """A `curl` first on PATH that writes its arguments to curl.argv, then runs the real one with the same stdin."""
    folder.mkdir()
    wrapper = folder / "curl"
    wrapper.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" >>"{folder}/curl.argv"\nexec {real_curl} "$@"\n')
    wrapper.chmod(0o755)
    return folder


def test_readiness_probe_authenticates_without_the_key_on_curls_command_line(models_api, tmp_path):
    real_curl = required_tool("curl", "apt-get install curl")
    recorder = _recording_curl(tmp_path / "bin", real_curl)
    env = {"PATH": f"{recorder}:{os.environ['PATH']}", "PIXTRAL_LIB": str(USERDATA_DIR),
           "PIXTRAL_STATE_DIR": str(tmp_path), "PIXTRAL_PORT": str(models_api.server_address[1]),
           "VLLM_API_KEY": API_KEY}
    done = subprocess.run(["bash", str(USERDATA_DIR / "await-ready.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "phase=ready event=end" in done.stdout
    assert models_api.seen == [True], "the stand-in API must have seen the key on the first probe"
    argv = (recorder / "curl.argv").read_text()
    assert "/v1/models" in argv, argv
    assert API_KEY not in argv, f"the API key is on curl's command line, visible in ps: {argv}"
