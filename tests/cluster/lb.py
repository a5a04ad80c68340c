"""The one stand-in of the cluster tier: the cloud's load-balancer controller. On EKS or GKE the cloud gives a
`LoadBalancer` Service an address; here this loop does, a loopback one (127.0.0.N: nothing listens there, and
nothing else is ever a destination). It only writes the Service's status, as a cloud controller does.

Run by tests/cluster/plane.py: python -m tests.cluster.lb KUBECONFIG
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from tests.cluster.kube import Credentials, Kube

FIRST_HOST = 10


def address(index: int) -> str:
    return f"127.0.0.{FIRST_HOST + index % 200}"


def serve(kube: Kube, stop: threading.Event) -> None:
    services = kube.resource("v1", "Service")
    given: dict[str, str] = {}

    def on_event(kind: str, service: dict) -> None:
        if kind == "DELETED" or service["spec"].get("type") != "LoadBalancer":
            return
        if service.get("status", {}).get("loadBalancer", {}).get("ingress"):
            return
        key = f"{service['metadata']['namespace']}/{service['metadata']['name']}"
        ip = given.setdefault(key, address(len(given)))
        kube.patch_status(services, service["metadata"]["namespace"], service["metadata"]["name"],
                          {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}})

    kube.watch(services, None, on_event, stop)


def main(kubeconfig: str) -> None:
    config = json.loads(Path(kubeconfig).read_text())
    user = config["users"][0]["user"]
    cluster = config["clusters"][0]["cluster"]
    kube = Kube(Credentials(cluster["server"], cluster["certificate-authority"], user["client-certificate"],
                            user["client-key"]))
    serve(kube, threading.Event())


if __name__ == "__main__":
    main(sys.argv[1])
