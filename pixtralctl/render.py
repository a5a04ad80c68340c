"""`pixtralctl render`: what a stack would run, written to a folder, with no credentials and no Pulumi CLI.

It runs the real program for a stack file under the Pulumi SDK's mock engine (pixtral_deploy.mockrun) and writes
each VM's cloud-init, each Kubernetes object as a manifest, a table of the resources with their key settings and
the program's log. It is the review step before `pulumi up`. Secrets are never written.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import yaml

# For the review table: the inputs of each resource type that say what it really is.
KEY_SETTINGS: dict[str, tuple[str, ...]] = {
    "aws:ec2/instance:Instance": ("instanceType", "ami", "subnetId", "rootBlockDevice", "metadataOptions",
                                  "instanceMarketOptions"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": ("ipProtocol", "fromPort", "toPort", "cidrIpv4",
                                                                  "cidrIpv6"),
    "aws:ssm/parameter:Parameter": ("name", "type"),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ("policyArn",),
    "aws:eks/cluster:Cluster": ("version",),
    "aws:eks/nodeGroup:NodeGroup": ("instanceTypes", "amiType", "capacityType", "scalingConfig", "taints"),
    "gcp:compute/instance:Instance": ("machineType", "zone", "guestAccelerators", "scheduling", "bootDisk"),
    "gcp:compute/firewall:Firewall": ("allows", "sourceRanges", "targetTags"),
    "gcp:secretmanager/secret:Secret": ("secretId",),
    "gcp:container/cluster:Cluster": ("location", "minMasterVersion"),
    "gcp:container/nodePool:NodePool": ("nodeCount", "nodeConfig"),
    "kubernetes:apps/v1:Deployment": ("spec",),
    "kubernetes:core/v1:Service": ("spec",),
    "kubernetes:core/v1:PersistentVolumeClaim": ("spec",),
}
_SUMMARY_FIELDS = {"spec": ("replicas", "type", "ports", "resources", "accessModes", "storageClassName"),
                   "bootDisk": ("initializeParams",), "nodeConfig": ("machineType", "guestAccelerators", "spot")}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render", help="write what a stack would run (cloud-init, manifests, resources) without any credentials",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="stack file to render (stacks/Pulumi.<stack>.yaml)")
    parser.add_argument("--out", required=True, type=Path, help="folder to write into (created if missing)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config for this render, e.g. --set port=9000 (namespace pixtral by default)")
    parser.set_defaults(handler=run)


def _summary(resource_type: str, inputs: dict[str, Any], options: dict[str, Any]) -> str:
    parts = []
    for key in KEY_SETTINGS.get(resource_type, ()):
        if key not in inputs:
            continue
        value = inputs[key]
        if key == "spec" and resource_type == "kubernetes:apps/v1:Deployment":
            container = value["template"]["spec"]["containers"][0]
            value = {"replicas": value.get("replicas"), "image": container["image"],
                     "gpus": container["resources"]["limits"].get("nvidia.com/gpu")}
        elif key in _SUMMARY_FIELDS and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k in _SUMMARY_FIELDS[key]}
        parts.append(f"{key}={json.dumps(value, separators=(',', ':'))}")
    # Resource options (timeouts, protect, ...) change what `pulumi up` and `destroy` do: reviewers see them too.
    parts += [f"{key}={json.dumps(value, separators=(',', ':'))}" for key, value in options.items()]
    return "; ".join(parts).replace("|", "\\|")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def write_render(run: dict[str, Any], out: Path) -> list[Path]:
    """Write the review folder for one mock run; returns the files written."""
    from pixtral_deploy.cloudinit import declared_user_data
    from pixtral_deploy.manifests import manifests

    out.mkdir(parents=True, exist_ok=True)
    written = []

    def write(name: str, text: str) -> None:
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)

    for resource in run["resources"]:
        user_data = declared_user_data(resource)
        if user_data:
            write(f"cloud-init/{_slug(resource['name'])}.yaml", user_data)
    for index, manifest in enumerate(manifests(run["resources"]), start=1):
        name = manifest["metadata"].get("name", f"object-{index}")
        write(f"manifests/{index:02d}-{manifest['kind'].lower()}-{_slug(name)}.yaml",
              yaml.safe_dump(manifest, sort_keys=False))
    rows = ["| type | name | key settings |", "|---|---|---|"]
    rows += [f"| `{r['type']}` | {r['name']} | {_summary(r['type'], r['inputs'], r['options'])} |"
             for r in run["resources"]]
    write("resources.md", f"# Stack `{run['stack']}`: {len(run['resources'])} resources\n\n" + "\n".join(rows) + "\n")
    outputs = {k: ("<secret>" if k in run["secret_outputs"] else v) for k, v in run["outputs"].items()}
    write("outputs.json", json.dumps(outputs, indent=2) + "\n")
    write("program.log", "".join(f"{line}\n" for line in run["log"]))
    return written


def _settings(pairs: list[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"pixtralctl render: --set takes KEY=VALUE, got {pair!r}")
        settings[key if ":" in key else f"pixtral:{key}"] = value
    return settings


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from pixtral_deploy.mockrun import run_program, stack_files

    if args.stack not in stack_files():
        print(f"pixtralctl render: no stack file for {args.stack!r}; shipped stacks: {', '.join(stack_files())}")
        return 2
    program = asdict(run_program(args.stack, _settings(args.set)))
    for line in program["log"]:
        print(line)
    if program["error"]:
        print(f"error: {program['error']}")
        return 1
    written = write_render(program, args.out)
    print(f"rendered stack {args.stack}: {len(program['resources'])} resources, {len(written)} files in {args.out}")
    return 0
