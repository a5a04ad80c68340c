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
    """A value a parser does not take; the argument says what is allowed. `shown_as` replaces the value in the
    message when the value itself must not be printed (a URL carrying a password)."""

    def __init__(self, allowed: str, shown_as: str | None = None):
        super().__init__(allowed)
        self.shown_as = shown_as


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


# Numbers as a person types them, in ASCII: Python's int() and float() also take "1_0", " 5 ", Arabic-Indic or
# superscript digits ("٢"; "²" passes str.isdigit()), which no stack file means. One rule for every numeric setting
# and every number inside a JSON value. Forty characters is far more than any bound here needs, and keeps int() well
# below its 4300-digit limit.
_WHOLE_TEXT = re.compile(r"[+-]?[0-9]{1,40}")
_DECIMAL_TEXT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,4})?")
_MAX_NUMBER_CHARACTERS = 40


def whole_number(value: Any) -> int | None:
    """`value` as a whole number: ASCII digits, or a JSON integer (or integral JSON float); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str) and _WHOLE_TEXT.fullmatch(value):
        return int(value)
    return None


def finite_number(value: Any) -> float | None:
    """`value` as a finite number: an ASCII decimal, or a JSON number that fits a float; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if len(value) > _MAX_NUMBER_CHARACTERS or not _DECIMAL_TEXT.fullmatch(value):
            return None
        number = float(value)
    elif isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond a float's range, such as 10**400
            return None
    else:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Whole:
    low: int
    high: int
    why: str = ""

    def __call__(self, value: str) -> int:
        number = whole_number(value)
        if number is None or not self.low <= number <= self.high:
            raise Refused(f"a whole number from {self.low} to {self.high}{self.why}")
        return number


def _finite(value: str, allowed: str) -> float:
    number = finite_number(value)
    if number is None:
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
    except (ValueError, RecursionError):
        # ValueError: not JSON, or an integer past Python's 4300-digit limit; RecursionError: nesting too deep.
        raise Refused(example) from None


@dataclass(frozen=True)
class StringList:
    """A list of strings (a YAML list in the stack file, JSON with `pulumi config set --path` or by hand)."""

    item: Callable[[str], str] | None = None
    at_least_one: str = ""
    # False where a later check names control characters itself, with why (vllm_flags.check_extra_args).
    refuse_control_characters: bool = True
    # Lists the cloud takes as a set (rules, candidate types, zones) refuse an item listed twice: the API would
    # refuse the duplicate rule at `pulumi up`, after other resources exist. The function says when two are equal.
    distinct: Callable[[str], Any] | None = None

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
        if self.distinct is not None:
            seen: dict[Any, str] = {}
            for item in items:
                if self.distinct(item) in seen:
                    raise Refused(f"each item once ({shown(item)} repeats {shown(seen[self.distinct(item)])})")
                seen[self.distinct(item)] = item
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


def same_network(value: str) -> Any:
    """What two CIDRs share when they name one network (2001:db8::/32 and 2001:0db8::/32)."""
    return ipaddress.ip_network(value)


def same_text(value: str) -> str:
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
