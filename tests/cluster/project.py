"""A Pulumi project directory for one stack of the program, run by the real CLI against the plane.

The directory holds copies of Pulumi.yaml and the stack's file from stacks/ (so settings a test changes stay
there), the local backend's state and PULUMI_HOME. The CLI and the Kubernetes provider plugin come from DIR/bin on
PATH: the engine finds the plugin there ("ambient") and never downloads one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.cluster.plane import Plane

PROJECT_DIR = Path(__file__).resolve().parents[2]
PASSPHRASE = "cluster-tier-passphrase"
COMMAND_TIMEOUT_S = 600


@dataclass
class Project:
    root: Path
    stack: str
    env: dict[str, str]

    @classmethod
    def create(cls, root: Path, stack: str, plane: Plane, bin_dir: Path) -> Project:
        (root / "stacks").mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_DIR / "Pulumi.yaml", root / "Pulumi.yaml")
        shutil.copy(PROJECT_DIR / "stacks" / f"Pulumi.{stack}.yaml", root / "stacks" / f"Pulumi.{stack}.yaml")
        (root / "state").mkdir(exist_ok=True)
        env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "KUBECONFIG": str(plane.kubeconfig),
            "PULUMI_BACKEND_URL": f"file://{root / 'state'}",
            "PULUMI_HOME": str(root / "home"),
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_SKIP_CONFIRMATIONS": "true",
            "PYTHONPATH": str(PROJECT_DIR),
        }
        project = cls(root, stack, env)
        project.cli("stack", "init", stack)
        return project

    def cli(self, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess:
        """`pulumi ARGS` in the project directory."""
        return self._run(["pulumi", *args], self.root, check, timeout)

    def program(self, *args: str, check: bool = True,
                timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess:
        """`pulumi up|preview ARGS --stack STACK` with the program served (tests/cluster/engine.py)."""
        return self._run(self.program_argv(*args), PROJECT_DIR, check, timeout)

    def program_argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "tests.cluster.engine", str(self.root), *args, "--stack", self.stack]

    def start_program(self, *args: str, log: Path) -> subprocess.Popen:
        """The same, in the background (to be cancelled), its output in `log`."""
        with open(log, "wb") as out:
            return subprocess.Popen(self.program_argv(*args), cwd=PROJECT_DIR, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT)

    def up(self, *args: str) -> subprocess.CompletedProcess:
        return self.program("up", "--yes", "--skip-preview", *args)

    def config(self, key: str, value: str, secret: bool = False) -> None:
        self.cli("config", "set", *(["--secret"] if secret else []), "--stack", self.stack, key, value)

    def config_json(self, key: str, value: object) -> None:
        self.cli("config", "set", "--path", "--stack", self.stack, key, json.dumps(value))

    def outputs(self) -> dict:
        return json.loads(self.cli("stack", "output", "--json", "--show-secrets", "--stack", self.stack).stdout)

    def state_objects(self) -> list[dict]:
        """Every Kubernetes object in the stack's state: {apiVersion, kind, namespace, name}."""
        exported = json.loads(self.cli("stack", "export", "--stack", self.stack).stdout)
        found = []
        for resource in exported["deployment"].get("resources", []):
            if not resource["type"].startswith("kubernetes:") or resource["type"].startswith("pulumi:providers"):
                continue
            outputs = resource.get("outputs", {})
            metadata = outputs.get("metadata", {})
            found.append({"apiVersion": outputs["apiVersion"], "kind": outputs["kind"],
                          "namespace": metadata.get("namespace"), "name": metadata["name"],
                          "uid": metadata.get("uid")})
        return found

    def _run(self, argv: list[str], cwd: Path, check: bool, timeout: float) -> subprocess.CompletedProcess:
        done = subprocess.run(argv, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-6000:]}\n"
                                 f"{done.stderr[-4000:]}")
        return done
