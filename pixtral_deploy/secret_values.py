"""Checks of the secret settings (`pixtral:apiKey`, `pixtral:hfToken`, KEDA's Prometheus credentials, a plain
`pixtral:kubeconfig`) before any resource is declared.

The values travel as Pulumi secrets, so these checks read the raw configuration once, and every message names the
key and the rule broken but never the value. Two things are refused:
- a value set as plain configuration (it would sit readable in the stack file and in the state);
- a value systemd or HTTP would change or misread: on the VMs the key and the token pass through environment files
  that systemd parses (a newline there starts a new variable in units that run as root), and the key is compared
  byte for byte with the Bearer header clients send. Printable ASCII without spaces, at least 16 characters, is
  what every one of those carries unchanged;
- a value longer than the target's secret store holds (the cloud would refuse it at `pulumi up`).
"""

from __future__ import annotations

import re

from pulumi.runtime import config as runtime_config

from . import targets
from .keys import NAMESPACE

SECRET_KEYS = ("apiKey", "hfToken")
# KEDA's Prometheus credentials: always secrets, checked by their own rules.
PROMETHEUS_SECRET_KEYS = ("prometheusBasicAuth", "prometheusBearerToken")
MIN_LENGTH = 16
# Printable ASCII without the space: "!" (0x21) to "~" (0x7e).
ALLOWED_RULE = f"at least {MIN_LENGTH} characters, printable ASCII without spaces (letters, digits, punctuation)"
# What a kubeconfig's user entry carries that signs in by itself: a token, a client key, a password, an auth
# provider's tokens or client secret. A kubeconfig without them (an exec plugin, a client-key *file* path) may
# stay plain configuration.
_KUBECONFIG_CREDENTIALS = re.compile(
    r"""["']?\b(token|client-key-data|password|id-token|refresh-token|access-token|client-secret)["']?\s*:""")


def value_problem(value: str) -> str | None:
    """What is wrong with a secret value, in words that do not repeat it; None when it is acceptable."""
    if not value:
        return "is empty"
    if len(value) < MIN_LENGTH:
        return f"is {len(value)} characters long"
    kinds = [kind for kind, found in (
        ("a space", " " in value),
        ("a control character such as a newline or tab", any(c < " " or c == "\x7f" for c in value)),
        ("a character outside ASCII", any(c > "\x7f" for c in value)),
    ) if found]
    if kinds:
        # The kinds of character only: naming them (or their positions) would give part of the secret away.
        return f"contains {' and '.join(kinds)}"
    return None


def prometheus_credentials_problem(key: str, value: str) -> str | None:
    """KEDA sends these in an HTTP header: printable ASCII, and basic authentication as USER:PASSWORD."""
    if not value or any(c < " " or c > "~" for c in value):
        return "is empty or holds a character outside printable ASCII; expected printable ASCII"
    if key == "prometheusBasicAuth":
        user, colon, _ = value.partition(":")
        if not colon or not user:
            return "is not USER:PASSWORD; expected a user name, a colon, then the password"
    elif " " in value:
        return "contains a space; expected a token without spaces"
    return None


def kubeconfig_holds_credentials(value: str) -> bool:
    return bool(_KUBECONFIG_CREDENTIALS.search(value))


def _plain(full_key: str) -> str:
    return (f"{full_key} is set as plain configuration, readable in the stack file and the state; set it as a "
            f"secret instead: pulumi config set --secret {full_key} VALUE")


def secret_setting_problems(namespace: str = NAMESPACE, target: str | None = None) -> list[str]:
    """What is wrong with a plain or malformed secret setting: messages that name the key, never the value."""
    problems = []
    # Where the target keeps the key and the token, and how much that store holds (pixtral_deploy/targets).
    chosen = targets.find(target)
    store = chosen.secret_store if chosen is not None else None
    for key in (*SECRET_KEYS, *PROMETHEUS_SECRET_KEYS, "kubeconfig"):
        full_key = f"{namespace}:{key}"
        value = runtime_config.get_config(full_key)
        if value is None:
            continue
        secret = runtime_config.is_config_secret(full_key)
        if key == "kubeconfig":
            if not secret and kubeconfig_holds_credentials(value):
                problems.append(_plain(full_key).replace("readable", "and it holds a token, key or password, "
                                                         "readable", 1))
            continue
        if not secret:
            problems.append(_plain(full_key))
        elif key in PROMETHEUS_SECRET_KEYS:
            if problem := prometheus_credentials_problem(key, value):
                problems.append(f"{full_key} {problem} (value not shown)")
        elif problem := value_problem(value):
            problems.append(f"{full_key} {problem} (value not shown); expected {ALLOWED_RULE}")
        elif store is not None and len(value) > store.limit_bytes:
            limit, why = store.limit_bytes, store.why
            problems.append(f"{full_key} is {len(value)} characters long (value not shown); expected at most {limit} "
                            f"on target {target}: {why}")
    return problems
