"""Command line of pixtralctl: one subcommand per module, each with its own --help.

Commands raise instead of choosing an exit code: `main` is the one place that turns what they raise into the
message a user reads and the code a script checks (pixtralctl.status_codes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import bench, render, smoke, status, status_codes, timeline, wait
from .errors import Failure, UsageError

SUBCOMMANDS = (wait, smoke, bench, render, timeline, status)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="pixtralctl",
        description="Check, measure and review a pixtral-deploy deployment. Each command reads the stack's outputs "
                    "(pulumi stack output) unless --endpoint and --api-key (or PIXTRAL_ENDPOINT / PIXTRAL_API_KEY) "
                    "are given.",
        epilog=status_codes.epilog(status_codes.GENERAL_MEANINGS) + "\n(each command's --help says what they "
                                                                    "mean for it)",
        formatter_class=status_codes.HelpFormatter)
    subparsers = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.handler(args)
    except Failure as failure:
        # A failed check is the command's result: on stdout, as JSON where the command was asked for JSON.
        if failure.report is not None:
            print(json.dumps({**failure.report, "ok": False, "error": str(failure)}, indent=2))
        else:
            print(f"FAIL: {failure}")
        return status_codes.CHECK_FAILED
    except UsageError as error:
        print(f"pixtralctl {args.command}: {error}", file=sys.stderr)
        return status_codes.USAGE_ERROR
    except KeyboardInterrupt:
        print(f"pixtralctl {args.command}: interrupted", file=sys.stderr)
        return status_codes.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`pixtralctl render ... | head`): what it wanted it has; stop without a traceback.
        # Python would report the pipe again when it flushes stdout at exit, so stdout now goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return status_codes.SUCCESS
    return status_codes.SUCCESS


if __name__ == "__main__":
    sys.exit(main())
