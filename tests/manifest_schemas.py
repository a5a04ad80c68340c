"""Schema validation for every manifest the program declares: Kubernetes' own kinds through kubernetes-validate,
custom resources (KEDA's ScaledObject and TriggerAuthentication, the KEDA HTTP add-on's InterceptorRoute, GKE's
PodMonitoring) against the openAPIV3Schema of
their published CRDs, vendored in tests/crds/ (each file's first line names its source URL and release).

Strict like kubernetes-validate's strict mode: a field the CRD's schema does not know is an error here. The API
server would silently prune it (structural schemas drop unknown fields), which is how a typo in a trigger would
turn into an autoscaler that never scales.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from pixtral_deploy.spec import KUBERNETES_VERSION

CRD_DIR = Path(__file__).parent / "crds"


def _strict(schema: Any) -> Any:
    """The schema with unknown properties refused wherever it lists the known ones (and does not preserve
    unknown fields on purpose)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if ("properties" in strict and "additionalProperties" not in strict
            and not strict.get("x-kubernetes-preserve-unknown-fields")):
        strict["additionalProperties"] = False
    return strict


@cache
def crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> the strict JSON schema of that custom resource version."""
    schemas = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schemas[(f"{group}/{version['name']}", kind)] = _strict(version["schema"]["openAPIV3Schema"])
    return schemas


def validate(document: dict) -> None:
    """Raise if the manifest does not match its kind's schema (jsonschema.ValidationError for custom resources,
    kubernetes_validate.ValidationError for Kubernetes' own)."""
    schema = crd_schemas().get((document["apiVersion"], document["kind"]))
    if schema is None:
        kubernetes_validate.validate(document, f"{KUBERNETES_VERSION}.0", strict=True)
        return
    # metadata is the API server's ObjectMeta, not part of the CRD's schema (which lists it as a bare object, and
    # the InterceptorRoute's as required).
    body = {key: value for key, value in document.items() if key != "metadata"}
    jsonschema.validate(body, {**schema, "properties": {k: v for k, v in schema["properties"].items()
                                                          if k != "metadata"},
                               "required": [k for k in schema.get("required", []) if k != "metadata"]})
