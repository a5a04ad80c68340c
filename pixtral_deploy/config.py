"""Reads the stack's configuration through Pulumi: the validated Deployment, and the secrets kept as Outputs."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random
from pulumi.runtime import config as runtime_config

from .cloudinit import StoredSecret
from .secret_values import check_secret_settings
from .spec import NAMESPACE, ConfigError, Deployment, load_deployment, raw_config_from


@dataclass(frozen=True)
class Secrets:
    """Secrets stay Pulumi secrets end to end; they never enter the (printable) Deployment."""

    api_key: pulumi.Output[str]
    hf_token: pulumi.Output[str] | None


def _namespace_keys(namespace: str) -> list[str]:
    """Every key set in the namespace, so a misspelt key is reported instead of silently ignored."""
    names = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    prefix = f"{namespace}:"
    return sorted(name[len(prefix):] for name in names if name.startswith(prefix))


def read_deployment() -> Deployment:
    # The secrets are checked here too: every target reads the deployment before it declares anything, while
    # read_secrets runs inside the targets, after a cluster may already be declared.
    check_secret_settings(NAMESPACE)
    config = pulumi.Config(NAMESPACE)
    return load_deployment(raw_config_from(config.get, _namespace_keys(NAMESPACE)))


def read_secrets() -> Secrets:
    check_secret_settings(NAMESPACE)
    config = pulumi.Config(NAMESPACE)
    api_key = config.get_secret("apiKey")
    if api_key is None:
        # Letters and digits only: the key travels through env files and shell without quoting surprises.
        api_key = random.RandomPassword("api-key", length=40, special=False).result
    return Secrets(api_key=pulumi.Output.secret(api_key), hf_token=config.get_secret("hfToken"))


def required_provider_setting(namespace: str, key: str, why: str) -> str:
    value = pulumi.Config(namespace).get(key)
    if not value:
        raise ConfigError(f"{namespace}:{key} is not set; {why} (pulumi config set {namespace}:{key} VALUE)")
    return value


def stored_secret(name: pulumi.Input[str], version: pulumi.Input[str | int]) -> pulumi.Output[StoredSecret]:
    """A secret the stack wrote to the cloud's store, at the version the store gave that value (SSM counts up,
    Secret Manager numbers each new version): what a VM's cloud-init names so the VM reads exactly it."""
    return pulumi.Output.all(name, version).apply(lambda values: StoredSecret(values[0], str(values[1])))
