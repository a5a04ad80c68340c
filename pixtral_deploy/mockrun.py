"""Runs the real program for one stack file under the Pulumi SDK's mock engine, with no cloud and no CLI.

The mocks stand in for the cloud APIs only: they answer lookups (AMIs, subnets, images) and fill in what a cloud
returns on create (IPs, ids). Everything the program declares is recorded: each resource's type, name and inputs,
and each stack output with whether it is a secret. Tests and `pixtralctl render` both read this record.

Run one stack per process (`python -m pixtral_deploy.mockrun --stack aws`): the SDK keeps its runtime state in
globals, so a second program in the same process would see the first one's stack.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import logging
import os
import re
import runpy
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROJECT_NAME = "pixtral-deploy"
MOCK_PUBLIC_IP = "203.0.113.10"
MOCK_LB_HOSTNAME = "a1b2c3-pixtral.elb.example.com"
MOCK_INSTANCE_ID = "i-0123456789abcdef0"
MOCK_ACCOUNT = "123456789012"
MOCK_ALB_DNS_NAME = "pixtral-0123456789.us-east-1.elb.amazonaws.com"
# The Route 53 zone that Elastic Load Balancing keeps an ALB's name in (us-east-1's), for alias records.
MOCK_ALB_ZONE_ID = "Z35SXDOTRQ7X7K"
# ACM's DNS validation answer: the CNAME it asks for in the domain's zone.
MOCK_ACM_VALIDATION_NAME = "_0123456789abcdef"
MOCK_ACM_VALIDATION_VALUE = "_fedcba9876543210.mock.acm-validations.aws."
# What the mocks invent on create: a real stack knows these only after `pulumi up` (render shows them so).
MOCK_LB_ADDRESS = "198.51.100.20"
MOCK_INTERNAL_ADDRESS = "10.128.0.50"
MOCK_PRIVATE_IP = "10.0.0.10"
MOCK_ALLOCATION_ID = "eipalloc-0123456789abcdef0"
# What the mocks answer for lookups (the newest AMI, the default VPC and its subnets): the real answers come from
# the account at `pulumi up`, so a render never shows these as if they were real ids.
MOCK_AMI_ID = "ami-0dlami000000000"
MOCK_VPC_ID = "vpc-0default00000000"
MOCK_SUBNET_IDS = ("subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb")
MADE_UP_ON_CREATE = (MOCK_PUBLIC_IP, MOCK_LB_ADDRESS, MOCK_INTERNAL_ADDRESS, MOCK_LB_HOSTNAME, MOCK_INSTANCE_ID,
                     f":{MOCK_ACCOUNT}:", MOCK_ALB_DNS_NAME, MOCK_ACM_VALIDATION_NAME, MOCK_ACM_VALIDATION_VALUE,
                     MOCK_PRIVATE_IP, MOCK_ALLOCATION_ID, MOCK_AMI_ID, MOCK_VPC_ID, *MOCK_SUBNET_IDS)
# Secret versions past the first, as after a rotation or two: the program must carry the number the store gives.
MOCK_SSM_VERSION = 3
MOCK_SECRET_VERSION = "2"
MOCK_GCP_PROJECT = "pixtral-mock-project"


@dataclass
class DeclaredResource:
    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    # The resource options the engine acts on at up and destroy time (timeouts, protect, retainOnDelete, ...).
    options: dict[str, Any] = field(default_factory=dict)
    # The type of the resource this one is a child of (`pulumi:pulumi:Stack` at the top level).
    parent: str | None = None
    # The id the mock cloud gave it: other resources' inputs that hold it refer to this resource.
    id: str = ""
    # What the engine waits for before it creates or updates this one ("type::name"): every resource whose output is
    # in its inputs, and its dependsOn.
    depends_on: list[str] = field(default_factory=list)


@dataclass
class ProgramRun:
    stack: str
    config: dict[str, str]
    resources: list[DeclaredResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    error: str | None = None

    def of_type(self, type_: str) -> list[DeclaredResource]:
        return [r for r in self.resources if r.type == type_]


def stack_files(project_dir: Path = PROJECT_DIR) -> dict[str, Path]:
    stacks_dir = project_dir / yaml.safe_load((project_dir / "Pulumi.yaml").read_text())["stackConfigDir"]
    return {p.name[len("Pulumi."):-len(".yaml")]: p for p in sorted(stacks_dir.glob("Pulumi.*.yaml"))}


class StackFileError(ValueError):
    """A stack file that is not the YAML the Pulumi CLI would read; the message names the file, line and column."""


def _yaml12_scalar(node: yaml.ScalarNode) -> Any:
    """A scalar inside a list or map, typed by YAML 1.2's core schema as the Pulumi CLI (Go's yaml.v3) types it:
    only true/false are booleans (`yes`, `on`, `y` stay strings)."""
    text = node.value
    if node.style is not None and node.style != "":
        return text  # quoted or block: a string
    if re.fullmatch(r"true|True|TRUE|false|False|FALSE", text):
        return text.lower() == "true"
    if re.fullmatch(r"~|null|Null|NULL|", text):
        return None
    if re.fullmatch(r"[-+]?[0-9]+", text):
        return int(text)
    if re.fullmatch(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?", text):
        return float(text)
    return text


def _yaml12_value(node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return {_yaml12_value(key): _yaml12_value(value) for key, value in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [_yaml12_value(item) for item in node.value]
    return _yaml12_scalar(node)


def _config_value(node: yaml.Node) -> str:
    """A top-level config value as the engine hands it to a program: a scalar's text exactly as written (the Pulumi
    CLI keeps `yes`, `1.0` and `0.32` as those strings), lists and maps as JSON."""
    if isinstance(node, yaml.ScalarNode):
        return node.value
    return json.dumps(_yaml12_value(node))


# The top-level keys of a stack file the Pulumi CLI knows; anything else (a setting outside `config:`) it ignores.
STACK_FILE_KEYS = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")
# What render hands the program for a `secure:` value it cannot decrypt (that needs the stack's passphrase or
# Pulumi Cloud): a stand-in secret that passes the key's checks, so the program takes the path `pulumi up` takes
# with the user's value (no generated key).
ENCRYPTED_STAND_IN = "encrypted-value-render-cannot-read"


def _shown(path: Path) -> str:
    return str(path.relative_to(path.parent.parent)) if path.parent.name == "stacks" else str(path)


def _check_unique_keys(node: yaml.Node, path: Path) -> None:
    """The Pulumi CLI (Go's yaml.v3) refuses a mapping that names a key twice; PyYAML would keep the last value."""
    if isinstance(node, yaml.MappingNode):
        first_seen: dict[Any, int] = {}
        for key, value in node.value:
            line = key.start_mark.line + 1
            if key.value in first_seen:
                raise StackFileError(f"{_shown(path)}, line {line}: {key.value} is set twice (first on line "
                                     f"{first_seen[key.value]}); the Pulumi CLI refuses such a file: keep one")
            first_seen[key.value] = line
            _check_unique_keys(value, path)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_unique_keys(item, path)


def _config_node(path: Path) -> yaml.MappingNode | None:
    """The `config:` mapping of a stack file, checked the way the Pulumi CLI reads the file."""
    try:
        document = yaml.compose(path.read_text())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise StackFileError(f"{_shown(path)}{where}: not valid YAML ({error.problem or error.context})") from None
    if document is None:
        return None
    if not isinstance(document, yaml.MappingNode):
        raise StackFileError(f"{_shown(path)}: a stack file is a map with a `config:` block, not a "
                             f"{document.tag.rsplit(':', 1)[-1]}")
    _check_unique_keys(document, path)
    outside = [key.value for key, _ in document.value if key.value not in STACK_FILE_KEYS]
    if outside:
        verb, them = ("is", "it") if len(outside) == 1 else ("are", "them")
        raise StackFileError(f"{_shown(path)}: {', '.join(outside)} {verb} outside the `config:` block, where the "
                             f"Pulumi CLI ignores {them}; indent {them} under `config:`")
    config = dict((key.value, value) for key, value in document.value).get("config")
    return config if isinstance(config, yaml.MappingNode) else None


def _encrypted(value: yaml.Node) -> bool:
    return isinstance(value, yaml.MappingNode) and any(k.value == "secure" for k, _ in value.value)


def read_stack_file(path: Path) -> dict[str, str]:
    """The `config:` block of a stack file, read the way the Pulumi CLI reads it; encrypted values are left out
    (encrypted_keys names them)."""
    config = _config_node(path)
    if config is None:
        return {}
    return {key.value: _config_value(value) for key, value in config.value if not _encrypted(value)}


def encrypted_keys(path: Path) -> list[str]:
    """The keys a stack file holds as `secure:` values (what `pulumi config set --secret` writes)."""
    config = _config_node(path)
    return [key.value for key, value in config.value if _encrypted(value)] if config is not None else []


class StackNotFound(ValueError):
    """The stack named is neither a stack file in stacks/ nor a path to one; the message says what there is."""


def find_stack_file(stack: str, project_dir: Path = PROJECT_DIR) -> tuple[str, Path]:
    """(stack name, stack file) for a stack name (`aws`) or a stack file's path (`stacks/Pulumi.aws.yaml`)."""
    files = stack_files(project_dir)
    if stack in files:
        return stack, files[stack]
    name = Path(stack).name
    if re.fullmatch(r"Pulumi\.[^/]+\.yaml", name):
        path = Path(stack) if Path(stack).is_file() else project_dir / stack
        if path.is_file():
            return name[len("Pulumi."):-len(".yaml")], path
    bare = name.removeprefix("Pulumi.").removesuffix(".yaml")
    close = difflib.get_close_matches(bare, list(files), n=1, cutoff=0.6)
    meant = f"did you mean {close[0]}? " if close else ""
    raise StackNotFound(f"no stack file for {stack!r}; {meant}stacks in stacks/: {', '.join(files)} (or pass the "
                        "path of a Pulumi.<stack>.yaml file)")


def _with_namespaces(config: dict[str, str]) -> dict[str, str]:
    """A key without a namespace belongs to the project, as `pulumi config set KEY` files it."""
    return {key if ":" in key else f"{PROJECT_NAME}:{key}": value for key, value in config.items()}


def _stands_in_for_the_gcp_project(config: dict[str, str], overrides: dict[str, str]) -> bool:
    """The GCP stack files ship a placeholder project the program refuses; a mock run has no account, so it
    renders with a stand-in unless the caller names a project (or the placeholder, to see the refusal)."""
    from pixtral_deploy import targets
    from pixtral_deploy.targets.gcp import PLACEHOLDER_GCP_PROJECT

    chosen = targets.find(config.get("pixtral:target"))
    return ("gcp:project" not in overrides and chosen is not None and "gcp" in chosen.provider_namespaces
            and config.get("gcp:project") in (None, PLACEHOLDER_GCP_PROJECT))


def _number_free(value: Any) -> Any:
    """Values as a cloud would see them: the mock engine hands every number back as a float (whole floats become
    ints again) and leaves secrets nested in maps in their wire wrapping (unwrapped here)."""
    from pulumi.runtime.rpc import _special_secret_sig, _special_sig_key

    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        if value.get(_special_sig_key) == _special_secret_sig:
            return _number_free(value.get("value"))
        return {k: _number_free(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_number_free(v) for v in value]
    return value


def _declared_options(request: Any) -> dict[str, Any]:
    """The options of one RegisterResource request that change what `pulumi up` / `destroy` do, when set."""
    timeouts = request.customTimeouts
    options = {
        "customTimeouts": {k: v for k, v in (("create", timeouts.create), ("update", timeouts.update),
                                             ("delete", timeouts.delete)) if v},
        "protect": bool(request.protect),
        "retainOnDelete": bool(request.retainOnDelete),
        "ignoreChanges": list(request.ignoreChanges),
        "replaceOnChanges": list(request.replaceOnChanges),
        "deleteBeforeReplace": bool(request.deleteBeforeReplace),
    }
    return {key: value for key, value in options.items() if value}


def _make_monitor(mocks: Any, options_by_resource: dict[tuple[str, str], dict[str, Any]]):
    """The SDK's own mock monitor, noting each request's resource options before the mocks see its inputs."""
    from pulumi.runtime.mocks import MockMonitor

    class RecordingMonitor(MockMonitor):
        def RegisterResource(self, request):
            options = _declared_options(request)
            options["parent"] = request.parent.split("::")[2].split("$")[-1] if request.parent else None
            options["depends_on"] = sorted({"::".join(urn.split("::")[-2:]).split("$")[-1]
                                            for urn in request.dependencies})
            options_by_resource[(request.type, request.name)] = options
            return super().RegisterResource(request)

    return RecordingMonitor(mocks)


def mock_id(name: str) -> str:
    """The id the mocks give the resource `name` (and its `name` output where the cloud names it)."""
    return f"{name}-id"


def mock_name(name: str) -> str:
    return f"{name}-name"


def _declared_without_name(inputs: dict[str, Any]) -> bool:
    metadata = inputs.get("metadata")
    return isinstance(metadata, dict) and "name" not in metadata


def _suffix(name: str) -> str:
    """Stands in for the random suffix of Pulumi's auto-naming; fixed per name so runs compare."""
    return hashlib.sha256(name.encode()).hexdigest()[:7]


def _mock_arn(type_: str, region: str, name: str, resource_id: str) -> str:
    """ARNs in the format the real services give, so policy checkers read them as what they are."""
    if type_ == "aws:iam/role:Role":
        return f"arn:aws:iam::{MOCK_ACCOUNT}:role/{name}"
    if type_ == "aws:kms/key:Key":
        return f"arn:aws:kms:{region}:{MOCK_ACCOUNT}:key/{resource_id}"
    return f"arn:aws:ssm:{region}:{MOCK_ACCOUNT}:parameter/{name.lstrip('/')}"


def _gcp_link(inputs: dict[str, Any], collection: str, name: str) -> str:
    where = f"regions/{inputs['region']}" if inputs.get("region") else "global"
    return (f"https://www.googleapis.com/compute/v1/projects/{inputs.get('project', MOCK_GCP_PROJECT)}/{where}/"
            f"{collection}/{name}")


def _publishes(config: dict[str, str]) -> str:
    from pixtral_deploy import targets

    chosen = targets.find(config.get("pixtral:target"))
    return chosen.load_balancer_publishes if chosen is not None else "hostname"


def _make_mocks(config: dict[str, str], run: ProgramRun,
                options_by_resource: dict[tuple[str, str], dict[str, Any]]):
    import pulumi

    from .mock_tls import tls_outputs

    region = config.get("aws:region", "us-east-1")

    class CloudMocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs):
            inputs = _number_free(args.inputs)
            outputs = dict(inputs)
            resource_id = mock_id(args.name)
            if args.typ == "aws:ec2/instance:Instance":
                resource_id = MOCK_INSTANCE_ID
                outputs.update(publicIp=MOCK_PUBLIC_IP, privateIp=MOCK_PRIVATE_IP)
            elif args.typ == "aws:ec2/launchTemplate:LaunchTemplate":
                outputs.update(latestVersion=1)
            elif args.typ == "aws:ec2/eip:Eip":
                outputs.update(publicIp=MOCK_PUBLIC_IP, allocationId=MOCK_ALLOCATION_ID)
            elif args.typ in ("aws:ssm/parameter:Parameter", "aws:iam/role:Role", "aws:kms/key:Key"):
                outputs.setdefault("name", mock_name(args.name))
                outputs.update(arn=_mock_arn(args.typ, region, outputs["name"], resource_id))
                if args.typ == "aws:ssm/parameter:Parameter":
                    outputs.update(version=MOCK_SSM_VERSION)
            elif args.typ == "aws:iam/instanceProfile:InstanceProfile":
                outputs.update(arn=f"arn:aws:iam::{MOCK_ACCOUNT}:instance-profile/{args.name}")
            elif args.typ == "aws:lb/loadBalancer:LoadBalancer":
                suffix = f"app/{args.name}/0123456789abcdef"
                outputs.update(dnsName=MOCK_ALB_DNS_NAME if not inputs.get("internal") else
                               f"internal-{MOCK_ALB_DNS_NAME}", arnSuffix=suffix, zoneId=MOCK_ALB_ZONE_ID,
                               arn=f"arn:aws:elasticloadbalancing:{region}:{MOCK_ACCOUNT}:loadbalancer/{suffix}")
            elif args.typ == "aws:lb/targetGroup:TargetGroup":
                suffix = f"targetgroup/{args.name}/fedcba9876543210"
                outputs.update(arnSuffix=suffix, arn=f"arn:aws:elasticloadbalancing:{region}:{MOCK_ACCOUNT}:{suffix}")
            elif args.typ == "aws:acm/certificate:Certificate":
                outputs.update(arn=f"arn:aws:acm:{region}:{MOCK_ACCOUNT}:certificate/{resource_id}")
                if inputs.get("domainName"):
                    outputs.update(domainValidationOptions=[{
                        "domainName": inputs["domainName"], "resourceRecordType": "CNAME",
                        "resourceRecordName": f"{MOCK_ACM_VALIDATION_NAME}.{inputs['domainName']}.",
                        "resourceRecordValue": MOCK_ACM_VALIDATION_VALUE}])
            elif args.typ == "aws:route53/record:Record":
                outputs.update(fqdn=inputs["name"].rstrip("."))
            elif args.typ == "aws:autoscaling/group:Group":
                group_name = inputs.get("name", f"{args.name}-{_suffix(args.name)}")
                outputs.update(name=group_name, arn=f"arn:aws:autoscaling:{region}:{MOCK_ACCOUNT}:autoScalingGroup:"
                                                    f"mock:autoScalingGroupName/{group_name}")
            elif args.typ == "aws:autoscaling/policy:Policy":
                outputs.update(arn=f"arn:aws:autoscaling:{region}:{MOCK_ACCOUNT}:scalingPolicy:{resource_id}:"
                                   f"autoScalingGroupName/{inputs.get('autoscalingGroupName')}:policyName/{args.name}")
            elif args.typ == "gcp:secretmanager/secretVersion:SecretVersion":
                outputs.update(version=MOCK_SECRET_VERSION, name=f"{inputs['secret']}/versions/{MOCK_SECRET_VERSION}")
            elif args.typ == "random:index/randomPassword:RandomPassword":
                outputs.update(result="Mock0Generated0Api0Key0" + "x" * (int(inputs.get("length", 40)) - 23))
            elif args.typ in ("gcp:compute/network:Network", "gcp:compute/subnetwork:Subnetwork"):
                kind = "networks" if args.typ.endswith("Network") else f"regions/{inputs.get('region')}/subnetworks"
                where = "global/" if kind == "networks" else ""
                outputs.update(selfLink=f"projects/{inputs.get('project')}/{where}{kind}/{args.name}")
            elif args.typ == "gcp:compute/address:Address":
                outputs.update(address=MOCK_INTERNAL_ADDRESS if inputs.get("addressType") == "INTERNAL"
                               else MOCK_PUBLIC_IP)
            elif args.typ == "gcp:compute/globalAddress:GlobalAddress":
                outputs.update(address=MOCK_LB_ADDRESS)
            elif args.typ == "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager":
                outputs.update(instanceGroup=f"{_gcp_link(inputs, 'instanceGroups', args.name)}")
            elif args.typ == "gcp:serviceaccount/account:Account":
                outputs.update(email=f"{inputs['accountId']}@{inputs.get('project', 'p')}.iam.gserviceaccount.com")
            elif args.typ == "aws:eks/cluster:Cluster":
                outputs.update(endpoint="https://mock-eks.example.com", name=inputs.get("name", args.name),
                               certificateAuthority={"data": "bW9jay1jYQ=="})
            elif args.typ == "gcp:container/cluster:Cluster":
                outputs.update(endpoint="192.0.2.10", masterAuth={"clusterCaCertificate": "bW9jay1jYQ=="})
            elif args.typ.startswith("tls:"):
                outputs.update(tls_outputs(args.typ, args.name, inputs))
            elif args.typ.startswith("kubernetes:") and _declared_without_name(inputs):
                # The provider names an object declared without one: the resource name and a random suffix, drawn
                # anew when the object is replaced (new data for a Secret or ConfigMap): the same inputs, the same
                # suffix, so runs compare.
                generation = json.dumps(inputs, sort_keys=True, default=str)
                outputs["metadata"] = {**inputs["metadata"], "name": f"{args.name}-{_suffix(args.name + generation)}"}
            if args.typ == "kubernetes:core/v1:Service":
                # As the clouds answer: GKE's load balancers publish an IP, AWS's (and the mock's default) a name.
                ingress = ({"ip": MOCK_LB_ADDRESS} if _publishes(config) == "ip" else {"hostname": MOCK_LB_HOSTNAME})
                outputs.update(status={"loadBalancer": {"ingress": [ingress]}})
            outputs.setdefault("name", args.name)
            if args.typ.startswith("gcp:compute/"):
                # Compute Engine names every resource by a link; templates also by one that pins their version.
                collection = args.typ.split(":")[-1][0].lower() + args.typ.split(":")[-1][1:] + "s"
                outputs.setdefault("selfLink", _gcp_link(inputs, collection, outputs["name"]))
                outputs.setdefault("selfLinkUnique", f"{outputs['selfLink']}?uniqueId=1234567890")
            options = options_by_resource.pop((args.typ, args.name), {})
            parent = options.pop("parent", None)
            depends_on = options.pop("depends_on", [])
            run.resources.append(DeclaredResource(args.typ, args.name, inputs, _number_free(outputs), options,
                                                  parent, resource_id, depends_on))
            return resource_id, outputs

        def call(self, args: pulumi.runtime.MockCallArgs):
            answers = {
                "aws:index/getRegion:getRegion": {"region": region, "name": region},
                "aws:index/getCallerIdentity:getCallerIdentity": {
                    "accountId": MOCK_ACCOUNT, "arn": f"arn:aws:iam::{MOCK_ACCOUNT}:user/mock", "userId": "AIDAMOCK",
                    "id": MOCK_ACCOUNT},
                "aws:ec2/getAmi:getAmi": {"id": MOCK_AMI_ID, "name": "Deep Learning Base (mock)"},
                "aws:ec2/getVpc:getVpc": {"id": MOCK_VPC_ID},
                "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": {
                    "locations": [f"{region}a", f"{region}b"], "instanceTypes": [], "locationTypes": []},
                "aws:ec2/getSubnets:getSubnets": {"ids": list(reversed(MOCK_SUBNET_IDS))},
                "aws:ec2/getSubnet:getSubnet": {"id": args.args.get("id"), "vpcId": MOCK_VPC_ID},
                "aws:eks/getCluster:getCluster": {
                    "name": args.args.get("name"), "endpoint": "https://existing-eks.example.com",
                    "certificateAuthorities": [{"data": "bW9jay1jYQ=="}],
                    "vpcConfig": {"subnetIds": list(MOCK_SUBNET_IDS)}},
                "gcp:container/getCluster:getCluster": {
                    "name": args.args.get("name"), "endpoint": "192.0.2.20",
                    "masterAuths": [{"clusterCaCertificate": "bW9jay1jYQ=="}]},
                "gcp:compute/getImage:getImage": {
                    "selfLink": "projects/deeplearning-platform-release/global/images/mock-dlvm"},
            }
            if args.token not in answers:
                raise NotImplementedError(f"mockrun has no answer for the invoke {args.token}")
            return answers[args.token]

    return CloudMocks()


class _LogCollector(logging.Handler):
    def __init__(self, run: ProgramRun):
        super().__init__()
        self.run = run

    def emit(self, record: logging.LogRecord) -> None:
        self.run.log.append(f"{record.levelname.lower()}: {record.getMessage()}")


def run_program(stack: str, overrides: dict[str, str] | None = None, secret_keys: list[str] | None = None,
                project_dir: Path = PROJECT_DIR) -> ProgramRun:
    """Run __main__.py for `stack`; `overrides` are extra config ("pixtral:port": "9000") as the CLI would set."""
    import pulumi
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    try:
        stack, path = find_stack_file(stack, project_dir)
        from_file = read_stack_file(path)
        encrypted = [key for key in _with_namespaces(dict.fromkeys(encrypted_keys(path), ""))
                     if key not in (overrides or {})]
    except (StackFileError, StackNotFound) as error:
        return ProgramRun(stack=stack, config={}, error=str(error))
    config = {**_with_namespaces(from_file), **(overrides or {})}
    run = ProgramRun(stack=stack, config=config)
    for key in encrypted:
        config[key] = ENCRYPTED_STAND_IN
        run.log.append(f"info: mock run: {key} is encrypted in {_shown(path)} and render cannot decrypt it (that "
                       "needs the stack's passphrase or Pulumi Cloud); it renders as if set to a value that passes "
                       "its checks, as `pulumi up` would use yours (to render another value: --set KEY=VALUE)")
    secret_keys = [*(secret_keys or []), *encrypted]
    if not from_file and "pixtral:target" not in config:
        run.log.append(f"info: {_shown(path)} sets nothing under `config:`; copy a shipped stack file (such as "
                       "stacks/Pulumi.aws.yaml) or `pulumi config set pixtral:target aws`")
    if _stands_in_for_the_gcp_project(config, overrides or {}):
        config["gcp:project"] = MOCK_GCP_PROJECT
        run.log.append(f"info: mock run: gcp:project stands in as {MOCK_GCP_PROJECT} (for `pulumi up`: pulumi config "
                       "set gcp:project YOUR-PROJECT)")
    logger = logging.getLogger(f"pixtral.mockrun.{stack}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(_LogCollector(run))
    pulumi.runtime.set_all_config(config, secret_keys or [])
    options_by_resource: dict[tuple[str, str], dict[str, Any]] = {}
    monitor = _make_monitor(_make_mocks(config, run, options_by_resource), options_by_resource)
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT_NAME, stack=stack, preview=False, logger=logger,
                             monitor=monitor)
    sys.path.insert(0, str(project_dir))
    cwd = os.getcwd()
    os.chdir(project_dir)
    try:
        _sync_await(run_pulumi_func(lambda: runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__")))
    except pulumi.RunError as error:
        run.error = str(error)
        _close_idle_event_loops()
        return run
    finally:
        os.chdir(cwd)
    root = pulumi.runtime.settings.get_root_resource()
    for name, value in root.outputs.items():
        output = pulumi.Output.from_input(value)
        run.outputs[name] = _number_free(_sync_await(output.future()))
        if _sync_await(output.is_secret()):
            run.secret_outputs.append(name)
    _close_idle_event_loops()
    return run


def _close_idle_event_loops() -> None:
    """The SDK leaves an event loop open per thread it used; left to the garbage collector at interpreter exit,
    one now and then is finalised after its self-pipe and prints "Exception ignored ... Invalid file descriptor"
    to the user's terminal. Closing them here, once the run is read, keeps `render`'s output clean."""
    import asyncio
    import gc

    for loop in [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop)]:
        if not loop.is_closed() and not loop.is_running():
            loop.close()


def _pairs(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, _, value = item.partition("=")
        pairs[key if ":" in key else f"pixtral:{key}"] = value
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config")
    parser.add_argument("--secret", action="append", default=[], metavar="KEY=VALUE", help="extra secret config")
    args = parser.parse_args(argv)
    secrets = _pairs(args.secret)
    run = run_program(args.stack, {**_pairs(args.set), **secrets}, list(secrets))
    json.dump(asdict(run), sys.stdout, indent=1, default=str)
    return 1 if run.error else 0


if __name__ == "__main__":
    sys.exit(main())
