"""The one error type users see for bad configuration."""


class ConfigError(ValueError):
    """A setting is wrong; the message names the key, the value and what is allowed."""
