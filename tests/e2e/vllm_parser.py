"""vLLM's own command-line parser, asked what it makes of arguments; run with the e2e venv's Python.

The parser is built the way `python -m vllm.entrypoints.openai.api_server` builds it (the module every target
starts): `make_arg_parser(FlexibleArgumentParser(...))`. Two commands, JSON on stdout:

  describe   every option string of the parser, and for each the option strings of its action (aliases)
  resolve    stdin {"base": [...], "cases": [[...], ...]}: for each case, parse base + case and report the
             destinations the case's arguments were read as (beyond what base alone is read as) and the error,
             if the parse failed (and, so one start of vLLM's import serves both, what describe says)
  read       stdin {"lines": {NAME: [...]}, "fields": [...]}: each whole command line parsed and checked as the
             server checks it (`validate_parsed_serve_args`), and the named fields of what it was read as

`resolve` records what argparse resolves each argument string to (its `_parse_optional`), so a form counts as
"read as --port" even when its value would then fail --port's type check: the parser has taken it as --port.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections import Counter

from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
from vllm.utils.argparse_utils import FlexibleArgumentParser


def _parser() -> FlexibleArgumentParser:
    return make_arg_parser(FlexibleArgumentParser(description="vLLM OpenAI-Compatible RESTful API server."))


def describe() -> dict:
    parser = _parser()
    actions = parser._option_string_actions
    return {
        "options": sorted(actions),
        "aliases": {option: list(action.option_strings) for option, action in sorted(actions.items())},
        "dests": {option: action.dest for option, action in sorted(actions.items())},
    }


def _single_dash_abbreviation_splits_at_equals() -> bool:
    """Since CPython gh-124345, argparse reads `-t=8` as `-tp 8` when `-t` abbreviates `-tp`; before, it did not."""
    toy = argparse.ArgumentParser()
    toy.add_argument("-tp")
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            return toy.parse_args(["-t=8"]).tp == "8"
        except SystemExit:
            return False


class _Recorder:
    """Wraps a parser's `_parse_optional` to list the destination of every argument string it resolves."""

    def __init__(self, parser: argparse.ArgumentParser):
        self.dests: list[str] = []
        original = parser._parse_optional

        def recording(arg_string):
            found = original(arg_string)
            # Older Pythons return one (action, option, arg) tuple; newer ones a list of 4-tuples.
            tuples = found if isinstance(found, list) else [found] if found else []
            if len(tuples) == 1 and tuples[0][0] is not None:
                self.dests.append(tuples[0][0].dest)
            return found

        parser._parse_optional = recording


def _parse(parser: FlexibleArgumentParser, recorder: _Recorder, args: list[str]) -> tuple[Counter, str | None]:
    recorder.dests.clear()
    stderr = io.StringIO()
    error = None
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(list(args))
        except SystemExit:
            error = stderr.getvalue().strip().splitlines()[-1] if stderr.getvalue().strip() else "exit"
        except Exception as exc:  # FlexibleArgumentParser's own rewriting can fail (a dotted flag with no value)
            error = f"{type(exc).__name__}: {exc}"
    return Counter(recorder.dests), error


def resolve(request: dict) -> dict:
    parser = _parser()
    recorder = _Recorder(parser)
    base, base_error = _parse(parser, recorder, request["base"])
    if base_error:
        raise SystemExit(f"the base arguments do not parse: {base_error}")
    results = []
    for case in request["cases"]:
        dests, error = _parse(parser, recorder, request["base"] + case)
        results.append({"dests": sorted((dests - base).elements()), "error": error})
    return {
        **describe(),
        "results": results,
        "single_dash_abbreviation_splits_at_equals": _single_dash_abbreviation_splits_at_equals(),
    }


def read(request: dict) -> dict:
    parsed = {}
    for name, argv in request["lines"].items():
        args = _parser().parse_args(argv)
        validate_parsed_serve_args(args)
        parsed[name] = {field: getattr(args, field) for field in request["fields"]}
    return parsed


def main() -> None:
    command = sys.argv[1]
    if command == "describe":
        out = describe()
    elif command == "resolve":
        out = resolve(json.load(sys.stdin))
    elif command == "read":
        out = read(json.load(sys.stdin))
    else:
        raise SystemExit(f"unknown command {command!r}: describe, resolve or read")
    # vLLM may log to stdout while importing: the answer is the last line.
    print()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
