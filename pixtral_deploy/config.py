"""Reads the stack's configuration through Pulumi, in one place: the validated StackSpec, the secrets kept as
Outputs, and the provider settings the program needs. Everything here runs before any resource is declared."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from . import targets
from .cloudinit import StoredSecret
from .errors import ConfigError
from .keys import NAMESPACE, misplaced_keys
from .locations import other_cloud_keys
from .secret_values import secret_setting_problems
from .spec import StackSpec, load_spec, raw_config_from


@dataclass(frozen=True)
class Secrets:
    """Secrets stay Pulumi secrets end to end; they never enter the (printable) StackSpec."""

    api_key: pulumi.Output[str] | None
    hf_token: pulumi.Output[str] | None
    kubeconfig: pulumi.Output[str] | None
    # KEDA's Prometheus credentials: USER:PASSWORD, or a bearer token (at most one of them).
    prometheus_basic_auth: pulumi.Output[str] | None = None
    prometheus_bearer_token: pulumi.Output[str] | None = None


@dataclass(frozen=True)
class StackConfig:
    spec: StackSpec
    secrets: Secrets
    # Where the target's provider settings put it (gcp: project and zone); None where the program needs none.
    location: Any = None


def _all_keys() -> list[str]:
    return sorted(set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env()))


def _namespace_keys(keys: list[str]) -> list[str]:
    """Every key set in the namespace, so a misspelt key is reported instead of silently ignored."""
    prefix = f"{NAMESPACE}:"
    return [name[len(prefix):] for name in keys if name.startswith(prefix)]


def _located(spec: StackSpec, location: Any, warnings: list[str]) -> StackSpec:
    """The GPU checked against the location (known once the spec is), and the location's warnings added."""
    if location is not None:
        errors, more = spec.runs_on.located(spec, location)
        if errors:
            raise ConfigError("\n".join(errors))
        warnings = warnings + more
    return replace(spec, warnings=spec.warnings + tuple(warnings)) if warnings else spec


def read_stack() -> StackConfig:
    """The whole configuration, validated; every problem found is reported at once as one ConfigError."""
    keys = _all_keys()
    config = pulumi.Config(NAMESPACE)
    target = config.get("target")
    errors = (misplaced_keys(keys, pulumi.get_project()) + secret_setting_problems(NAMESPACE, target)
              + other_cloud_keys(keys, target))
    chosen = targets.find(target)
    location, warnings = chosen.location(errors) if chosen is not None else (None, [])
    spec = load_spec(raw_config_from(config.get, _namespace_keys(keys)), errors)
    return StackConfig(_located(spec, location, warnings), _secrets(config), location)


def _secrets(config: pulumi.Config) -> Secrets:
    return Secrets(api_key=config.get_secret("apiKey"), hf_token=config.get_secret("hfToken"),
                   kubeconfig=config.get_secret("kubeconfig"),
                   prometheus_basic_auth=config.get_secret("prometheusBasicAuth"),
                   prometheus_bearer_token=config.get_secret("prometheusBearerToken"))


def stored_secret(name: pulumi.Input[str], version: pulumi.Input[str | int]) -> pulumi.Output[StoredSecret]:
    """A secret the stack wrote to the cloud's store, at the version the store gave that value (SSM counts up,
    Secret Manager numbers each new version): what a VM's cloud-init names so the VM reads exactly it."""
    return pulumi.Output.all(name, version).apply(lambda values: StoredSecret(values[0], str(values[1])))
