"""Reads the stack's configuration through Pulumi, in one place: the validated Deployment, the secrets kept as
Outputs, and the provider settings the program needs. Everything here runs before any resource is declared."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pulumi
from pulumi.runtime import config as runtime_config

from .cloudinit import StoredSecret
from .errors import ConfigError
from .keys import NAMESPACE, misplaced_keys
from .locations import aws_region_problems, gcp_zone_format_problems, gcp_zone_gpu_problems, other_cloud_keys
from .secret_values import secret_setting_problems
from .spec import Deployment, load_deployment, raw_config_from

# The GCP stack files ship this placeholder; a real project id is needed before anything can be created.
PLACEHOLDER_GCP_PROJECT = "my-gcp-project"


@dataclass(frozen=True)
class Secrets:
    """Secrets stay Pulumi secrets end to end; they never enter the (printable) Deployment."""

    api_key: pulumi.Output[str] | None
    hf_token: pulumi.Output[str] | None
    kubeconfig: pulumi.Output[str] | None
    # KEDA's Prometheus credentials: USER:PASSWORD, or a bearer token (at most one of them).
    prometheus_basic_auth: pulumi.Output[str] | None = None
    prometheus_bearer_token: pulumi.Output[str] | None = None


@dataclass(frozen=True)
class GcpLocation:
    project: str
    zone: str


@dataclass(frozen=True)
class StackConfig:
    deployment: Deployment
    secrets: Secrets
    gcp: GcpLocation | None = None


def _all_keys() -> list[str]:
    return sorted(set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env()))


def _namespace_keys(keys: list[str]) -> list[str]:
    """Every key set in the namespace, so a misspelt key is reported instead of silently ignored."""
    prefix = f"{NAMESPACE}:"
    return [name[len(prefix):] for name in keys if name.startswith(prefix)]


def _gcp_location(errors: list[str]) -> GcpLocation | None:
    config = pulumi.Config("gcp")
    project, zone = config.get("project"), config.get("zone")
    if not project:
        errors.append("gcp:project is not set; the GCP project to create resources in "
                      "(pulumi config set gcp:project YOUR-PROJECT)")
    elif project == PLACEHOLDER_GCP_PROJECT:
        errors.append(f"gcp:project: {project} is the stack file's placeholder, not a project; set yours with "
                      "`pulumi config set gcp:project YOUR-PROJECT`")
    if not zone:
        errors.append("gcp:zone is not set; a zone with the GPU, e.g. us-central1-a for nvidia-l4 "
                      "(pulumi config set gcp:zone ZONE)")
    zone_problems = gcp_zone_format_problems(zone)
    errors += zone_problems
    return GcpLocation(project, zone) if project and zone and not zone_problems else None


def _located(deployment: Deployment, gcp: GcpLocation | None, warnings: list[str]) -> Deployment:
    """The GPU checked against gcp:zone (known once the deployment is), and the location's warnings added."""
    if gcp is not None and deployment.gcp is not None:
        in_that_zone = not (deployment.target == "gcp" and deployment.scaling.is_fleet)
        errors, more = gcp_zone_gpu_problems(gcp.zone, deployment.gcp.accelerator_type, in_that_zone)
        if errors:
            raise ConfigError("\n".join(errors))
        warnings = warnings + more
    return replace(deployment, warnings=deployment.warnings + tuple(warnings)) if warnings else deployment


def read_stack() -> StackConfig:
    """The whole configuration, validated; every problem found is reported at once as one ConfigError."""
    keys = _all_keys()
    config = pulumi.Config(NAMESPACE)
    target = config.get("target")
    errors = (misplaced_keys(keys, pulumi.get_project()) + secret_setting_problems(NAMESPACE, target)
              + other_cloud_keys(keys, target))
    gcp = _gcp_location(errors) if target in ("gcp", "gke") else None
    region_errors, warnings = aws_region_problems(pulumi.Config("aws").get("region")) if target in ("aws", "eks") \
        else ([], [])
    deployment = load_deployment(raw_config_from(config.get, _namespace_keys(keys)), errors + region_errors)
    return StackConfig(_located(deployment, gcp, warnings), _secrets(config), gcp)


def _secrets(config: pulumi.Config) -> Secrets:
    return Secrets(api_key=config.get_secret("apiKey"), hf_token=config.get_secret("hfToken"),
                   kubeconfig=config.get_secret("kubeconfig"),
                   prometheus_basic_auth=config.get_secret("prometheusBasicAuth"),
                   prometheus_bearer_token=config.get_secret("prometheusBearerToken"))


def stored_secret(name: pulumi.Input[str], version: pulumi.Input[str | int]) -> pulumi.Output[StoredSecret]:
    """A secret the stack wrote to the cloud's store, at the version the store gave that value (SSM counts up,
    Secret Manager numbers each new version): what a VM's cloud-init names so the VM reads exactly it."""
    return pulumi.Output.all(name, version).apply(lambda values: StoredSecret(values[0], str(values[1])))
