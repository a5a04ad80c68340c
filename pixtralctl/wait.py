"""`pixtralctl wait`: block until the server really answers, or fail with why it does not.

vLLM's /health answers before a real request can succeed (weights still warming, an unsupported setting that only
fails on the first request), so readiness means: /health, then /v1/models with the key, then one tiny real chat
request. A refused key is retried for a short grace (a rolling update can answer with the old key for a moment),
then fails without waiting for the timeout. A fleet at zero (autoscale.minReplicas 0, no replica) is woken first: one
line says so with the wake's estimate, a request to the endpoint wakes it, and the wait lasts the wake's timeout.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from . import api, status, status_codes, timeline
from .errors import Failure
from .progress import Progress
from .target import Target, TargetError, add_target_arguments, resolve, stack_outputs
from .wake import DEFAULT_TIMEOUT_SECONDS, AtZero, at_zero, send_waking_request, wait_timeout

# Reading the VM's boot timeline goes through SSM / IAP: not on every probe.
TIMELINE_EVERY_SECONDS = 30
# Long enough for a rolling update to retire the pod or VM that still holds the old key; short enough that a
# plainly wrong key fails well before a cold start's timeout.
REFUSED_GRACE_SECONDS = 60
DEFAULT_INTERVAL_SECONDS = 5.0

EXIT_CODES = {
    status_codes.SUCCESS: "ready: the server answered a real chat request",
    status_codes.CHECK_FAILED: "not ready within --timeout (a fleet at zero: within its wake's timeout), or the API "
                               "key still refused after --refused-grace",
    status_codes.USAGE_ERROR: status_codes.GENERAL_MEANINGS[status_codes.USAGE_ERROR],
}


@dataclass(frozen=True)
class Probe:
    phase: str
    detail: str

    @property
    def ready(self) -> bool:
        return self.phase == "ready"

    @property
    def refused(self) -> bool:
        return self.phase == "refused"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("wait", help="wait until the endpoint answers a real request",
                                   description=__doc__.split("\n\n")[0],
                                   epilog=status_codes.epilog(status_codes.meanings(EXIT_CODES)),
                                   formatter_class=status_codes.HelpFormatter)
    add_target_arguments(parser)
    timeline.add_vm_arguments(parser)
    parser.add_argument("--timeout", type=float, default=None,
                        help=f"seconds to wait in all (default {DEFAULT_TIMEOUT_SECONDS:g}; for a fleet at zero, its "
                             "wake's own: the wake detection plus the fleet plan's health grace, which the stack "
                             "exports as scaleToZero)")
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_SECONDS,
                        help=f"seconds between probes (default {DEFAULT_INTERVAL_SECONDS:g})")
    parser.add_argument("--refused-grace", type=float, default=REFUSED_GRACE_SECONDS, metavar="SECONDS",
                        help="how long a refused API key (401/403) is retried before failing: during a rolling "
                             "update an old pod or VM answers with the old key for a moment (default "
                             f"{REFUSED_GRACE_SECONDS})")
    parser.set_defaults(handler=run)


def _refused(target: Target, status: int) -> Probe:
    return Probe("refused", f"the API key ({target.shown_key()}) was refused with {status}")


def probe(target: Target, timeout: float = 30) -> Probe:
    """One look at the server: how far it has come. An untrusted certificate is final: waiting does not fix it."""
    context = target.ssl_context()
    try:
        reply = api.call(f"{target.endpoint}/health", timeout=timeout, context=context)
        if reply.status != 200:
            return Probe("loading", f"/health answered {reply.status}")
        reply = api.call(f"{target.base_url}/models", target.api_key, timeout=timeout, context=context)
        if reply.status in (401, 403):
            return _refused(target, reply.status)
        if reply.status != 200:
            return Probe("loading", f"/v1/models answered {reply.status}")
        model = target.model or (reply.json().get("data") or [{}])[0].get("id")
        reply = api.call(f"{target.base_url}/chat/completions", target.api_key, api.readiness_request(model),
                         timeout=timeout, context=context)
        if reply.status == 200:
            return Probe("ready", f"answered a chat request as {model!r}")
        if reply.status in (401, 403):
            return _refused(target, reply.status)
        return Probe("warming", f"a chat request answered {reply.status}: {reply.text[:160]}")
    except api.Untrusted as error:
        raise Failure(target.untrusted(error)) from None
    except api.NoAnswer as error:
        return Probe("starting", f"no answer from {target.endpoint} yet ({error})")


class _SideNote:
    """A note read through a cloud CLI every TIMELINE_EVERY_SECONDS while the API is not up yet. The first failure
    to read it (no CLI, no access) stops the asking: `wait` keeps waiting on the API alone."""

    def __init__(self, source: object | None):
        self.source = source
        self.note: str | None = None
        self._read_at = -float(TIMELINE_EVERY_SECONDS)

    def _read(self) -> str | None:
        raise NotImplementedError

    def suffix(self, now: float) -> str:
        if self.source is not None and now - self._read_at >= TIMELINE_EVERY_SECONDS:
            self._read_at = now
            try:
                self.note = self._read() or self.note
            except TargetError:
                self.source = None
        return f" [{self.note}]" if self.note else ""


class BootPhase(_SideNote):
    """The VM's boot phase, when the VM and its cloud CLI are known."""

    def _read(self) -> str | None:
        phase = timeline.current_phase(timeline.fetch(self.source))
        return f"VM: {phase}" if phase else None


class FleetHealth(_SideNote):
    """A fleet's replicas: how many its load balancer counts healthy (`pixtralctl status` reads the same). Ready
    still means the guide's request answered through the balancer."""

    def _read(self) -> str:
        replicas = status.replicas_of(self.source)
        healthy = sum(1 for replica in replicas if replica.health == "healthy")
        return f"replicas: {healthy} healthy of {len(replicas)}"


class RefusedGrace:
    """How long the key has been refused without a break; a refusal past the grace is final."""

    def __init__(self, grace: float):
        self.grace = grace
        self._since: float | None = None

    def check(self, result: Probe, now: float) -> Probe:
        if not result.refused:
            self._since = None
            return result
        self._since = now if self._since is None else self._since
        refused_for = now - self._since
        if refused_for >= self.grace:
            raise Failure(result.detail + (f" (for {refused_for:.0f}s, past the {self.grace:g}s grace)"
                                           if self.grace else ""))
        return Probe(result.phase, f"{result.detail}; retrying for up to {self.grace - refused_for:.0f}s more "
                                   "(a rolling update can answer with the old key for a moment)")


def stack_outputs_of(args: argparse.Namespace) -> dict | None:
    """The stack's outputs, unless the command was pointed at an endpoint or a VM instead (or there are none)."""
    if args.endpoint or getattr(args, "instance_id", None) or getattr(args, "instance_name", None):
        return None
    try:
        return stack_outputs(args.stack)
    except TargetError:
        return None


def side_note(outputs: dict | None) -> _SideNote:
    """A fleet's healthy count when the outputs name an Auto Scaling Group; else nothing beside the probes."""
    return FleetHealth(outputs if outputs and outputs.get("autoScalingGroup") else None)


def _vm(args: argparse.Namespace) -> timeline.Vm | None:
    if args.instance_id or args.instance_name:
        return timeline.resolve_vm(args)
    if args.endpoint:
        return None
    try:
        return timeline.resolve_vm(args)
    except TargetError:
        return None


def wake(target: Target, zero: AtZero, timeout: float, progress: Progress) -> None:
    """Say that the fleet is at zero and is being woken, with the estimate, and send the request that wakes it."""
    progress.note(zero.waking_line(timeout))
    # The waking request waits no longer than one probe: the probes that follow are requests too.
    progress.note(send_waking_request(target, timeout=min(DEFAULT_INTERVAL_SECONDS, timeout)))


def until_ready(target: Target, timeout: float, interval: float, refused: RefusedGrace, boot: _SideNote,
                progress: Progress) -> float:
    """Probe until the server answers a real request; returns the seconds it took. A Failure past `timeout`."""
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        result = probe(target, timeout=max(1.0, min(30.0, timeout - elapsed)))
        elapsed = time.monotonic() - started
        if result.ready:
            progress.done(f"ready after {elapsed:.0f}s: {target.endpoint} {result.detail}")
            return elapsed
        if not result.refused:
            result = Probe(result.phase, result.detail + boot.suffix(elapsed))
        shown = refused.check(result, elapsed)
        progress.update(shown.phase, elapsed, shown.detail)
        remaining = timeout - elapsed
        if remaining <= 0:
            raise Failure(f"not ready after {elapsed:.0f}s (timeout {timeout:g}s); last state "
                          f"{result.phase}: {result.detail}")
        # The last sleep is cut short so the final probe lands on the deadline, not an interval before it.
        time.sleep(min(interval, remaining))


def run(args: argparse.Namespace) -> None:
    target = resolve(args)
    outputs = stack_outputs_of(args)
    boot = side_note(outputs) if outputs and outputs.get("autoScalingGroup") else BootPhase(_vm(args))
    zero = at_zero(outputs)
    timeout = wait_timeout(zero, args.timeout)
    with Progress() as progress:
        if zero:
            wake(target, zero, timeout, progress)
        until_ready(target, timeout, args.interval, RefusedGrace(args.refused_grace), boot, progress)
