"""Parsers for setting values as the Pulumi engine hands them to a program (a string; lists and maps as JSON).

Each raises `Refused` with what is allowed; `setting_error` is the one shape of the message a user sees: the key,
the value as the user wrote it, and what is allowed.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


class Refused(ValueError):
    """A value a parser does not take; the argument says what is allowed."""


# A value longer than this is cut in messages (a long extraArgs list would bury what is wrong with it).
SHOWN_CHARACTERS = 200


def shown(value: Any) -> str:
    """A value as the user wrote it: the text itself, quoted only when it would not read as one token."""
    text = value if isinstance(value, str) else json.dumps(value)
    if len(text) > SHOWN_CHARACTERS:
        return repr(text[:SHOWN_CHARACTERS]) + f"... ({len(text)} characters)"
    return text if text and re.fullmatch(r"[^\s'\"]+", text) else repr(text)


def _no_control_characters(text: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise Refused("text without control characters (newlines, tabs)")
    return text


@dataclass(frozen=True)
class Text:
    """A string, optionally matching a whole pattern."""

    pattern: str | None = None
    allowed: str = "text"

    def __call__(self, value: str) -> str:
        _no_control_characters(value)
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise Refused(self.allowed)
        return value


@dataclass(frozen=True)
class Choice:
    options: tuple[str, ...]
    allowed: str = ""

    def __call__(self, value: str) -> str:
        if value not in self.options:
            raise Refused(self.allowed or f"one of {', '.join(self.options)}")
        return value


@dataclass(frozen=True)
class Whole:
    low: int
    high: int
    why: str = ""

    def __call__(self, value: str) -> int:
        allowed = f"a whole number from {self.low} to {self.high}{self.why}"
        try:
            number = int(value)
        except ValueError:
            raise Refused(allowed) from None
        if not self.low <= number <= self.high:
            raise Refused(allowed)
        return number


def _finite(value: str, allowed: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise Refused(allowed) from None
    if not math.isfinite(number):
        raise Refused(allowed)
    return number


@dataclass(frozen=True)
class Fraction:
    """A finite number in (0, 1]."""

    def __call__(self, value: str) -> float:
        number = _finite(value, "a number in (0, 1]")
        if not 0 < number <= 1:
            raise Refused("a number in (0, 1]")
        return number


@dataclass(frozen=True)
class Number:
    """A finite number of at least `low` (nan and inf are refused: they would crash the sizing)."""

    low: float

    def __call__(self, value: str) -> float:
        allowed = f"a finite number of at least {self.low:g}"
        number = _finite(value, allowed)
        if number < self.low:
            raise Refused(allowed)
        return number


@dataclass(frozen=True)
class Boolean:
    def __call__(self, value: str) -> bool:
        if value.lower() not in ("true", "false"):
            raise Refused("true or false")
        return value.lower() == "true"


def json_value(value: Any, example: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise Refused(example) from None


@dataclass(frozen=True)
class StringList:
    """A list of strings (a YAML list in the stack file, JSON with `pulumi config set --path` or by hand)."""

    item: Callable[[str], str] | None = None
    at_least_one: str = ""
    # False where a later check names control characters itself, with why (vllm_flags.check_extra_args).
    refuse_control_characters: bool = True

    def __call__(self, value: Any) -> tuple[str, ...]:
        items = json_value(value, 'a list of strings, e.g. ["a", "b"]')
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise Refused("a list of strings")
        if self.at_least_one and not items:
            raise Refused(self.at_least_one)
        for item in items:
            try:
                if self.refuse_control_characters:
                    _no_control_characters(item)
                if self.item is not None:
                    self.item(item)
            except Refused as refused:
                raise Refused(f"{refused} (not {shown(item)})") from None
        return tuple(items)


@dataclass(frozen=True)
class StringMap:
    example: str

    def __call__(self, value: Any) -> tuple[tuple[str, str], ...]:
        items = json_value(value, f"a map of strings, e.g. {self.example}")
        if not isinstance(items, dict) or not all(isinstance(v, str) for v in items.values()):
            raise Refused("a map of label names to string values")
        return tuple(sorted(items.items()))


def cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as error:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise Refused(f"CIDRs such as 203.0.113.0/24 or 2001:db8::/32 ({error})") from None
        # An address with a prefix (10.1.2.3/8): say which network that is, not only that bits are set.
        address = ipaddress.ip_interface(value).ip
        raise Refused(f"network addresses: {value} has bits set after its /{network.prefixlen} prefix, so write "
                      f"{network} (or {address}/{network.max_prefixlen} for that one address)") from None
    return value


def setting_error(key: str, value: Any, allowed: str) -> ConfigError:
    """The one shape of a refused setting: the key, the value as written, and what is allowed."""
    return ConfigError(f"pixtral:{key}: {shown(value)} is not allowed; expected {allowed}")


def ipv4_cidr(value: str) -> str:
    """EKS public-access CIDRs and GKE master authorized networks take IPv4 only."""
    cidr(value)
    if ipaddress.ip_network(value).version != 4:
        raise Refused("IPv4 CIDRs such as 203.0.113.0/24 (EKS and GKE take no IPv6 here)")
    return value
