"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
kwok (fake GPU nodes whose pods turn Ready by kwok's own default stages), all built by .ci/install-cluster.

Everything it starts is recorded in RUN/pids.json so that `stop` (and `python -m tests.cluster down`) ends exactly
those processes. Two things a cloud or a cluster admin would bring are supplied here:
- the cloud's load-balancer controller, the one stand-in: tests/cluster/lb.py gives each LoadBalancer Service a
  loopback address;
- storage, as a bare-metal admin supplies it: local PersistentVolumes pinned to each node, of a default StorageClass
  with no provisioner (kubernetes.io/no-provisioner) that binds a claim when its pod is scheduled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.cluster import pki
from tests.cluster.kube import ApiError, Credentials, Kube, wait_until

BINARIES = ("pulumi", "pulumi-resource-kubernetes", "etcd", "kube-apiserver", "kube-controller-manager",
            "kube-scheduler", "kubectl", "kwok")
# Service addresses are only numbers the API server hands out here: nothing routes to them (no kube-proxy).
SERVICE_CIDR = "10.96.0.0/16"
# kwok's fake pod IPs, likewise never a destination.
POD_CIDR = "10.244.0.0/16"
# Fake GPU nodes: one L40S each, labelled and tainted the way NVIDIA's GPU operator and the clouds do it, in two
# zones so that the spread constraints have somewhere to spread.
GPU_NODES = 4
GPU_PRODUCT = "NVIDIA-L40S"
NODE_CAPACITY = {"cpu": "16", "memory": "128Gi", "pods": "110", "nvidia.com/gpu": "1",
                 "ephemeral-storage": "500Gi"}
STORAGE_CLASS = "local-cache"
VOLUMES_PER_NODE = 6
VOLUME_SIZE = "1Ti"
START_TIMEOUT_S = 120


@dataclass(frozen=True)
class Plane:
    """A running plane's files: the admin kubeconfig and the client credentials behind it."""

    run: Path
    kubeconfig: Path
    credentials: Credentials

    def kube(self) -> Kube:
        return Kube(self.credentials)


def binaries_missing(bin_dir: Path) -> list[str]:
    return [name for name in BINARIES if not os.access(bin_dir / name, os.X_OK)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kubeconfig(path: Path, server: str, ca: Path, pair: pki.KeyPair, user: str) -> Path:
    # JSON is YAML: every kubeconfig reader takes it.
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "pixtral-cluster-tier",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(pair.cert), "client-key": str(pair.key)}}],
        "contexts": [{"name": "pixtral-cluster-tier", "context": {"cluster": "local", "user": user}}],
    }, indent=1))
    path.chmod(0o600)
    return path


class _Processes:
    """Processes started in their own sessions (they outlive `up`), each recorded before the next starts."""

    def __init__(self, run: Path):
        self.record = run / "pids.json"
        self.logs = run / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pids: dict[str, int] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 (the child keeps it)
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env=env)
        self.pids[name] = process.pid
        self.record.write_text(json.dumps(self.pids))
        return process


def stop(run: Path) -> list[str]:
    """End every process recorded in RUN/pids.json (TERM, then KILL after 10 s); the names it stopped."""
    record = run / "pids.json"
    if not record.exists():
        return []
    pids: dict[str, int] = json.loads(record.read_text())
    # Reverse order of start: kwok and the controllers before the API server, etcd last.
    for pid in reversed(pids.values()):
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids.values()):
        time.sleep(0.2)
    for pid in pids.values():
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    record.unlink()
    return list(pids)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _alive(pid: int) -> bool:
    try:
        # A child of this process that exited stays a zombie until reaped: reap it, or it looks alive.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start(dir_: Path) -> Plane:
    """A fresh plane whose state lives in DIR/run (any plane recorded there is stopped first)."""
    bin_dir = dir_ / "bin"
    missing = binaries_missing(bin_dir)
    if missing:
        raise FileNotFoundError(f"missing in {bin_dir}: {', '.join(missing)} (bash .ci/install-cluster {dir_})")
    run = dir_ / "run"
    stop(run)
    for stale in ("etcd", "pki", "logs"):
        subprocess.run(["rm", "-rf", str(run / stale)], check=True)
    run.mkdir(parents=True, exist_ok=True)
    processes = _Processes(run)
    try:
        return _start(bin_dir, run, processes)
    except BaseException:
        stop(run)
        raise


def _start(bin_dir: Path, run: Path, processes: _Processes) -> Plane:
    pki_dir = run / "pki"
    authority = pki.Authority(pki_dir)
    ca = authority.pair.cert
    serving = authority.issue("apiserver", "kube-apiserver", ips=("127.0.0.1",),
                              dns_names=("localhost", "kubernetes", "kubernetes.default",
                                         "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"))
    admin = authority.issue("admin", "pixtral-tier-admin", ("system:masters",))
    service_accounts = pki.service_account_keys(pki_dir)
    etcd_port, etcd_peer_port, api_port = _free_port(), _free_port(), _free_port()
    server = f"https://127.0.0.1:{api_port}"

    processes.start("etcd", [
        str(bin_dir / "etcd"), "--name=tier", f"--data-dir={run / 'etcd'}",
        f"--listen-client-urls=http://127.0.0.1:{etcd_port}", f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
        f"--listen-peer-urls=http://127.0.0.1:{etcd_peer_port}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer_port}",
        f"--initial-cluster=tier=http://127.0.0.1:{etcd_peer_port}",
        "--log-level=warn",
        # Tests make and delete many objects quickly; a smaller WAL fsync cost keeps the disk out of the way.
        "--unsafe-no-fsync"])
    processes.start("kube-apiserver", [
        str(bin_dir / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
        f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}", f"--client-ca-file={ca}",
        f"--service-account-key-file={service_accounts.cert}",
        f"--service-account-signing-key-file={service_accounts.key}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={SERVICE_CIDR}", "--authorization-mode=Node,RBAC",
        "--enable-priority-and-fairness=false", "--profiling=false", "--v=1"])
    credentials = Credentials(server, str(ca), str(admin.cert), str(admin.key))
    kube = Kube(credentials)
    wait_until("the API server's /readyz", lambda: _ready(kube), START_TIMEOUT_S, interval=1)

    for component, user in (("kube-controller-manager", "system:kube-controller-manager"),
                            ("kube-scheduler", "system:kube-scheduler")):
        pair = authority.issue(component, user)
        config = _kubeconfig(run / f"{component}.kubeconfig", server, ca, pair, user)
        # --node-monitor-grace-period: kwok renews the fake nodes' heartbeats, and on a starved 2-core machine it can
        # fall behind the default 50 s; the node controller then marks the node NotReady and every pod on it
        # unready at once, which a rollout check reads as the workload dropping both replicas (seen once in CI
        # under load: readyReplicas 0 during an in-place rollout that a quiet run passes). The tier checks the
        # workload's rollouts, not node failure detection.
        extra = ([f"--service-account-private-key-file={service_accounts.key}", f"--root-ca-file={ca}",
                  "--use-service-account-credentials=true", f"--cluster-cidr={POD_CIDR}",
                  "--node-monitor-grace-period=10m"]
                 if component == "kube-controller-manager" else [])
        processes.start(component, [
            str(bin_dir / component), f"--kubeconfig={config}", f"--authentication-kubeconfig={config}",
            f"--authorization-kubeconfig={config}", "--leader-elect=false", "--bind-address=127.0.0.1",
            f"--secure-port={_free_port()}", "--profiling=false", *extra])
    kubeconfig = _kubeconfig(run / "admin.kubeconfig", server, ca, admin, "admin")
    processes.start("kwok", [
        str(bin_dir / "kwok"), f"--kubeconfig={kubeconfig}", "--manage-all-nodes=true", f"--cidr={POD_CIDR}",
        "--node-ip=127.0.0.1", "--node-port=0", "--server-address="])
    processes.start("load-balancer", [sys.executable, "-m", "tests.cluster.lb", str(kubeconfig)],
                    env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})

    _add_storage(kube)
    _add_gpu_nodes(kube)
    wait_until("the default service account", lambda: kube.get("/api/v1/namespaces/default/serviceaccounts/default"),
               START_TIMEOUT_S)
    wait_until(f"{GPU_NODES} Ready GPU nodes", lambda: len(ready_nodes(kube)) == GPU_NODES, START_TIMEOUT_S)
    return Plane(run, kubeconfig, credentials)


def _ready(kube: Kube) -> bool:
    try:
        return kube.request("GET", "/readyz", timeout=5) is not None
    except (ApiError, OSError):
        return False


def ready_nodes(kube: Kube) -> list[str]:
    nodes = kube.list(kube.resource("v1", "Node"))
    return [node["metadata"]["name"] for node in nodes if any(
        c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))]


def node_name(index: int) -> str:
    return f"gpu-{index}"


def _add_gpu_nodes(kube: Kube) -> None:
    for index in range(GPU_NODES):
        name = node_name(index)
        kube.create({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/zone": f"zone-{index % 2}", "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.product": GPU_PRODUCT, "nvidia.com/gpu.count": "1", "type": "kwok"}},
            "spec": {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]},
            # A new Node may carry its status: kwok keeps it (and heartbeats) from then on.
            "status": {"capacity": NODE_CAPACITY, "allocatable": NODE_CAPACITY,
                       "nodeInfo": {"kubeletVersion": "kwok", "operatingSystem": "linux", "architecture": "amd64"}},
        })


def _add_storage(kube: Kube) -> None:
    kube.create({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Retain",
    })
    for index in range(GPU_NODES):
        for volume in range(VOLUMES_PER_NODE):
            kube.create({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": f"{node_name(index)}-cache-{volume}"},
                "spec": {
                    "capacity": {"storage": VOLUME_SIZE}, "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain", "storageClassName": STORAGE_CLASS,
                    "local": {"path": f"/mnt/disks/cache-{volume}"},
                    "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In", "values": [node_name(index)]}]}]}},
                },
            })


def load(dir_: Path) -> Plane:
    """The plane `start` left running in DIR/run."""
    run = dir_ / "run"
    kubeconfig = run / "admin.kubeconfig"
    if not (run / "pids.json").exists() or not kubeconfig.exists():
        raise FileNotFoundError(f"no plane is running in {run}: python -m tests.cluster up {dir_}")
    config = json.loads(kubeconfig.read_text())
    user = config["users"][0]["user"]
    credentials = Credentials(config["clusters"][0]["cluster"]["server"],
                              config["clusters"][0]["cluster"]["certificate-authority"],
                              user["client-certificate"], user["client-key"])
    return Plane(run, kubeconfig, credentials)
