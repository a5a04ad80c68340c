"""`pixtralctl wait`: block until the server really answers, or fail with why it does not.

vLLM's /health answers before a real request can succeed (weights still warming, an unsupported setting that only
fails on the first request), so readiness means: /health, then /v1/models with the key, then one tiny real chat
request. A refused key fails at once instead of waiting for the timeout.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from . import timeline
from .progress import Progress
from .target import Target, TargetError, add_target_arguments, resolve

# Reading the VM's boot timeline goes through SSM / IAP: not on every probe.
TIMELINE_EVERY_SECONDS = 30


@dataclass(frozen=True)
class Probe:
    phase: str
    detail: str
    fatal: bool = False

    @property
    def ready(self) -> bool:
        return self.phase == "ready"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("wait", help="wait until the endpoint answers a real request",
                                   description=__doc__.split("\n\n")[0])
    add_target_arguments(parser)
    timeline.add_vm_arguments(parser)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait in all (default 1800)")
    parser.add_argument("--interval", type=float, default=5, help="seconds between probes (default 5)")
    parser.set_defaults(handler=run)


def _call(url: str, key: str | None = None, body: dict | None = None, timeout: float = 30) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")[:300]


def probe(target: Target, timeout: float = 30) -> Probe:
    """One look at the server: how far it has come."""
    try:
        status, _ = _call(f"{target.endpoint}/health", timeout=timeout)
        if status != 200:
            return Probe("loading", f"/health answered {status}")
        status, body = _call(f"{target.base_url}/models", target.api_key, timeout=timeout)
        if status in (401, 403):
            return Probe("refused", f"the API key ({target.shown_key()}) was refused with {status}", fatal=True)
        if status != 200:
            return Probe("loading", f"/v1/models answered {status}")
        model = target.model or (json.loads(body).get("data") or [{}])[0].get("id")
        status, body = _call(f"{target.base_url}/chat/completions", target.api_key, timeout=timeout, body={
            "model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]})
        if status == 200:
            return Probe("ready", f"answered a chat request as {model!r}")
        if status in (401, 403):
            return Probe("refused", f"the API key ({target.shown_key()}) was refused with {status}", fatal=True)
        return Probe("warming", f"a chat request answered {status}: {body[:160]}")
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        return Probe("starting", f"no answer from {target.endpoint} yet ({reason})")


class BootPhase:
    """The VM's boot phase while the API is not up yet, when the VM and its cloud CLI are known."""

    def __init__(self, vm: timeline.Vm | None):
        self.vm = vm
        self.phase: str | None = None
        self._read_at = -float(TIMELINE_EVERY_SECONDS)

    def suffix(self, now: float) -> str:
        if self.vm is not None and now - self._read_at >= TIMELINE_EVERY_SECONDS:
            self._read_at = now
            try:
                self.phase = timeline.current_phase(timeline.fetch(self.vm)) or self.phase
            except TargetError:
                self.vm = None  # no CLI or no access: stop asking, keep waiting on the API alone
        return f" [VM: {self.phase}]" if self.phase else ""


def _vm(args: argparse.Namespace) -> timeline.Vm | None:
    if args.instance_id or args.instance_name:
        return timeline.resolve_vm(args)
    if args.endpoint:
        return None
    try:
        return timeline.resolve_vm(args)
    except TargetError:
        return None


def run(args: argparse.Namespace) -> int:
    target = resolve(args)
    boot = BootPhase(_vm(args))
    progress = Progress()
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        result = probe(target, timeout=max(1.0, min(30.0, args.timeout - elapsed)))
        elapsed = time.monotonic() - started
        if not result.ready and not result.fatal:
            result = Probe(result.phase, result.detail + boot.suffix(elapsed))
        if result.ready:
            progress.done(f"ready after {elapsed:.0f}s: {target.endpoint} {result.detail}")
            return 0
        if result.fatal:
            progress.done(f"error: {result.detail}")
            return 1
        progress.update(result.phase, elapsed, result.detail)
        remaining = args.timeout - elapsed
        if remaining <= 0:
            progress.done(f"error: not ready after {elapsed:.0f}s (timeout {args.timeout:g}s); last state "
                          f"{result.phase}: {result.detail}")
            return 1
        # The last sleep is cut short so the final probe lands on the deadline, not an interval before it.
        time.sleep(min(args.interval, remaining))
