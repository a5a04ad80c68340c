"""`pixtralctl timeline`: where a VM's cold start went, read from the VM with the cloud's own CLI.

The boot plan writes its timeline (/var/lib/pixtral/timeline.jsonl, one {"phase", "event", "time"} object per
line; a start may say where the phase takes its input from, `"source"`: `artefacts`, the stack's own store, or
`pypi` / `hub`). This reads it through AWS SSM (`aws ssm send-command`, the instance role already allows it) or
through IAP SSH on GCP (`gcloud compute ssh --tunnel-through-iap`), and prints each phase's start and duration from
boot, and its source where the boot recorded one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from dataclasses import dataclass

from pixtral_deploy.cloudinit import TIMELINE_FILE

from . import status_codes
from .target import TargetError, stack_outputs

TIMELINE_PATH = TIMELINE_FILE
# The boot plan's phases in the order they happen: `publish-weights` only on a boot that downloaded the weights with a
# store to put them in (the stack's first boot uploads them before vLLM starts, to stream them as every later boot
# does), `compile-cache` only on a boot that fetched vLLM's compile cache from the artefact store, `publish` after
# `ready` (the first boot's upload of the rest, not part of the cold start).
PHASES = ("boot", "secrets", "install", "download", "publish-weights", "compile-cache", "load", "graphs", "ready",
          "publish")

EXIT_CODES = {
    status_codes.SUCCESS: "the timeline was read (an empty one too: the VM has not run its boot plan yet)",
    status_codes.USAGE_ERROR: "the aws or gcloud CLI is missing or could not read the VM, or no VM is named (no "
                              "--instance-id / --instance-name and no stack outputs naming one)",
}


@dataclass(frozen=True)
class Vm:
    """A VM the cloud CLI can reach: an EC2 instance id (and region) or a GCE name and zone (and project)."""

    instance_id: str | None = None
    region: str | None = None
    instance_name: str | None = None
    zone: str | None = None
    project: str | None = None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("timeline", help="print a VM's boot timeline (needs the aws or gcloud CLI)",
                                   description=__doc__.split("\n\n")[0],
                                   epilog=status_codes.epilog(status_codes.meanings(EXIT_CODES)),
                                   formatter_class=status_codes.HelpFormatter)
    add_vm_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the raw events as JSON")
    parser.set_defaults(handler=run)


def add_vm_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("VM (default: the stack's instanceId / instanceName and zone outputs)")
    group.add_argument("--instance-id", help="EC2 instance id (AWS)")
    group.add_argument("--region", help="AWS region of the instance (default: the aws CLI's)")
    group.add_argument("--instance-name", help="Compute Engine instance name (GCP)")
    group.add_argument("--zone", help="Compute Engine zone (GCP)")
    group.add_argument("--project", help="GCP project (default: gcloud's)")
    if not any(action.dest == "stack" for action in parser._actions):
        group.add_argument("--stack", help="Pulumi stack whose outputs name the VM")


def resolve_vm(args: argparse.Namespace, outputs: dict | None = None) -> Vm:
    if args.instance_id or args.instance_name:
        return Vm(args.instance_id, args.region, args.instance_name, args.zone, args.project)
    outputs = outputs if outputs is not None else stack_outputs(
        args.stack, instead="pass --instance-id (AWS) or --instance-name and --zone (GCP)")
    if outputs.get("instanceId"):
        return Vm(instance_id=outputs["instanceId"], region=args.region)
    if outputs.get("instanceName"):
        return Vm(instance_name=outputs["instanceName"], zone=args.zone or outputs.get("zone"), project=args.project)
    raise TargetError("the stack has no VM (Kubernetes targets keep no boot timeline); pass --instance-id or "
                      "--instance-name")


def _run(command: list[str], timeout: float = 120) -> str:
    if shutil.which(command[0]) is None:
        raise TargetError(f"the {command[0]} CLI is not on PATH; it is needed to read the VM's timeline")
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise TargetError(f"`{' '.join(command[:4])} ...` failed: {(done.stderr or done.stdout).strip()[:400]}")
    return done.stdout


def _aws_read(vm: Vm) -> str:
    region = ["--region", vm.region] if vm.region else []
    sent = json.loads(_run(["aws", "ssm", "send-command", *region, "--instance-ids", vm.instance_id,
                            "--document-name", "AWS-RunShellScript", "--comment", "pixtralctl timeline",
                            "--parameters", json.dumps({"commands": [f"cat {TIMELINE_PATH} 2>/dev/null || true"]}),
                            "--output", "json"]))
    command_id = sent["Command"]["CommandId"]
    for _ in range(30):
        time.sleep(1)
        result = json.loads(_run(["aws", "ssm", "get-command-invocation", *region, "--command-id", command_id,
                                  "--instance-id", vm.instance_id, "--output", "json"]))
        if result["Status"] not in ("Pending", "InProgress", "Delayed"):
            if result["Status"] != "Success":
                raise TargetError(f"SSM could not read the timeline: {result['Status']} "
                                  f"{result.get('StandardErrorContent', '')[:300]}")
            return result["StandardOutputContent"]
    raise TargetError("SSM did not return the timeline within 30 s")


def _gcp_read(vm: Vm) -> str:
    command = ["gcloud", "compute", "ssh", vm.instance_name, "--tunnel-through-iap", "--quiet",
               "--command", f"sudo cat {TIMELINE_PATH} 2>/dev/null || true"]
    command += [f"--zone={vm.zone}"] if vm.zone else []
    command += [f"--project={vm.project}"] if vm.project else []
    return _run(command)


def fetch(vm: Vm) -> list[dict]:
    text = _aws_read(vm) if vm.instance_id else _gcp_read(vm)
    return parse(text)


def parse(text: str) -> list[dict]:
    """The timeline's events; lines that are not events (a torn last line while a phase writes) are skipped."""
    events = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and {"phase", "event", "time"} <= event.keys():
            events.append(event)
    return events


def current_phase(events: list[dict]) -> str | None:
    """The phases under way (started, not ended), else the last one that ended; None before the first event."""
    running: list[str] = []
    for event in sorted(events, key=lambda e: e["time"]):
        if event["event"] == "start":
            running.append(event["phase"])
        elif event["phase"] in running:
            running.remove(event["phase"])
    if running:
        return " + ".join(running)
    return f"{events[-1]['phase']} done" if events else None


def sources(events: list[dict]) -> dict[str, str]:
    """Where each phase took its input from, as its start event says (`artefacts`, `pypi`, `hub`); a phase whose
    start says nothing (what boots before the artefact store wrote) is absent."""
    return {e["phase"]: str(e["source"]) for e in events if e["event"] == "start" and e.get("source")}


def table(events: list[dict]) -> str:
    """Each phase's start and duration, in seconds from the boot (or from the first event), and, when the boot
    recorded any, the source each phase used."""
    if not events:
        return "no timeline yet: the VM has not run its boot plan (or is still booting)"
    origin = min(e["time"] for e in events)
    spans: dict[str, dict[str, float]] = {}
    for event in events:
        spans.setdefault(event["phase"], {})[event["event"]] = event["time"] - origin
    order = sorted(spans, key=lambda p: (spans[p].get("start", spans[p].get("end", 0)), PHASES.index(p)
                                         if p in PHASES else len(PHASES)))
    source = sources(events)
    width = max(10, *(len(phase) + 2 for phase in spans))
    source_column = f"  {'source'}" if source else ""
    lines = [f"{'phase':<{width}}{'start':>9}{'end':>9}{'took':>9}{source_column}"]
    for phase in order:
        span = spans[phase]
        start, end = span.get("start"), span.get("end")
        took = f"{end - start:8.1f}s" if start is not None and end is not None else "        -"
        used = f"  {source.get(phase, '-')}" if source else ""
        lines.append(f"{phase:<{width}}{_seconds(start)}{_seconds(end)}{took}{used}")
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return f"{value:8.1f}s" if value is not None else "        -"


def run(args: argparse.Namespace) -> None:
    events = fetch(resolve_vm(args))
    print(json.dumps(events, indent=2) if args.json else table(events))
