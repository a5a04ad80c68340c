"""Stand-ins for the cloud CLIs `pixtralctl timeline` drives from a user's machine, answering for the rehearsal
machine in $PIXTRAL_REHEARSAL_DIR: `aws ssm send-command` / `get-command-invocation` (SSM Run Command's
AWS-RunShellScript) and `gcloud compute ssh NAME --command CMD` (SSH through IAP) run the command inside the
machine as the real services would on the VM.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.rehearsal.machine import Machine  # noqa: E402


def _machine() -> Machine:
    return Machine(Path(os.environ["PIXTRAL_REHEARSAL_DIR"]))


def aws(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="aws")
    parser.add_argument("service", choices=["ssm"])
    parser.add_argument("operation", choices=["send-command", "get-command-invocation"])
    for flag in ("--region", "--instance-ids", "--instance-id", "--document-name", "--comment", "--parameters",
                 "--output", "--command-id"):
        parser.add_argument(flag)
    args = parser.parse_args(argv)
    results = _machine().dir / "ssm-commands"
    if args.operation == "send-command":
        assert args.document_name == "AWS-RunShellScript", args.document_name
        command_id = str(uuid.uuid4())
        done = _machine().run("bash", "-c", "\n".join(json.loads(args.parameters)["commands"]))
        results.mkdir(exist_ok=True)
        (results / f"{command_id}.json").write_text(json.dumps({
            "Status": "Success" if done.returncode == 0 else "Failed", "StandardOutputContent": done.stdout,
            "StandardErrorContent": done.stderr}))
        print(json.dumps({"Command": {"CommandId": command_id, "Status": "Pending"}}))
        return 0
    print((results / f"{args.command_id}.json").read_text())
    return 0


def gcloud(argv: list[str]) -> int:
    if argv[:2] != ["compute", "ssh"]:
        print("gcloud stand-in: only `compute ssh` is served", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="gcloud compute ssh")
    parser.add_argument("instance")
    parser.add_argument("--command", required=True)
    parser.add_argument("--tunnel-through-iap", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--zone")
    parser.add_argument("--project")
    args = parser.parse_args(argv[2:])
    done = _machine().run("bash", "-c", args.command)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


if __name__ == "__main__":
    # argv: the wrapper's own path (aws or gcloud), then the command line.
    tool = Path(sys.argv[1]).name
    sys.exit(aws(sys.argv[2:]) if tool == "aws" else gcloud(sys.argv[2:]))
