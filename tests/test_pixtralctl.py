"""pixtralctl against a real HTTP server on loopback: success and every failure mode, with clear exit codes."""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import tls_test_ca
from conftest import PROJECT_DIR
from fake_openai_server import FakeVllm
from tls_test_ca import LoopbackTls

from pixtralctl import status_codes
from pixtralctl.__main__ import SUBCOMMANDS, main, parser

KEY = "sk-fake-pixtral-key-1234"


def _target(server: FakeVllm) -> list[str]:
    return ["--endpoint", server.endpoint, "--api-key", KEY]


def _png(path: Path) -> Path:
    path.write_bytes(b"\x89PNG\r\n\x1a\nnot-really-a-png-but-bytes")
    return path


# --- wait ---------------------------------------------------------------------------------------------------------

def test_wait_succeeds_once_the_server_answers_a_real_request(capsys):
    with FakeVllm(KEY) as server:
        assert main(["wait", *_target(server), "--timeout", "10", "--interval", "0.1"]) == 0
        assert any(r["path"] == "/v1/chat/completions" for r in server.requests), "ready needs a real request"
    assert "ready after" in capsys.readouterr().out


def test_wait_follows_a_slow_start_with_one_line_per_phase(capsys):
    with FakeVllm(KEY, mode="slow_start", ready_after=1.0) as server:
        assert main(["wait", *_target(server), "--timeout", "10", "--interval", "0.2"]) == 0
    out = capsys.readouterr().out
    assert out.count("loading: /health answered 503") == 1, out
    assert "ready after" in out


@pytest.mark.parametrize(("ready_after", "timeout", "interval", "code", "message"), [
    pytest.param(60, "1", "0.2", 1, "not ready after", id="times-out-with-the-last-state"),
    # The last sleep is cut to the deadline: a server ready before it is seen even when the interval is longer.
    pytest.param(0.8, "3", "10", 0, "ready after", id="probes-until-a-timeout-shorter-than-the-interval"),
])
def test_wait_stops_at_its_timeout(capsys, ready_after, timeout, interval, code, message):
    with FakeVllm(KEY, mode="slow_start", ready_after=ready_after) as server:
        started = time.monotonic()
        assert main(["wait", *_target(server), "--timeout", timeout, "--interval", interval]) == code
        assert time.monotonic() - started < 5
    assert message in capsys.readouterr().out


def test_wait_fails_fast_on_a_refused_key(capsys):
    with FakeVllm(KEY) as server:
        started = time.monotonic()
        code = main(["wait", "--endpoint", server.endpoint, "--api-key", "wrong-key-123456", "--timeout", "30",
                     "--refused-grace", "0"])
        assert code == 1 and time.monotonic() - started < 5
    out = capsys.readouterr().out
    assert "refused with 401" in out and "wrong-key-123456" not in out


def test_wait_rides_out_an_old_key_during_a_rolling_update(capsys):
    with FakeVllm(KEY, old_key_for=1.0) as server:
        assert main(["wait", *_target(server), "--timeout", "20", "--interval", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "refused: the API key" in out and "retrying for up to" in out, out
    assert "ready after" in out


def test_wait_gives_up_on_a_key_refused_past_the_grace(capsys):
    with FakeVllm(KEY, old_key_for=60) as server:
        started = time.monotonic()
        code = main(["wait", *_target(server), "--timeout", "30", "--interval", "0.2", "--refused-grace", "1"])
        took = time.monotonic() - started
    assert code == 1 and 1 <= took < 5, took
    out = capsys.readouterr().out
    assert "FAIL: the API key (sk-...(24 chars)) was refused with 401" in out and "past the 1s grace" in out
    assert KEY not in out


def test_wait_grace_for_a_refused_key_is_a_minute_by_default():
    assert parser().parse_args(["wait"]).refused_grace == 60


def test_wait_reports_a_server_that_fails_real_requests(capsys):
    with FakeVllm(KEY, mode="error_500") as server:
        assert main(["wait", *_target(server), "--timeout", "1", "--interval", "0.2"]) == 1
    assert "answered 500" in capsys.readouterr().out


def test_wait_on_a_closed_port_says_so(capsys):
    assert main(["wait", "--endpoint", "http://127.0.0.1:9", "--api-key", KEY, "--timeout", "1",
                 "--interval", "0.2"]) == 1
    assert "no answer from http://127.0.0.1:9" in capsys.readouterr().out


# --- smoke --------------------------------------------------------------------------------------------------------

def test_smoke_sends_text_image_text_image_and_reports_usage(capsys, tmp_path):
    with FakeVllm(KEY) as server:
        code = main(["smoke", *_target(server), "--image", str(_png(tmp_path / "a.png")),
                     "--image", "https://example.com/b.jpg"])
        (request,) = server.chat_requests()[:1]
    out = capsys.readouterr().out
    assert code == 0, out
    content = request["messages"][0]["content"]
    assert [part["type"] for part in content] == ["text", "image_url", "text", "image_url"]
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert content[3]["image_url"]["url"] == "https://example.com/b.jpg"
    assert "Three people jogging" in out and "210 prompt tokens" in out


def test_smoke_sends_the_guide_request_by_default(capsys):
    with FakeVllm(KEY) as server:
        assert main(["smoke", *_target(server)]) == 0
        content = server.chat_requests()[0]["messages"][0]["content"]
    assert content[0]["text"] == "Describe this image in detail please."
    assert "jogging-edit_hero.jpg" in content[1]["image_url"]["url"]


def test_smoke_checks_that_requests_without_the_key_are_refused():
    with FakeVllm(KEY) as server:
        assert main(["smoke", *_target(server)]) == 0
        unauthenticated = [r for r in server.requests if r["path"] == "/v1/chat/completions" and not r["authorized"]]
    assert {r["authorization"] for r in unauthenticated} == {None, "Bearer pixtralctl-wrong-key"}


@pytest.mark.parametrize("mode,message", [
    ("error_500", "status 500"),
    ("empty_answer", "the answer is empty"),
    ("drop", "no complete answer"),
])
def test_smoke_failure_modes(mode, message, capsys):
    with FakeVllm(KEY, mode=mode) as server:
        assert main(["smoke", *_target(server)]) == 1
    assert message in capsys.readouterr().out


def test_smoke_expect_tokens_accepts_empty_text_only_with_tokens(capsys):
    with FakeVllm(KEY, mode="empty_answer") as server:
        assert main(["smoke", *_target(server), "--expect-tokens"]) == 1
    assert "no generated tokens" in capsys.readouterr().out


def test_smoke_with_a_wrong_key_fails_without_printing_it(capsys):
    with FakeVllm(KEY) as server:
        assert main(["smoke", "--endpoint", server.endpoint, "--api-key", "sk-wrong-but-long-key"]) == 1
    out = capsys.readouterr().out
    assert "refused" in out and "sk-wrong-but-long-key" not in out


def test_smoke_on_a_refused_connection_fails_the_check(capsys):
    assert main(["smoke", "--endpoint", "http://127.0.0.1:9", "--api-key", KEY]) == 1
    assert "FAIL: no answer from http://127.0.0.1:9" in capsys.readouterr().out


def test_smoke_json_reports_a_failure_as_json(capsys):
    assert main(["smoke", "--endpoint", "http://127.0.0.1:9", "--api-key", KEY, "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is False and "no answer from" in result["error"]


def test_smoke_with_an_image_that_is_not_a_file_is_a_usage_error(capsys, tmp_path):
    with FakeVllm(KEY) as server:
        assert main(["smoke", *_target(server), "--image", str(tmp_path / "missing.png")]) == 2
        assert not server.requests
    assert "missing.png" in capsys.readouterr().err


def test_smoke_json_output(capsys):
    with FakeVllm(KEY) as server:
        assert main(["smoke", *_target(server), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is True and result["completion_tokens"] == 7 and KEY not in json.dumps(result)


# --- bench --------------------------------------------------------------------------------------------------------

def test_bench_stops_at_its_request_cap_and_writes_raw_numbers(tmp_path, capsys):
    out = tmp_path / "bench.json"
    with FakeVllm(KEY) as server:
        assert main(["bench", *_target(server), "--concurrency", "3", "--requests", "7", "--out", str(out)]) == 0
        assert len(server.chat_requests()) == 7
    report = json.loads(out.read_text())
    assert report["summary"]["requests"] == 7 and report["summary"]["ok"] == 7
    assert all(s["ttft"] is not None and s["latency"] >= s["ttft"] for s in report["samples"])
    assert report["summary"]["output_tokens"] == 49
    table = capsys.readouterr().out
    assert "time to first token" in table and "p99" in table


def test_bench_stops_at_its_duration_cap():
    with FakeVllm(KEY) as server:
        started = time.monotonic()
        assert main(["bench", *_target(server), "--concurrency", "2", "--requests", "100000",
                     "--duration", "1"]) == 0
        assert time.monotonic() - started < 5


def test_bench_counts_errors_and_fails_when_nothing_succeeds(capsys):
    with FakeVllm(KEY, mode="error_500") as server:
        assert main(["bench", *_target(server), "--requests", "3"]) == 1
    assert "error x3: status 500" in capsys.readouterr().out


def test_bench_refuses_an_out_it_cannot_write_before_sending_load(capsys, tmp_path):
    with FakeVllm(KEY) as server:
        assert main(["bench", *_target(server), "--requests", "3", "--out", str(tmp_path)]) == 2
        assert not server.requests
    assert f"--out {tmp_path}: not a file in an existing folder" in capsys.readouterr().err


def test_bench_refuses_a_cap_that_is_not_positive(capsys):
    assert main(["bench", "--endpoint", "http://127.0.0.1:9", "--api-key", KEY, "--concurrency", "0"]) == 2
    assert "--concurrency, --requests and --duration must be positive" in capsys.readouterr().err


# --- target resolution -----------------------------------------------------------------------------------------------

def test_no_endpoint_and_no_pulumi_cli_is_a_clear_error():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXTRAL_")}
    env["PATH"] = str(Path(sys.executable).parent)
    done = subprocess.run([sys.executable, "-m", "pixtralctl", "wait"], capture_output=True, text=True, env=env,
                          cwd=PROJECT_DIR, timeout=60)
    assert done.returncode == 2
    assert "no Pulumi CLI" in done.stderr and "--endpoint" in done.stderr


def test_environment_variables_name_the_target(monkeypatch, capsys):
    with FakeVllm(KEY) as server:
        monkeypatch.setenv("PIXTRAL_ENDPOINT", server.endpoint)
        monkeypatch.setenv("PIXTRAL_API_KEY", KEY)
        assert main(["wait", "--timeout", "5", "--interval", "0.1"]) == 0


@pytest.mark.parametrize("command", ["wait", "smoke", "bench", "render", "timeline"])
def test_every_subcommand_has_help(command):
    done = subprocess.run([sys.executable, "-m", "pixtralctl", command, "--help"], capture_output=True, text=True,
                          cwd=PROJECT_DIR, timeout=60)
    assert done.returncode == 0 and "usage: pixtralctl" in done.stdout


def test_wait_on_a_terminal_updates_one_line_with_phase_and_elapsed_time():
    import pty

    with FakeVllm(KEY, mode="slow_start", ready_after=1.5) as server:
        leader, follower = pty.openpty()
        process = subprocess.Popen([sys.executable, "-m", "pixtralctl", "wait", *_target(server), "--timeout", "20",
                                    "--interval", "0.3"], stdout=follower, stderr=follower, cwd=PROJECT_DIR)
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        assert process.wait(timeout=30) == 0
        os.close(leader)
    text = output.decode()
    assert text.count("\r\x1b[K") >= 3, text
    assert "loading" in text and "s  /health answered 503" in text
    assert "ready after" in text


# --- exit codes ---------------------------------------------------------------------------------------------------

# Every exit code a command's --help documents, and the test that makes the command exit with it.
EXIT_CODE_TESTS = {
    ("wait", 0): "test_pixtralctl.py::test_wait_succeeds_once_the_server_answers_a_real_request",
    ("wait", 1): "test_pixtralctl.py::test_wait_gives_up_on_a_key_refused_past_the_grace",
    ("wait", 2): "test_pixtralctl.py::test_no_endpoint_and_no_pulumi_cli_is_a_clear_error",
    ("wait", 130): "test_pixtralctl.py::test_interrupted_command_exits_130",
    ("smoke", 0): "test_pixtralctl.py::test_smoke_sends_the_guide_request_by_default",
    ("smoke", 1): "test_pixtralctl.py::test_smoke_on_a_refused_connection_fails_the_check",
    ("smoke", 2): "test_pixtralctl.py::test_smoke_with_an_image_that_is_not_a_file_is_a_usage_error",
    ("bench", 0): "test_pixtralctl.py::test_bench_stops_at_its_request_cap_and_writes_raw_numbers",
    ("bench", 1): "test_pixtralctl.py::test_bench_counts_errors_and_fails_when_nothing_succeeds",
    ("bench", 2): "test_pixtralctl.py::test_bench_refuses_a_cap_that_is_not_positive",
    ("timeline", 0): "test_timeline.py::test_timeline_reads_the_file_through_ssm",
    ("timeline", 2): "test_timeline.py::test_timeline_without_the_cloud_cli_says_what_is_missing",
    ("render", 0): "test_render.py::test_render_lists_the_files_it_wrote",
    ("render", 1): "test_render.py::test_render_reports_bad_config_and_writes_nothing",
    ("render", 2): "test_render.py::test_render_into_a_file_is_a_one_line_error",
    ("status", 0): "test_status_aws.py::test_status_prints_one_line_per_replica_from_the_stack_outputs",
    ("status", 1): "test_pixtralctl.py::test_status_of_an_endpoint_needs_no_pulumi_cli",
    ("status", 2): "test_status_aws.py::test_status_without_the_aws_cli_exits_2_naming_it",
}
# Ctrl-C is handled once, in main, for every command.
INTERRUPT_TESTED_WITH = "wait"


def _command_name(module) -> str:
    return module.__name__.rsplit(".", 1)[1]


def _help(*command: str) -> str:
    done = subprocess.run([sys.executable, "-m", "pixtralctl", *command, "--help"], capture_output=True, text=True,
                          cwd=PROJECT_DIR, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_documented_exit_code_has_a_test():
    documented = {(_command_name(module), code) for module in SUBCOMMANDS
                  for code in status_codes.meanings(module.EXIT_CODES)}
    documented -= {(_command_name(module), status_codes.INTERRUPTED) for module in SUBCOMMANDS
                   if _command_name(module) != INTERRUPT_TESTED_WITH}
    assert documented == set(EXIT_CODE_TESTS), "documented exit codes and EXIT_CODE_TESTS differ"
    for test in EXIT_CODE_TESTS.values():
        file, name = test.split("::")
        assert f"\ndef {name}(" in (Path(__file__).parent / file).read_text(), f"{test} does not exist"


@pytest.mark.parametrize("module", SUBCOMMANDS, ids=_command_name)
def test_help_lists_every_exit_code_of_the_command(module):
    text = _help(_command_name(module))
    assert "exit codes:" in text
    for code in status_codes.meanings(module.EXIT_CODES):
        assert re.search(rf"^  {code} +\S", text, re.M), f"exit code {code} missing from --help:\n{text}"


def test_top_level_help_lists_the_exit_codes():
    text = _help()
    for code in (0, 1, 2, 130):
        assert re.search(rf"^  {code} +\S", text, re.M), text


def test_documented_exit_codes_match_the_help():
    readme = (PROJECT_DIR / "docs" / "using.md").read_text()
    stated_once_for_all = {status_codes.USAGE_ERROR, status_codes.INTERRUPTED}
    for module in SUBCOMMANDS:
        name = _command_name(module)
        (row,) = [line for line in readme.splitlines() if line.startswith(f"| `pixtralctl {name}")]
        in_readme = {int(code) for code in re.findall(r"`(\d+)`", row.rsplit(" | ", 1)[1])}
        assert in_readme | stated_once_for_all == set(status_codes.meanings(module.EXIT_CODES)), name


@pytest.mark.parametrize("module", SUBCOMMANDS, ids=_command_name)
def test_help_speaks_of_the_guide_request_not_a_seed(module):
    assert "seed" not in _help(_command_name(module)).lower()


def test_interrupted_command_exits_130():
    with FakeVllm(KEY, mode="slow_start", ready_after=60) as server:
        process = subprocess.Popen([sys.executable, "-m", "pixtralctl", "wait", *_target(server), "--timeout", "60",
                                    "--interval", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   cwd=PROJECT_DIR)
        deadline = time.monotonic() + 30
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 130, out + err
    assert "pixtralctl wait: interrupted" in err and "Traceback" not in err


# --- TLS ----------------------------------------------------------------------------------------------------------

def _https_server(issued: LoopbackTls, **options) -> FakeVllm:
    """The fake server behind the certificate a stack CA issued, as vLLM serves it with --ssl-keyfile/certfile."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        paths = issued.write(Path(folder))
        context.load_cert_chain(paths["tls.crt"], paths["tls.key"])
    return FakeVllm(KEY, tls=context, **options)


@pytest.fixture(scope="module")
def stack_tls() -> LoopbackTls:
    return tls_test_ca.issue()


def test_wait_and_smoke_verify_the_server_with_the_stack_ca(stack_tls, tmp_path, capsys):
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(stack_tls.ca_pem)
    with _https_server(stack_tls) as server:
        assert server.endpoint.startswith("https://")
        assert main(["wait", *_target(server), "--ca-cert", str(ca_file), "--timeout", "10", "--interval", "0.1"]) == 0
        assert main(["smoke", *_target(server), "--ca-cert", str(ca_file)]) == 0
        assert any(r["path"] == "/v1/chat/completions" and r["authorized"] for r in server.requests)
    out = capsys.readouterr().out
    assert "ready after" in out and "OK:" in out


def test_the_ca_file_can_come_from_the_environment(stack_tls, tmp_path, monkeypatch, capsys):
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(stack_tls.ca_pem)
    monkeypatch.setenv("PIXTRAL_CA_CERT", str(ca_file))
    with _https_server(stack_tls) as server:
        assert main(["wait", *_target(server), "--timeout", "10", "--interval", "0.1"]) == 0


def _stack_with_outputs(outputs: dict, folder: Path, monkeypatch) -> None:
    """A `pulumi` on PATH that answers `stack output --json` with `outputs`, and no target in the environment."""
    cli = folder / "pulumi"
    cli.write_text(f"#!/bin/sh\ncat <<'JSON'\n{json.dumps(outputs)}\nJSON\n")
    cli.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    for variable in ("PIXTRAL_ENDPOINT", "PIXTRAL_API_KEY", "PIXTRAL_CA_CERT"):
        monkeypatch.delenv(variable, raising=False)


def test_wait_reads_the_ca_from_the_stack_outputs(stack_tls, tmp_path, monkeypatch, capsys):
    with _https_server(stack_tls) as server:
        _stack_with_outputs({"endpoint": server.endpoint, "apiKey": KEY, "caCertificate": stack_tls.ca_pem}, tmp_path,
                            monkeypatch)
        assert main(["wait", "--timeout", "10", "--interval", "0.1"]) == 0
    assert "ready after" in capsys.readouterr().out


def test_without_a_stack_ca_the_systems_trusted_cas_verify_the_server(stack_tls, tmp_path, monkeypatch, capsys):
    # A stack whose balancer serves a public certificate (a fleet with pixtral:domain: ACM's or Google's) exports no
    # caCertificate: pixtralctl then verifies against the system's CAs, which SSL_CERT_FILE stands in for here.
    (tmp_path / "system-cas.pem").write_text(stack_tls.ca_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "system-cas.pem"))
    with _https_server(stack_tls) as server:
        _stack_with_outputs({"endpoint": server.endpoint, "apiKey": KEY}, tmp_path, monkeypatch)
        assert main(["wait", "--timeout", "10", "--interval", "0.1"]) == 0
        assert main(["smoke"]) == 0
        assert any(r["path"] == "/v1/chat/completions" and r["authorized"] for r in server.requests)
    assert "ready after" in capsys.readouterr().out


def test_a_public_certificate_not_yet_trusted_says_so_instead_of_asking_for_a_ca(stack_tls, tmp_path, monkeypatch,
                                                                                 capsys):
    # A fleet with pixtral:domain exports no caCertificate; until ACM / Google issue the certificate the name serves
    # another one. Asking for --ca-cert would send the user after a CA the stack does not have.
    (tmp_path / "system-cas.pem").write_text(tls_test_ca.issue(common_name="a public CA").ca_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "system-cas.pem"))
    with _https_server(stack_tls) as server:
        _stack_with_outputs({"endpoint": server.endpoint, "apiKey": KEY}, tmp_path, monkeypatch)
        assert main(["wait", "--timeout", "30", "--interval", "0.2"]) == 1
    captured = capsys.readouterr()
    (line,) = [line for line in (captured.out + captured.err).splitlines() if "not trusted" in line]
    assert f"the TLS certificate of {server.endpoint} is not trusted" in line
    assert "exports no caCertificate" in line and "public certificate" in line and "--ca-cert" not in line


@pytest.mark.parametrize("trusted", ["system CAs", "another CA"])
def test_an_untrusted_certificate_fails_at_once_with_one_line_naming_the_endpoint(stack_tls, tmp_path, capsys,
                                                                                  trusted):
    extra = []
    if trusted == "another CA":
        (tmp_path / "other.pem").write_text(tls_test_ca.issue(common_name="someone else's CA").ca_pem)
        extra = ["--ca-cert", str(tmp_path / "other.pem")]
    with _https_server(stack_tls) as server:
        started = time.monotonic()
        assert main(["wait", *_target(server), *extra, "--timeout", "30", "--interval", "0.2"]) == 1
        assert time.monotonic() - started < 5, "a certificate error does not go away by waiting"
        assert main(["smoke", *_target(server), *extra]) != 0
        assert not any(r["authorized"] for r in server.requests), "the key was sent to an unverified server"
    captured = capsys.readouterr()
    for line in (captured.out + captured.err).strip().splitlines():
        if "not trusted" in line:
            assert f"the TLS certificate of {server.endpoint} is not trusted" in line, line
    assert (captured.out + captured.err).count("not trusted") == 2, captured
    hint = "did not sign it" if extra else "--ca-cert"
    assert hint in captured.out + captured.err


def test_an_unreadable_ca_file_is_named(capsys):
    assert main(["wait", "--endpoint", "https://127.0.0.1:9", "--api-key", KEY, "--ca-cert", "/nonexistent/ca.pem"]) \
        == 2
    assert "--ca-cert /nonexistent/ca.pem: cannot read it" in capsys.readouterr().err


# --- connection failures: one line with the likely cause ----------------------------------------------------------

class AsyncTlsPort:
    """A TLS port served by asyncio, as uvicorn (vLLM's server) serves one: a plain-HTTP request fails the
    handshake and the connection is closed without a word (Python's threaded server resets it instead)."""

    def __init__(self, issued: LoopbackTls):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as folder:
            paths = issued.write(Path(folder))
            self.context.load_cert_chain(paths["tls.crt"], paths["tls.key"])
        self.port: int | None = None

    def __enter__(self) -> AsyncTlsPort:
        import asyncio
        import threading

        started = threading.Event()
        self.loop = asyncio.new_event_loop()

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1024)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            writer.close()

        async def serve() -> None:
            self.server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=self.context)
            self.port = self.server.sockets[0].getsockname()[1]
            started.set()

        self.thread = threading.Thread(target=lambda: (self.loop.run_until_complete(serve()), self.loop.run_forever()),
                                       daemon=True)
        self.thread.start()
        assert started.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _one_line_failure(command: list[str], capsys) -> str:
    """Run a command that must fail the check, and return its one line of explanation."""
    assert main(command) == 1
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text and "Error:" not in text, text
    (line,) = [line for line in text.splitlines() if line.startswith("FAIL:")]
    return line


COMMANDS = {"wait": ["--timeout", "1", "--interval", "0.2"], "smoke": [], "bench": ["--requests", "2"]}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_https_to_a_plain_http_port_names_the_scheme(command, capsys):
    with FakeVllm(KEY) as server:
        plain = server.endpoint
        https = plain.replace("http://", "https://")
        line = _one_line_failure([command, "--endpoint", https, "--api-key", KEY, "--model", "m",
                                  *COMMANDS[command]], capsys)
    assert "does not speak TLS" in line and "pixtral:tls false" in line and f"use {plain}" in line, line
    assert not server.requests, "a TLS handshake failure must not reach the HTTP server"


@pytest.mark.parametrize("server_kind", ["threaded (resets)", "asyncio like uvicorn (closes)"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_http_to_a_tls_port_names_the_scheme(command, server_kind, stack_tls, capsys):
    server = _https_server(stack_tls) if server_kind.startswith("threaded") else AsyncTlsPort(stack_tls)
    with server:
        port = server.endpoint.rsplit(":", 1)[1] if isinstance(server, FakeVllm) else server.port
        line = _one_line_failure([command, "--endpoint", f"http://127.0.0.1:{port}", "--api-key", KEY,
                                  "--model", "m", *COMMANDS[command]], capsys)
    assert "closed the connection without an HTTP answer" in line and f"use https://127.0.0.1:{port}" in line, line


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_closed_port_names_the_port(command, capsys):
    line = _one_line_failure([command, "--endpoint", "https://127.0.0.1:9", "--api-key", KEY, "--model", "m",
                              *COMMANDS[command]], capsys)
    assert "connection refused: nothing listens on 127.0.0.1:9" in line and "check the port" in line, line


@pytest.mark.parametrize("command", ["smoke", "bench"])
def test_a_certificate_from_another_ca_names_the_certificate(command, stack_tls, tmp_path, capsys):
    (tmp_path / "other.pem").write_text(tls_test_ca.issue(common_name="someone else's CA").ca_pem)
    with _https_server(stack_tls) as server:
        line = _one_line_failure([command, *_target(server), "--ca-cert", str(tmp_path / "other.pem"),
                                  *COMMANDS[command]], capsys)
    assert f"the TLS certificate of {server.endpoint} is not trusted" in line and "did not sign it" in line, line


def test_wait_in_a_log_repeats_what_it_waits_for_every_30_seconds():
    import io

    from pixtralctl.progress import REPEAT_SECONDS, Progress

    log = io.StringIO()
    progress = Progress(log)
    for elapsed in (0, 10, 20, 31, 45, 62):
        progress.update("starting", elapsed, f"no answer (probe at {elapsed}s)")
    progress.update("loading", 63, "/health answered 503")
    lines = log.getvalue().splitlines()
    assert REPEAT_SECONDS == 30
    assert [line.split("(probe at ")[-1] for line in lines[:-1]] == ["0s)", "31s)", "62s)"], lines
    assert lines[-1].endswith("loading: /health answered 503")


def test_status_of_an_endpoint_needs_no_pulumi_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi, no cloud CLI
    with FakeVllm(KEY) as server:
        assert main(["status", *_target(server)]) == 0
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith(server.endpoint)]
    assert "ready" in row and "answered a chat request" in row
    line = _one_line_failure(["status", "--endpoint", "http://127.0.0.1:9", "--api-key", KEY], capsys)
    assert "http://127.0.0.1:9 starting" in line and "connection refused" in line
