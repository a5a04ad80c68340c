"""`python -m tests.rehearsal boot --stack STACK [--set pixtral:KEY=VALUE ...] DIR | reboot DIR | replace DIR |
stop DIR | discard DIR | durations DIR`.

`boot`, `reboot` and `replace` print one JSON line once the server answers:
{"endpoint": URL, "ca_certificate": PATH or null, "api_key": KEY, "timeline": PATH}; a machine that does not come
up exits 1 with the failed unit's journal and any stand-in's traceback (and is left running for a look: `stop DIR`
ends it). `discard` removes a stopped machine's disks and artefact store, keeping its logs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .machine import Machine, RehearsalError
from .program import declare


def _setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.startswith("pixtral:"):
        raise argparse.ArgumentTypeError(f"--set {text!r}: expected pixtral:KEY=VALUE")
    return key, value


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.rehearsal", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    boot = commands.add_parser("boot", help="boot a machine with the stack's user data and wait until it serves")
    boot.add_argument("--stack", required=True)
    boot.add_argument("--set", dest="settings", type=_setting, action="append", default=[], metavar="KEY=VALUE")
    boot.add_argument("dir", type=Path)
    for name, text in (("reboot", "reboot the machine and wait until it serves again"),
                       ("replace", "boot a new machine of the stack on a blank disk in its place (a scale-out "
                                   "or a replacement) and wait until it serves"),
                       ("stop", "stop the machine and every stand-in"),
                       ("discard", "remove a stopped machine's disks and artefact store, keeping its logs"),
                       ("durations", "print the first boot's phase durations in seconds (JSON)")):
        commands.add_parser(name, help=text).add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    machine = Machine(args.dir)
    try:
        if args.command == "boot":
            machine.create(declare(args.stack, dict(args.settings)))
            machine.wait_ready()
        elif args.command == "reboot":
            machine.reboot()
            machine.wait_ready()
        elif args.command == "replace":
            machine.replace()
            machine.wait_ready()
        elif args.command == "durations":
            print(json.dumps({k: round(v, 1) for k, v in machine.phase_durations().items()}))
            return 0
        elif args.command == "discard":
            machine.discard()
            return 0
        else:
            machine.stop()
            return 0
    except RehearsalError as error:
        print(error, file=sys.stderr)
        if args.command in ("boot", "reboot", "replace") and machine.edge.is_dir():
            print(machine.stand_in_errors(), file=sys.stderr)
        return 1
    print(json.dumps(machine.summary()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
