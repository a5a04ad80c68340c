"""A kubeconfig for a cluster the program created, authenticating through the cloud CLI's exec plugin."""

from __future__ import annotations

import json


def exec_kubeconfig(cluster_name: str, server: str, ca_data: str, exec_spec: dict) -> str:
    """What `aws eks update-kubeconfig` / `gcloud container clusters get-credentials` write, as JSON."""
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
        "current-context": cluster_name,
        "users": [{"name": cluster_name, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", **exec_spec}}}],
    })
