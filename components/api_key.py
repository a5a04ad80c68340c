"""The Bearer key every client sends: the one the user configured, or one generated once for the stack."""

from __future__ import annotations

import pulumi
import pulumi_random as random

# Letters and digits only: the key travels through env files and shell without quoting surprises.
GENERATED_KEY_LENGTH = 40


class ApiKey(pulumi.ComponentResource):
    """`value` is a Pulumi secret either way; a generated key stays the same across `pulumi up` runs."""

    value: pulumi.Output[str]

    def __init__(self, name: str, configured: pulumi.Output[str] | None, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pixtral:index:ApiKey", name, None, opts)
        if configured is None:
            generated = random.RandomPassword(
                "api-key", length=GENERATED_KEY_LENGTH, special=False,
                # Stacks made before this component kept the password at the top level: the alias keeps that
                # password (and so every client's key) instead of generating a new one.
                opts=pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)]))
            configured = generated.result
        self.value = pulumi.Output.secret(configured)
        self.register_outputs({})
