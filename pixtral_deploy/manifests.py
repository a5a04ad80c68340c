"""Kubernetes objects the program declared (from a mock run), as the plain manifests a cluster would receive."""

from __future__ import annotations

from typing import Any

REDACTED = "<redacted: Pulumi secret>"
NOT_MANIFESTS = ("kubernetes:helm.sh/v3:Release",)


def manifests(resources: list[dict[str, Any]], redact_secrets: bool = True) -> list[dict[str, Any]]:
    """Every `kubernetes:*` resource as {apiVersion, kind, metadata, ...}; Secret values redacted by default."""
    documents = []
    for resource in resources:
        # A Helm release is the chart's many objects, rendered by the provider at `pulumi up`: not one manifest.
        if not resource["type"].startswith("kubernetes:") or resource["type"] in NOT_MANIFESTS:
            continue
        inputs = dict(resource["inputs"])
        metadata = dict(inputs.pop("metadata", {}))
        if "name" not in metadata:
            # Declared without a name: the provider generates one (the resource name and a random suffix).
            metadata["name"] = resource["outputs"].get("metadata", {}).get("name")
        manifest = {"apiVersion": inputs.pop("apiVersion"), "kind": inputs.pop("kind"), "metadata": metadata, **inputs}
        if manifest["kind"] == "Secret" and redact_secrets:
            for field in ("stringData", "data"):
                if field in manifest:
                    manifest[field] = {key: REDACTED for key in manifest[field]}
        documents.append(manifest)
    return documents
