"""pixtralctl's exit codes, in one place, as pip keeps its own (pip._internal.cli.status_codes).

Commands never pick a code: they return normally or raise an exception from pixtralctl.errors, and
pixtralctl.__main__.main maps it to one of these. Each command's --help lists what they mean for it.
"""

from __future__ import annotations

import argparse
import textwrap

SUCCESS = 0
# The deployment was asked and failed the check: no answer in time, a refused key, a wrong answer, a config the
# program refuses. Scripts can tell "the deployment is wrong" (1) from "the command was called wrong" (2).
CHECK_FAILED = 1
# The command could not run as asked: argparse's own code for bad flags, used for every such case.
USAGE_ERROR = 2
# The shell's code for a command stopped by Ctrl-C (128 + SIGINT).
INTERRUPTED = 130

# What each code means for every command; a command's own list says it more precisely for 0, 1 and 2.
GENERAL_MEANINGS: dict[int, str] = {
    SUCCESS: "success",
    CHECK_FAILED: "the deployment failed the check (the message says which)",
    USAGE_ERROR: "the command could not run: bad flags, or no deployment named (no --endpoint/--api-key and no "
                 "Pulumi stack outputs to read)",
    INTERRUPTED: "interrupted (Ctrl-C)",
}


def meanings(specific: dict[int, str]) -> dict[int, str]:
    """Every code a command can exit with and what it means for it: its own list, then the interrupt."""
    return {**specific, INTERRUPTED: GENERAL_MEANINGS[INTERRUPTED]}


EPILOG_HEADING = "exit codes:"


def epilog(codes: dict[int, str]) -> str:
    """The "exit codes" block of a --help text: one code a line, its meaning wrapped beside it."""
    return EPILOG_HEADING + "\n" + "\n".join(
        textwrap.fill(meaning, width=79, initial_indent=f"  {code:<4} ", subsequent_indent=" " * 7)
        for code, meaning in codes.items())


class HelpFormatter(argparse.HelpFormatter):
    """argparse's own wrapping for descriptions; the exit codes block keeps its one-code-a-line layout."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(EPILOG_HEADING):
            return text
        return super()._fill_text(text, width, indent)
