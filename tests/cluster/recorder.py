"""What happened in a namespace while `pulumi up` ran, read from the API server's watch streams: every change to the
StatefulSets and to the Service's EndpointSlices, in the order the server made them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from tests.cluster.kube import Kube


@dataclass(frozen=True)
class SetState:
    name: str
    event: str
    replicas: int
    ready: int
    updated: int
    deleting: bool
    template_secrets: tuple[str, ...]


@dataclass
class Recorder:
    kube: Kube
    namespace: str
    service: str
    sets: list[tuple[int, SetState]] = field(default_factory=list)
    # (sequence, ready endpoints of the Service across its slices)
    endpoints: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sequence = 0
        self._slices: dict[str, int] = {}
        self._threads: list[threading.Thread] = []

    def _next(self) -> int:
        self._sequence += 1
        return self._sequence

    def _on_set(self, kind: str, obj: dict) -> None:
        spec, status = obj.get("spec", {}), obj.get("status", {})
        volumes = spec.get("template", {}).get("spec", {}).get("volumes", [])
        containers = spec.get("template", {}).get("spec", {}).get("containers", [])
        secrets = {v["secret"]["secretName"] for v in volumes if "secret" in v}
        secrets |= {e["valueFrom"]["secretKeyRef"]["name"] for c in containers for e in c.get("env", [])
                    if "secretKeyRef" in e.get("valueFrom", {})}
        state = SetState(obj["metadata"]["name"], kind, spec.get("replicas", 0), status.get("readyReplicas", 0),
                         status.get("updatedReplicas", 0),
                         kind == "DELETED" or bool(obj["metadata"].get("deletionTimestamp")), tuple(sorted(secrets)))
        with self._lock:
            self.sets.append((self._next(), state))

    def _on_slice(self, kind: str, obj: dict) -> None:
        if obj["metadata"].get("labels", {}).get("kubernetes.io/service-name") != self.service:
            return
        ready = 0 if kind == "DELETED" else sum(
            1 for endpoint in obj.get("endpoints") or [] if endpoint.get("conditions", {}).get("ready"))
        with self._lock:
            self._slices[obj["metadata"]["name"]] = ready
            self.endpoints.append((self._next(), sum(self._slices.values())))

    def __enter__(self) -> Recorder:
        for resource, handler in ((self.kube.resource("apps/v1", "StatefulSet"), self._on_set),
                                  (self.kube.resource("discovery.k8s.io/v1", "EndpointSlice"), self._on_slice)):
            thread = threading.Thread(target=self.kube.watch, args=(resource, self.namespace, handler, self._stop),
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def first(self, name: str, condition) -> int | None:
        """The sequence number of the first recorded state of set `name` that meets `condition`."""
        return next((seq for seq, state in self.sets if state.name == name and condition(state)), None)

    def set_names(self) -> list[str]:
        return sorted({state.name for _, state in self.sets})

    def ready_endpoints_after(self, sequence: int) -> list[int]:
        return [count for seq, count in self.endpoints if seq >= sequence]
