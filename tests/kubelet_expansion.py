"""The kubelet's `$(NAME)` expansion of a container's command, args and env values, as a test stand-in.

Written from the rule in k8s.io/kubernetes third_party/forked/golang/expansion (Expand and tryReadVariableName, the
version that reads whole UTF-8 runes): `$$` is one `$`; `$(NAME)` with a closing parenthesis becomes the variable's
value when the container defines it and stays as written when not; an unclosed `$(` is kept; `$` followed by any
other character is kept with that character; a `$` at the very end is kept.
"""

from __future__ import annotations

from collections.abc import Mapping


def _read_variable(rest: str) -> tuple[str, bool, int]:
    """(what was read, whether it names a variable, characters consumed) for the text after one `$`."""
    if rest[0] == "$":
        return "$", False, 1
    if rest[0] == "(":
        closer = rest.find(")", 1)
        if closer != -1:
            return rest[1:closer], True, closer + 1
        return "$(", False, 1
    return "$" + rest[0], False, 1


def expand(text: str, variables: Mapping[str, str]) -> str:
    """What the container receives for `text`, with `variables` the container's environment."""
    out = []
    checkpoint = cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            read, is_variable, advance = _read_variable(text[cursor + 1:])
            out.append(variables.get(read, f"$({read})") if is_variable else read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]
