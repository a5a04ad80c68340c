"""Where a stack can run: one class per target, behind one interface, in one registry (as SkyPilot keeps one class
per cloud in `sky/clouds/`).

A target says what settings it takes (through its traits, which the keys' scopes read), where a replica's GPUs come
from, the rules that join settings only it has, its secret store, its cloud's location checks, the components it
declares and the module `pixtralctl status` lists its replicas with. Nothing outside a target's module compares
`pixtral:target` with a name.

The program's own targets live in this package (aws.py: `aws`, `eks`; gcp.py: `gcp`, `gke`; kubernetes.py:
`kubernetes`). Another package adds one with an entry point in the group `pixtral_deploy.targets` naming a module
that calls `register` when imported: the keys, the program, `pixtralctl render` and `pixtralctl status` then accept
it with no edit here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..keys import Settings

# The program's own targets, in the order help and the README list them.
BUILT_IN_MODULES = ("pixtral_deploy.targets.aws", "pixtral_deploy.targets.gcp", "pixtral_deploy.targets.kubernetes")
ENTRY_POINT_GROUP = "pixtral_deploy.targets"
# What a replica runs on: a VM that boots the program's cloud-init, or a pod.
PLATFORMS = ("vm", "kubernetes")


@dataclass(frozen=True)
class Hardware:
    """The GPUs one machine (or replica) gets, and the config key that chose them, for messages."""

    where: str
    gpu_name: str
    gpu_count: int
    gpu_memory_gb: float
    # The catalogue's cloud (catalog.MachineType.cloud) whose types the sizing may suggest instead.
    cloud: str


@dataclass(frozen=True)
class SecretStore:
    """Where a target keeps the API key and the Hugging Face token, and the largest value it holds."""

    limit_bytes: int
    why: str


class Target:
    """One place a stack runs. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]
    # One phrase for help and errors: "one VM or a fleet on AWS".
    summary: ClassVar[str]
    platform: ClassVar[str]
    # The provider namespaces (`aws:`, `gcp:`) the program reads for this target; others are refused.
    provider_namespaces: ClassVar[tuple[str, ...]] = ()
    # The program creates the GPU machines (disk size, spot and GPU count apply to them).
    creates_machines: ClassVar[bool] = False
    # Where the stack's artefact store (pixtral:warmStarts) comes from: "own", a bucket the program makes in the
    # target's cloud account; "user", a bucket the user names (pixtral:artefactStore), on a cluster that comes with no
    # cloud account; None, no store.
    artefact_store: ClassVar[str | None] = None
    # The program sets up the metrics the autoscaler reads (GKE's managed Prometheus), so no Prometheus URL is taken.
    managed_metrics: ClassVar[bool] = False
    secret_store: ClassVar[SecretStore]
    # At most this many CIDRs per IP version in pixtral:allowedCidrs, and the quota that sets it; None: no limit.
    cidr_limit: ClassVar[tuple[int, str] | None] = None
    # The pixtralctl module whose `replicas(outputs)` lists this target's replicas (and, for a fleet, whose
    # `fleet_size(outputs)` reads its minimum and wanted size: pixtralctl/wake.py).
    status_module: ClassVar[str]
    # Pod targets on a cluster the program makes: the command that gives kubectl its credentials ({cluster}).
    kubeconfig_command: ClassVar[str | None] = None
    # Where help and the README list it among the others (a plugin's comes after the program's own).
    listed: ClassVar[int] = 100
    # Why this target cannot keep a fleet at zero replicas and wake it on the first request (autoscale.minReplicas
    # 0, docs/scaling.md "Scale to zero"); None where it can.
    cannot_scale_to_zero: ClassVar[str | None] = "the target has no way to wake a fleet at zero on the first request"
    # Where it can: about how long from the first request to an idle fleet until a replica is starting (the
    # platform's metric delay); the cold or warm start comes on top (coldstart.wake_from_zero).
    wake_detection_seconds: ClassVar[int | None] = None

    def cloud_settings(self, settings: Settings) -> dict[str, Any]:
        """The spec's fields this target's cloud fills (`aws=AwsMachines(...)`), from the parsed settings."""
        return {}

    def workload_fields(self, settings: Settings, node: Hardware | None) -> dict[str, Any]:
        """The spec's fields the pods' platform fills (`kubernetes=KubernetesSettings(...)`); none on VMs."""
        return {}

    def warm_starts(self, settings: Settings) -> bool:
        """Whether the stack keeps an artefact store: pixtral:warmStarts (on by default) where the program makes
        one."""
        return self.artefact_store == "own" and settings["warmStarts"]

    def hardware(self, settings: Settings, spec_fields: dict[str, Any]) -> tuple[list[Hardware], Hardware | None]:
        """The GPUs one replica gets on each candidate type, and those of one node the program creates (EKS, GKE)."""
        raise NotImplementedError

    def candidate_types(self, spec: Any) -> tuple[str, ...]:
        """The catalogue's machine types a replica may run on, in order of preference: what the cold-start estimate
        reads. None for a target whose machines are not the program's to pick (a pod's node)."""
        return ()

    def check(self, spec: Any) -> None:
        """Rules that join settings only this target has; raise ConfigError naming the key."""

    def warnings(self, spec: Any, settings: Settings) -> list[str]:
        return []

    def location(self, errors: list[str]) -> tuple[Any, list[str]]:
        """The provider settings this target reads (project and zone, region), checked; problems are appended to
        `errors`. Returns what the program needs of them, and warnings."""
        return None, []

    def located(self, spec: Any, location: Any) -> tuple[list[str], list[str]]:
        """(errors, warnings) for the GPU in the location, once both are known."""
        return [], []

    def public_certificate_possible(self, spec: Any) -> bool:
        """Whether a fleet's load balancer can serve a public CA's managed certificate for pixtral:domain."""
        return True

    def deploy(self, stack: Any, api_key: Any, ca: Any) -> dict[str, Any]:
        """Declare the target's resources; returns the stack outputs it adds (`endpoint` at least)."""
        raise NotImplementedError

    # What a LoadBalancer Service's status publishes on this platform: "hostname" (AWS's load balancers) or "ip"
    # (Google's); the mock engine answers the same way.
    load_balancer_publishes: ClassVar[str] = "hostname"


@dataclass(frozen=True)
class Scope:
    """Which targets a setting applies to, by what the targets are: a key names a scope, never a list of names, so a
    new target takes the settings its traits call for."""

    description: str
    applies: Callable[[Target], bool]

    def __call__(self, target: Target) -> bool:
        return self.applies(target)

    def __contains__(self, name: str) -> bool:
        """`"aws" in key.targets`: whether the registered target of that name is in the scope."""
        return name in self.names()

    def names(self, among: tuple[Target, ...] | None = None) -> tuple[str, ...]:
        return tuple(t.name for t in (among if among is not None else all_targets()) if self.applies(t))


_REGISTRY: dict[str, Target] = {}
_loaded = False


def register(target: Target) -> Target:
    """Add a target; a name already taken is a programming error, refused loudly."""
    if target.platform not in PLATFORMS:
        raise ValueError(f"target {target.name}: platform {target.platform!r} is not one of {', '.join(PLATFORMS)}")
    if target.name in _REGISTRY and type(_REGISTRY[target.name]) is not type(target):
        raise ValueError(f"target {target.name} is registered twice ({type(_REGISTRY[target.name]).__name__} and "
                         f"{type(target).__name__})")
    _REGISTRY[target.name] = target
    return target


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def _load() -> None:
    """Import the built-in targets, then every installed plugin's, once (lazily: keys.py needs the registry only
    when a stack is parsed, and the target modules import the catalogue and the parsers)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILT_IN_MODULES:
        importlib.import_module(module)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        entry.load()


def all_targets() -> tuple[Target, ...]:
    _load()
    return tuple(sorted(_REGISTRY.values(), key=lambda t: t.listed))


def built_in_targets() -> tuple[Target, ...]:
    """The program's own targets: what the README's tables describe (a plugin's are documented by its package)."""
    _load()
    return tuple(t for t in all_targets() if type(t).__module__ in BUILT_IN_MODULES)


def names() -> tuple[str, ...]:
    return tuple(t.name for t in all_targets())


def get(name: str) -> Target:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no target {name!r}; known targets: {', '.join(names())}") from None


def find(name: str | None) -> Target | None:
    _load()
    return _REGISTRY.get(name) if name else None


def of_platform(platform: str) -> tuple[str, ...]:
    return tuple(t.name for t in all_targets() if t.platform == platform)


# The scopes the keys use (keys.py), each a trait of the targets.
EVERY_TARGET = Scope("all", lambda t: True)
VMS = Scope("VMs", lambda t: t.platform == "vm")
PODS = Scope("Kubernetes", lambda t: t.platform == "kubernetes")
MACHINES_MADE = Scope("machines the program creates", lambda t: t.creates_machines)
EXISTING_CLUSTER = Scope("an existing cluster", lambda t: t.platform == "kubernetes" and not t.creates_machines)
NEW_CLUSTER_NODES = Scope("clusters the program creates nodes in",
                          lambda t: t.platform == "kubernetes" and t.creates_machines)
WARM_STARTS = Scope("targets that keep an artefact store", lambda t: t.artefact_store is not None)
USERS_STORE = Scope("a store the user names", lambda t: t.artefact_store == "user")
OWN_PROMETHEUS = Scope("pods scaled on the user's Prometheus", lambda t: t.platform == "kubernetes"
                       and not t.managed_metrics)


def on_cloud(namespace: str, platform: str | None = None) -> Scope:
    """Targets that read the `namespace` provider (`aws`, `gcp`), optionally of one platform only."""
    return Scope(f"{namespace} {platform or ''}".strip(), lambda t: namespace in t.provider_namespaces
                 and (platform is None or t.platform == platform))
