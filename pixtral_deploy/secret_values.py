"""Checks of the secret settings (`pixtral:apiKey`, `pixtral:hfToken`) before any resource is declared.

The values travel as Pulumi secrets, so these checks read the raw configuration once, and every message names the
key and the rule broken but never the value. Two things are refused:
- a value set as plain configuration (it would sit readable in the stack file and in the state);
- a value systemd or HTTP would change or misread: on the VMs the key and the token pass through environment files
  that systemd parses (a newline there starts a new variable in units that run as root), and the key is compared
  byte for byte with the Bearer header clients send. Printable ASCII without spaces, at least 16 characters, is
  what every one of those carries unchanged.
"""

from __future__ import annotations

from pulumi.runtime import config as runtime_config

from .keys import NAMESPACE

SECRET_KEYS = ("apiKey", "hfToken")
MIN_LENGTH = 16
# Printable ASCII without the space: "!" (0x21) to "~" (0x7e).
ALLOWED_RULE = f"at least {MIN_LENGTH} characters, printable ASCII without spaces (letters, digits, punctuation)"


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


def secret_setting_problems(namespace: str = NAMESPACE) -> list[str]:
    """What is wrong with a plain or malformed `apiKey` / `hfToken`: messages that name the key, never the value."""
    problems = []
    for key in SECRET_KEYS:
        full_key = f"{namespace}:{key}"
        value = runtime_config.get_config(full_key)
        if value is None:
            continue
        if not runtime_config.is_config_secret(full_key):
            problems.append(f"{full_key} is set as plain configuration, readable in the stack file and the state; "
                            f"set it as a secret instead: pulumi config set --secret {full_key} VALUE")
        elif problem := value_problem(value):
            problems.append(f"{full_key} {problem} (value not shown); expected {ALLOWED_RULE}")
    return problems
