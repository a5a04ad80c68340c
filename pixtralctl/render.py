"""`pixtralctl render`: what a stack would run, written to a folder, with no credentials and no Pulumi CLI.

It runs the real program for a stack file under the Pulumi SDK's mock engine (pixtral_render.engine) and writes
each VM's cloud-init, each Kubernetes object as a manifest, a table of the resources with their security- and
cost-relevant settings, the stack's outputs and the program's log. It is the review step before `pulumi up`.
Secrets are never written; addresses and ids the cloud assigns on create are shown as known after `pulumi up`.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from . import status_codes
from .errors import Failure, UsageError
from .resource_summary import key_settings
from .review import cold_start_section, cost_section, number_sources

KNOWN_AFTER_UP = "known after `pulumi up`"
# Marks a folder as a render, so the next render into it may replace it whole (no stale manifests of another stack
# or an older set), while a folder of anything else is refused.
RENDER_MARK = ".pixtral-render"

EXIT_CODES = {
    status_codes.SUCCESS: "rendered; the files written are listed",
    status_codes.CHECK_FAILED: "the program refused the stack's config (the message `pulumi up` would give)",
    status_codes.USAGE_ERROR: "bad flags: no such stack file, an --out that is not a folder, a --set without "
                              "KEY=VALUE",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render", help="write what a stack would run (cloud-init, manifests, resources) without any credentials",
        description=__doc__.split("\n\n")[0], epilog=status_codes.epilog(status_codes.meanings(EXIT_CODES)),
        formatter_class=status_codes.HelpFormatter)
    parser.add_argument("--stack", required=True, help="stack to render: a name (aws, for stacks/Pulumi.aws.yaml) or "
                                                       "the path of a Pulumi.<stack>.yaml file")
    parser.add_argument("--out", required=True, type=Path, help="folder to write into (created if missing)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config for this render, e.g. --set port=9000 (namespace pixtral by default)")
    parser.set_defaults(handler=run)


class MadeUp:
    """Tells the values the mock engine invented on create (addresses, ids, ARNs) from the program's own."""

    def __init__(self, resources: list[dict[str, Any]]):
        from pixtral_render.cloud import MADE_UP_ON_CREATE, mock_id, mock_name

        self.fragments = MADE_UP_ON_CREATE
        self.references = {f(r["name"]) for r in resources for f in (mock_id, mock_name)}

    def shown(self, value: Any) -> Any:
        """`value` with every string the mocks made up replaced by KNOWN_AFTER_UP, at any depth."""
        if isinstance(value, str):
            made_up = value in self.references or any(fragment in value for fragment in self.fragments)
            return KNOWN_AFTER_UP if made_up else value
        if isinstance(value, dict):
            return {k: self.shown(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.shown(v) for v in value]
        return value


def _one_line(text: str) -> str:
    """A table cell holds one line: a PEM block becomes its kind and size, any other multi-line text its first line
    and how many more there are (the whole text is in the cloud-init and manifest files)."""
    if "\n" not in text:
        return text
    lines = text.strip().splitlines()
    if pem := re.match(r"-----BEGIN ([A-Z0-9 ]+)-----", lines[0]):
        return f"<PEM {pem.group(1).lower()}, {len(lines)} lines>"
    return f"{lines[0]} <+{len(lines) - 1} more lines>"


def _compact(value: Any) -> str:
    # Sorted keys: two renders of the same stack compare line by line. JSON escapes newlines inside structures.
    return _one_line(value) if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)


def summary(resource: dict[str, Any], made_up: MadeUp) -> str:
    """The resources.md cell: the type's key settings, then the resource options that change up and destroy."""
    parts = [f"{label}={_compact(made_up.shown(value))}" if label else value
             for label, value in key_settings(resource["type"], resource["inputs"])]
    # Resource options (timeouts, protect, ...) change what `pulumi up` and `destroy` do: reviewers see them too.
    parts += [f"{key}={_compact(value)}" for key, value in resource["options"].items()]
    return "; ".join(parts).replace("|", "\\|")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


# Objects others depend on first, so `kubectl apply -f manifests/` in file order creates them before their users.
_KINDS_FIRST = ("Namespace", "StorageClass", "ServiceAccount", "Role", "RoleBinding", "Secret", "ConfigMap",
                "PersistentVolumeClaim")


def _review_order(resource: dict[str, Any]) -> tuple:
    """The program's components first, then by type and name."""
    return (not resource["type"].startswith("pixtral:"), resource["type"], resource["name"])


def _apply_order(manifest: dict[str, Any]) -> tuple:
    kind = manifest["kind"]
    rank = _KINDS_FIRST.index(kind) if kind in _KINDS_FIRST else len(_KINDS_FIRST)
    return (rank, kind, manifest["metadata"].get("name", ""))


def write_render(run: dict[str, Any], out: Path) -> list[Path]:
    """Write the review folder for one mock run; returns the files written."""
    from pixtral_deploy.cloudinit import declared_user_data
    from pixtral_deploy.manifests import manifests

    _clear_earlier_render(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def write(name: str, text: str) -> None:
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)

    write(RENDER_MARK, f"written by `pixtralctl render --stack {run['stack']}`; the next render into this folder "
                       "replaces everything in it\n")

    # The engine registers resources in whatever order their inputs resolve: sorted, two renders compare.
    resources = sorted(run["resources"], key=_review_order)
    for resource in resources:
        user_data = declared_user_data(resource)
        if user_data:
            write(f"cloud-init/{_slug(resource['name'])}.yaml", user_data)
    for index, manifest in enumerate(sorted(manifests(resources), key=_apply_order), start=1):
        name = manifest["metadata"].get("name", f"object-{index}")
        write(f"manifests/{index:02d}-{manifest['kind'].lower()}-{_slug(name)}.yaml",
              # The engine hands maps over in no fixed order; sorted keys (apiVersion, kind, metadata, spec first
              # by luck of the alphabet) make two renders compare.
              yaml.safe_dump(manifest, sort_keys=True))
    made_up = MadeUp(run["resources"])
    rows = ["| type | name | key settings |", "|---|---|---|"]
    rows += [f"| `{r['type']}` | {r['name']} | {summary(r, made_up)} |" for r in resources]
    numbers = [f"- {line}" for line in number_sources(run)]
    write("resources.md", f"# Stack `{run['stack']}`: {len(run['resources'])} resources\n\n"
                          f"Values shown as {KNOWN_AFTER_UP} are assigned by the cloud when the resource is created, "
                          "or looked up in your account then (the newest AMI, the default VPC and its subnets)."
                          "\n\n" + "\n".join(rows) + "\n"
                          + ("\n## Where the numbers come from\n\n" + "\n".join(numbers) + "\n" if numbers else "")
                          + "".join(f"\n{line}" for line in cold_start_section(run))
                          + "\n" + "\n".join(cost_section(run)) + "\n")
    outputs = {k: ("<secret>" if k in run["secret_outputs"] else made_up.shown(v)) for k, v in run["outputs"].items()}
    write("outputs.json", json.dumps(outputs, indent=2) + "\n")
    write("program.log", "".join(f"{line}\n" for line in run["log"]))
    return written


def _settings(pairs: list[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--set takes KEY=VALUE, got {pair!r}")
        settings[key if ":" in key else f"pixtral:{key}"] = value
    return settings


def _writable_folder(out: Path) -> None:
    """Refuse an --out that cannot become a folder, or holds something other than a render, before spending a
    program run on it."""
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                raise UsageError(f"--out {out}: {path} exists and is not a folder; pass a folder (it is created "
                                 "if missing)")
            break
    if out.is_dir() and any(out.iterdir()) and not (out / RENDER_MARK).exists():
        found = ", ".join(sorted(p.name for p in out.iterdir())[:3])
        raise UsageError(f"--out {out}: the folder holds files that are not a render ({found}, ...); pass a new or "
                         "empty folder, or one an earlier render wrote (which is then replaced)")


def _clear_earlier_render(out: Path) -> None:
    """An earlier render's files go, so the folder shows this render alone."""
    if not (out / RENDER_MARK).exists():
        return
    for path in out.iterdir():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def run(args: argparse.Namespace) -> None:
    from dataclasses import asdict

    from pixtral_render.engine import StackNotFound, find_stack_file, run_program

    try:
        stack, path = find_stack_file(args.stack)
    except StackNotFound as error:
        raise UsageError(str(error)) from None
    settings = _settings(args.set)
    _writable_folder(args.out)
    # The program run takes a while (the providers' SDKs load first): say at once what is under way.
    print(f"rendering stack {stack} ({path}) with the Pulumi SDK's mock engine: no cloud, no credentials ...",
          flush=True)
    program = asdict(run_program(args.stack, settings))
    for line in program["log"]:
        print(line)
    if program["error"]:
        raise Failure(program["error"])
    try:
        written = write_render(program, args.out)
    except OSError as error:
        raise UsageError(f"--out {args.out}: cannot write there ({error.strerror or error})") from None
    print(f"rendered stack {stack}: {len(program['resources'])} resources, {len(written)} files in {args.out}:")
    for path in written:
        print(f"  {path}")
