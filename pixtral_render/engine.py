"""Runs the real program for one stack file under the Pulumi SDK's mock engine, with no cloud and no CLI.

The mocks stand in for the cloud APIs only: they answer lookups (AMIs, subnets, images) and fill in what a cloud
returns on create (IPs, ids). Everything the program declares is recorded: each resource's type, name and inputs,
and each stack output with whether it is a secret. Tests and `pixtralctl render` both read this record.

Run one stack per process (`python -m pixtral_render --stack aws`): the SDK keeps its runtime state in
globals, so a second program in the same process would see the first one's stack.
"""

from __future__ import annotations

import argparse
import difflib
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

from .cloud import IDS, MOCK_GCP_PROJECT, Created, created_outputs, invoke_answers, mock_id

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROJECT_NAME = "pixtral-deploy"


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
    # Private names: the SDK has no public constant for the wire form of a secret nested in a map (its own
    # deserializer uses these two), and the mocks receive such values as they are sent.
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


def _publishes(config: dict[str, str]) -> str:
    """What a LoadBalancer Service's status holds on the stack's target (the target's class says)."""
    from pixtral_deploy import targets

    chosen = targets.find(config.get("pixtral:target"))
    return chosen.load_balancer_publishes if chosen is not None else "hostname"


def _make_mocks(config: dict[str, str], run: ProgramRun,
                options_by_resource: dict[tuple[str, str], dict[str, Any]]):
    import pulumi

    region = config.get("aws:region", "us-east-1")
    publishes = _publishes(config)

    class CloudMocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs):
            inputs = _number_free(args.inputs)
            resource_id = IDS.get(args.typ, mock_id(args.name))
            outputs = created_outputs(Created(args.typ, args.name, inputs, resource_id, region, publishes))
            options = options_by_resource.pop((args.typ, args.name), {})
            parent = options.pop("parent", None)
            depends_on = options.pop("depends_on", [])
            run.resources.append(DeclaredResource(args.typ, args.name, inputs, _number_free(outputs), options,
                                                  parent, resource_id, depends_on))
            return resource_id, outputs

        def call(self, args: pulumi.runtime.MockCallArgs):
            answers = invoke_answers(region, args.args)
            if args.token not in answers:
                raise NotImplementedError(f"the mock engine has no answer for the invoke {args.token}")
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

    # Private name: `pulumi.runtime.test`, the public way to run code under the mocks, awaits a function's result
    # but discards it and cannot run a program file's module body with the outputs read afterwards; it calls this
    # same helper, which runs a coroutine on the SDK's own event loop.
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
