"""Command line of pixtralctl: one subcommand per module, each with its own --help."""

from __future__ import annotations

import argparse
import sys

from . import bench, render, smoke, status, timeline, wait
from .target import TargetError

SUBCOMMANDS = (wait, smoke, bench, render, timeline, status)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="pixtralctl",
        description="Check, measure and review a pixtral-deploy deployment. Each command reads the stack's outputs "
                    "(pulumi stack output) unless --endpoint and --api-key (or PIXTRAL_ENDPOINT / PIXTRAL_API_KEY) "
                    "are given.")
    subparsers = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except TargetError as error:
        print(f"pixtralctl {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pixtralctl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
