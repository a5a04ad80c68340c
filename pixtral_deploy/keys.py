"""Every `pixtral:*` setting, once: its parser, typed default, bounds, targets, secrecy and help text.

`CONFIG_KEYS` is the single source. The spec (pixtral_deploy/spec.py) reads typed values from it, never raw
strings; the README's configuration table is generated from it (`python -m pixtral_deploy.keys` rewrites the table,
tests/test_readme.py fails when they differ). A new setting is one `Key(...)` line here.

Parsers take the value as the Pulumi engine hands it to the program (a string; lists and maps as JSON) and raise
`Refused` with what is allowed; `parse_settings` turns that into one message per bad key, naming the key and the
value as the user wrote it, and reports every bad key of a stack at once.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .artefacts import IDENTITY_ALLOWED, identity_scheme, store_url_problem, user_store_url
from .catalog import DEFAULT_MODEL, GPUS
from .errors import ConfigError
from .locations import AWS_REGION_SHAPE
from .parsers import (
    Boolean,
    Choice,
    Fraction,
    Number,
    Refused,
    StringList,
    StringMap,
    Text,
    Whole,
    cidr,
    ipv4_cidr,
    same_network,
    same_text,
    setting_error,
)
from .scaling import MAX_REPLICAS, parse_autoscale
from .server import DEFAULT_PORT, VLLM_VERSION
from .targets import (
    EVERY_TARGET,
    EXISTING_CLUSTER,
    MACHINES_MADE,
    NEW_CLUSTER_NODES,
    OWN_PROMETHEUS,
    PODS,
    USERS_STORE,
    VMS,
    WARM_STARTS,
    Scope,
    all_targets,
    built_in_targets,
    find,
    names,
    on_cloud,
)

NAMESPACE = "pixtral"
# A secret setting in the raw configuration: that it is set, never its value (parse_settings keeps no more).
SECRET_SET = "(secret)"
SERVICE_TYPES = ("LoadBalancer", "ClusterIP", "NodePort")
AUTOSCALERS = ("keda", "hpa")
ROLLOUTS = ("surge", "inPlace")
# Namespaces Kubernetes itself owns: the program would create them and, on destroy, try to delete them.
RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# Below this port a process needs CAP_NET_BIND_SERVICE; vLLM runs as the unprivileged `vllm` user on VMs and with
# every capability dropped in pods, so it could not bind one.
FIRST_UNPRIVILEGED_PORT = 1024


_RELEASE = r"\d+\.\d+\.\d+(\.post\d+)?"
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
_MODEL_NAME = r"[A-Za-z0-9][A-Za-z0-9._/-]*"
# A fully qualified host name: dot-separated DNS labels, at least two, no trailing dot (it goes into a URL).
_DOMAIN = r"(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]([-a-z0-9]{0,61}[a-z0-9])?"


def prometheus_url(value: str) -> str:
    """An http(s) URL of a Prometheus query API, without credentials (they would sit in the ScaledObject, the
    state and resources.md) and without a query or fragment (KEDA appends /api/v1/query to it)."""
    allowed = "an http(s) URL of a Prometheus query API, e.g. http://prometheus-operated.monitoring.svc:9090"
    Text(r"https?://\S+", allowed)(value)
    try:
        parts = urllib.parse.urlsplit(value)
        _ = parts.port  # a port that is no number ("host:x") raises here
    except ValueError:
        raise Refused(allowed) from None
    if "@" in parts.netloc:
        raise Refused("a URL without user:password (not shown here): set the credentials as a secret, "
                      "pixtral:prometheusBasicAuth USER:PASSWORD or pixtral:prometheusBearerToken, which KEDA reads "
                      "from a Secret", shown_as=f"{parts.scheme}://<credentials>@{parts.netloc.rpartition('@')[2]}")
    if parts.query or parts.fragment or not parts.hostname:
        raise Refused(f"{allowed}, with a host and without ?query or #fragment (KEDA appends /api/v1/query)")
    return value


@dataclass(frozen=True)
class Key:
    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    # Which targets take it, by what they are (pixtral_deploy/targets): never a list of names.
    targets: Scope = EVERY_TARGET
    secret: bool = False
    # How the README shows a default that is derived from other settings (the typed default is then None).
    shown_default: str | None = None
    # Why the key does not apply to the other targets, when the target list alone would not tell a user.
    elsewhere: str | None = None

    def readme_default(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        return f"`{self.default if isinstance(self.default, str) else json.dumps(self.default)}`"

    def readme_targets(self) -> str:
        own = built_in_targets()
        taken = self.targets.names(own)
        return "all" if len(taken) == len(own) else ", ".join(taken)


# pixtral:target kubernetes reaches a cluster through a kubeconfig alone: the program knows no cloud account, so no
# DNS service, to put a record in.
_NO_DNS_ON_AN_EXISTING_CLUSTER = ("the program knows no DNS service of an existing cluster's cloud; point a record "
                                  "of your own at the endpoint's address")

# The program makes the stack's own store where it has a cloud account (pixtral:warmStarts); only a cluster reached
# through a kubeconfig alone takes a bucket of the user's.
_OWN_STORE_THERE = "the program makes the stack's own artefact store on that target: pixtral:warmStarts"


def artefact_store(value: str) -> str:
    """pixtral:artefactStore: `s3://BUCKET[/PREFIX]` or `gs://BUCKET[/PREFIX]` (pixtral_deploy/artefacts.py)."""
    Text()(value)  # no control characters
    problem = store_url_problem(value)
    if problem is not None:
        allowed, shown_as = problem
        raise Refused(allowed, shown_as=shown_as)
    return user_store_url(value)


def artefact_store_identity(value: str) -> str:
    """pixtral:artefactStoreIdentity: an IAM role ARN or a Google service account's email, by shape."""
    if identity_scheme(value) is None:
        raise Refused(f"{IDENTITY_ALLOWED['s3']}, or {IDENTITY_ALLOWED['gs']}")
    return value


AWS, AWS_VMS = on_cloud("aws"), on_cloud("aws", "vm")
GCP, GCP_VMS = on_cloud("gcp"), on_cloud("gcp", "vm")


def target_name(value: str) -> str:
    """pixtral:target: one of the registered targets (read when a stack is parsed, so a plugin's count)."""
    return Choice(names())(value)


_GPU_NAMES = ", ".join(f"`{name}`" for name in sorted(GPUS))

CONFIG_KEYS: tuple[Key, ...] = (
    Key("target", target_name, None, "Where to run: `aws`, `gcp`, `kubernetes`, `eks` or `gke`.",
        shown_default="(required)"),
    Key("model", Text(_MODEL_NAME, "a Hugging Face model id such as mistralai/Pixtral-12B-2409"), DEFAULT_MODEL,
        "Hugging Face model id to serve."),
    Key("servedModelName", Text(_MODEL_NAME, "letters, digits and . _ / -"), None,
        "Model name clients send in requests.", shown_default="the model id"),
    Key("vllmVersion", Text(_RELEASE, f"a release number such as {VLLM_VERSION}"), VLLM_VERSION,
        "vLLM release to install on VMs and run in pods (the tested pin is the default)."),
    Key("port", Whole(FIRST_UNPRIVILEGED_PORT, 65535, " (vLLM runs unprivileged and cannot bind a lower port)"),
        DEFAULT_PORT, "Port the OpenAI-compatible API listens on."),
    Key("maxModelLen", Whole(256, 1048576), 32768, "Context length in tokens (prompt, image tokens and answer)."),
    Key("maxImagesPerPrompt", Whole(1, 64), 4, "Most images one request may carry."),
    Key("gpuMemoryUtilization", Fraction(), 0.90, "Share of each GPU's memory vLLM may use, in (0, 1]."),
    Key("tensorParallelSize", Whole(1, 16), None, "GPUs the model is sharded over.",
        shown_default="the GPUs of a machine / replica"),
    Key("quantization", Choice(("none", "fp8"), "'none' or 'fp8'"), None, "`none` or `fp8`.",
        shown_default="bf16, or fp8 when bf16 does not fit"),
    Key("extraArgs", StringList(refuse_control_characters=False), (), "More vLLM arguments, as a list of strings, "
        "appended to the program's own; what is refused is below."),
    Key("apiKey", Text(), None, "Bearer key clients must send: 16+ characters, printable ASCII, no spaces. "
        "**Secret**: `pulumi config set --secret pixtral:apiKey ...` (a plain value is refused)", secret=True,
        shown_default="generated (pulumi-random)"),
    Key("hfToken", Text(), None, "Hugging Face token, for gated models (same rules as `apiKey`). **Secret**.",
        secret=True, shown_default="unset"),
    Key("tls", Boolean(), True, "Serve HTTPS with a certificate from the stack's own CA (output `caCertificate`; "
        "a fleet's load balancer with `domain` serves a public one instead: ACM's, or Google-managed on an external "
        "GCP load balancer); `false` serves plain HTTP (a warning says so)."),
    Key("domain", Text(_DOMAIN, "a lowercase DNS name such as pixtral.example.com"), None,
        "DNS name of the endpoint: the program creates its record in `dnsZone` (on `eks` / `gke`, for the "
        "Service's load balancer), the endpoint and the certificate use it.", targets=MACHINES_MADE,
        shown_default="unset (the address)", elsewhere=_NO_DNS_ON_AN_EXISTING_CLUSTER),
    Key("dnsZone", Text(r"[A-Za-z0-9][A-Za-z0-9_-]*", "a Route 53 hosted zone id (AWS) or a Cloud DNS managed "
        "zone name (GCP)"), None, "Zone that holds `domain`: a Route 53 hosted zone id on `aws` / `eks`, a Cloud "
        "DNS managed zone name on `gcp` / `gke`; set with `domain` only.", targets=MACHINES_MADE,
        shown_default="unset", elsewhere=_NO_DNS_ON_AN_EXISTING_CLUSTER),
    Key("allowedCidrs", StringList(cidr, "at least one CIDR (an empty list would make the endpoint unreachable)",
                                   distinct=same_network),
        ("0.0.0.0/0",), "Networks that may reach the port (IPv4 or IPv6 CIDRs, each "
        "once; on `aws` / `eks` at most 60 per IP version, a security group's rule quota)."),
    Key("diskSizeGb", Whole(100, 16384), 200, "Disk of the VM or GPU node in GB (the OS image, vLLM and the "
        "weights).", targets=MACHINES_MADE),
    Key("spot", Boolean(), False, "Use spot / preemptible capacity (AWS VM: persistent, stops on interruption and "
        "keeps its disk).", targets=MACHINES_MADE),
    Key("gpuCount", Whole(1, 16), None, "GPUs per machine; required for types outside the catalog.",
        targets=MACHINES_MADE, shown_default="from the catalog"),
    Key("gpuMemoryGb", Number(1), None, "Memory of one GPU in GB; required for types outside the catalog.",
        shown_default="from the catalog"),
    Key("instanceType", Text(r"\S+", "an EC2 instance type such as g6e.xlarge"),
        "g6e.xlarge", "EC2 instance type of the VM / GPU nodes (g6e.xlarge: one L40S, 48 GB).",
        targets=AWS),
    Key("vpcId", Text(r"vpc-[0-9a-f]+", "an id starting with 'vpc-'"), None, "VPC to launch in.",
        targets=AWS, shown_default="the default VPC"),
    Key("subnetId", Text(r"subnet-[0-9a-f]+", "an id starting with 'subnet-'"), None, "Subnet to launch in.",
        targets=AWS_VMS, shown_default="a default subnet in a zone that offers the type"),
    Key("amiId", Text(r"ami-[0-9a-f]+", "an id starting with 'ami-'"), None, "AMI to boot.", targets=AWS_VMS,
        shown_default="newest Deep Learning Base GPU AMI (Ubuntu 24.04), when the VM is made"),
    Key("machineType", Text(r"\S+", "a Compute Engine machine type such as g2-standard-24"),
        "g2-standard-24", "Compute Engine machine type of the VM / GPU nodes.", targets=GCP),
    Key("acceleratorType", Text(r"[a-z0-9][a-z0-9-]*", "a GPU type such as nvidia-l4"), None,
        "GPU type attached to the VM / GPU nodes.", targets=GCP,
        shown_default="the machine type's GPU (`nvidia-l4`)"),
    Key("acceleratorCount", Whole(1, 16), None, "Number of GPUs attached to each VM / GPU node.",
        targets=GCP, shown_default="the machine type's GPUs (`2`)"),
    Key("network", Text(r"\S+", "a VPC network name or self link"), None, "VPC network of the VM; the stack's "
        "firewall rules are added to it.", targets=GCP_VMS,
        shown_default="a VPC of the stack's own (never the project's `default` network)"),
    Key("subnetwork", Text(r"\S+", "a subnetwork name or self link"), None, "Subnetwork of `network` in the "
        "VM's region.", targets=GCP_VMS, shown_default="the network's subnet in the region (auto mode)"),
    Key("image", Text(r"\S+", "an image name or self link"), None, "Boot image.", targets=GCP_VMS,
        shown_default="newest image of Deep Learning VM family `common-cu128-ubuntu-2204-nvidia-570`, when the VM "
                      "is made"),
    Key("kubeconfig", Text(), None, "Kubeconfig of an existing cluster. **Secret** (plain only when it holds no "
        "token, key or password, e.g. one that signs in through an exec plugin).", targets=EXISTING_CLUSTER,
        secret=True, shown_default="the ambient kubeconfig"),
    Key("context", Text(r"\S+", "a context name from the kubeconfig"), None, "Kubeconfig context to use.",
        targets=EXISTING_CLUSTER, shown_default="the kubeconfig's current context"),
    Key("gpuType", Choice(tuple(sorted(GPUS))), None, f"GPU of the cluster's nodes, a catalog name ({_GPU_NAMES}): "
        "the model is sized for it and the pods run only on nodes labelled with it (GKE's "
        "`cloud.google.com/gke-accelerator`, `k8s.amazonaws.com/accelerator`, or GPU feature discovery's "
        "`nvidia.com/gpu.product`); `gpuMemoryGb` alone sizes without selecting.",
        targets=EXISTING_CLUSTER, shown_default="(`gpuType` or `gpuMemoryGb` required)"),
    Key("clusterName", Text(r"[A-Za-z0-9][A-Za-z0-9_-]*", "a cluster name"), None,
        "Existing EKS / GKE cluster to add the GPU nodes to.", targets=NEW_CLUSTER_NODES,
        shown_default="a new cluster"),
    Key("clusterApiCidrs", StringList(ipv4_cidr, "at least one IPv4 CIDR (pulumi must reach the cluster's API)",
                                      distinct=same_network),
        None, "IPv4 networks that may reach the API endpoint of the cluster the program creates (where you run "
        "`pulumi` and `kubectl`); not with `clusterName`.", targets=NEW_CLUSTER_NODES,
        shown_default="the IPv4 CIDRs of `allowedCidrs`"),
    Key("namespace", Text(_DNS_LABEL, "a DNS label: lowercase letters, digits and '-', at most 63"), "pixtral",
        "Namespace of the workload (not one Kubernetes owns: "
        f"{', '.join(RESERVED_NAMESPACES)}).", targets=PODS),
    Key("storageClass", Text(_DNS_SUBDOMAIN, "a StorageClass name (lowercase letters, digits, '-', '.')"), None,
        "StorageClass of the model-cache volume.", targets=PODS,
        shown_default="cluster default; `pixtral-gp3` on EKS, `premium-rwo` on GKE"),
    # The weights alone are ~25 GB; less cannot hold them.
    Key("cacheSizeGb", Whole(30, 65536), 100, "Size of the Hugging Face cache volume in GB.",
        targets=PODS),
    Key("gpusPerReplica", Whole(1, 16), 1, "GPUs per pod (`nvidia.com/gpu`); tensor parallel matches.",
        targets=PODS),
    Key("nodeSelector", StringMap('{"cloud.google.com/gke-accelerator": "nvidia-l4"}'), (),
        "Node labels the pods must match, as a map.", targets=PODS, shown_default="`{}`"),
    Key("serviceType", Choice(SERVICE_TYPES), "LoadBalancer", "`LoadBalancer`, `ClusterIP` (private) or "
        "`NodePort`.", targets=PODS),
    # Scaling (docs/scaling.md): the same keys on every target that can honour them.
    Key("replicas", Whole(1, MAX_REPLICAS), 1, "Fixed number of replicas. On `aws` / `gcp`, 1 is one VM and more is "
        "a fleet behind a load balancer; on Kubernetes, the number of pods."),
    Key("autoscale", parse_autoscale, None, "`{minReplicas, maxReplicas, targetQpsPerReplica}` or `{minReplicas, "
        "maxReplicas, targetQueuePerReplica}` (exactly one target), optional `upscaleDelaySeconds` (300) and "
        "`downscaleDelaySeconds` (1200). Switches to a fleet; not together with `replicas`.",
        shown_default="unset"),
    Key("onDemandBaseReplicas", Whole(0, MAX_REPLICAS), 0, "Fleet with `spot: true`: this many replicas always run "
        "on on-demand capacity, the rest (at least one) on spot.", targets=VMS),
    Key("instanceTypes", StringList(at_least_one="at least one EC2 instance type", distinct=same_text), None,
        "Candidate instance types of a fleet in order of preference (capacity and spot diversity); all must have the "
        "same GPU count.",
        targets=AWS_VMS, shown_default="`[instanceType]`"),
    Key("machineTypes", StringList(at_least_one="at least one machine type", distinct=same_text), None,
        "Candidate machine types of a fleet in order of preference; all must have the same GPUs.", targets=GCP_VMS,
        shown_default="`[machineType]`"),
    Key("warmPool", Whole(0, MAX_REPLICAS), 0, "Fleet: stopped instances that already hold vLLM and the weights, "
        "resumed on scale-out instead of a cold boot (on-demand only, one instance type; the weights stay on the "
        "EBS root disk).", targets=AWS_VMS),
    Key("warmStarts", Boolean(), True, "The stack's artefact store: on `aws`, `gcp`, `eks` and `gke` a bucket of the "
        "stack's own (S3 on `aws` and `eks`, GCS on `gcp` and `gke`, deleted with the stack), on `kubernetes` the one "
        "`artefactStore` names. The first VM publishes vLLM, its compile cache and the weights there, every later boot "
        "fetches vLLM and the compile cache from it and vLLM streams the weights from it (Run:ai's streamer) instead "
        "of PyPI and Hugging Face; the first pod publishes the weights and later pods fill their "
        "cache volume from it; `false`: no store, every boot installs and downloads.", targets=WARM_STARTS,
        shown_default="`true`; on `kubernetes`, whether `artefactStore` is set"),
    Key("artefactStore", artefact_store, None, "A bucket of yours for the pods' warm starts, `s3://BUCKET[/PREFIX]` or "
        "`gs://BUCKET[/PREFIX]` (no credentials: the pods act as `artefactStoreIdentity` or the nodes' own identity; "
        "[docs/kubernetes.md](docs/kubernetes.md#warm-starts-on-kubernetes-a-bucket-of-yours) says what to grant).",
        targets=USERS_STORE, shown_default="unset (no store)", elsewhere=_OWN_STORE_THERE),
    Key("artefactStoreRegion", Text(AWS_REGION_SHAPE.pattern, "an AWS region such as us-east-1"), None, "Region of the "
        "`s3://` bucket of `artefactStore` (required with one; the AWS CLI signs for it).", targets=USERS_STORE,
        shown_default="(required with `s3://`)", elsewhere=_OWN_STORE_THERE),
    Key("artefactStoreIdentity", artefact_store_identity, None, "Cloud identity the pods' ServiceAccount "
        "`pixtral-server` is annotated with: an IAM role ARN (IRSA, `s3://`) or a Google service account's email (GKE "
        "Workload Identity, `gs://`).", targets=USERS_STORE,
        shown_default="unset (EKS Pod Identity, Workload Identity Federation or the nodes' identity)",
        elsewhere=_OWN_STORE_THERE),
    Key("autoscaler", Choice(AUTOSCALERS), None, "What scales the pods with `autoscale`: `keda` (a KEDA "
        "ScaledObject on a Prometheus query) or `hpa` (a HorizontalPodAutoscaler on the custom metrics API). On `gke` "
        "the program installs KEDA and reads GKE's managed Prometheus; on a cluster `eks` creates it installs KEDA, "
        "which queries `prometheusUrl`.", targets=PODS,
        shown_default="`keda`"),
    Key("prometheusUrl", prometheus_url, None, "Prometheus that KEDA queries for vLLM's metrics "
        "(`autoscaler: keda`); it must scrape the pods with the API key. No credentials in it: see "
        "`prometheusBasicAuth` / `prometheusBearerToken`.", targets=OWN_PROMETHEUS,
        shown_default="unset (required for `keda`)"),
    Key("prometheusBasicAuth", Text(), None, "`USER:PASSWORD` KEDA signs in to `prometheusUrl` with (basic "
        "authentication, through a TriggerAuthentication and a Secret). **Secret**.", targets=OWN_PROMETHEUS,
        secret=True, shown_default="unset"),
    Key("prometheusBearerToken", Text(), None, "Bearer token KEDA sends to `prometheusUrl` (through a "
        "TriggerAuthentication and a Secret); not with `prometheusBasicAuth`. **Secret**.",
        targets=OWN_PROMETHEUS, secret=True, shown_default="unset"),
    Key("sharedCache", Boolean(), False, "One `ReadWriteMany` model cache for every pod (EFS, Filestore, ...) instead "
        "of a `ReadWriteOnce` cache per pod.", targets=PODS),
    Key("rollout", Choice(ROLLOUTS), "surge", "How a changed server description (image, arguments, key, "
        "certificate) replaces the pods: `surge` starts new pods and removes old ones only once the new ones are "
        "ready (spare GPUs: a whole new set with a cache per pod, one pod with `sharedCache`); `inPlace` replaces them "
        "one at a time on the GPUs they hold (no spare GPU; with one replica the endpoint is down meanwhile).",
        targets=PODS),
    Key("zones", StringList(Text(r"[a-z]+-[a-z]+[0-9]+-[a-z]", "a Compute Engine zone such as us-central1-a"),
                            "at least one zone", distinct=same_text), None,
        "Zones of a fleet's regional instance group, all in one region; those that do not offer the GPU are left "
        "out, and a list with none that does is refused.", targets=GCP_VMS,
        shown_default="the zones of gcp:zone's region that offer the GPU"),
    Key("internal", Boolean(), False, "The fleet's load balancer gets no public address (reachable from the VPC "
        "only); refused for one VM, which keeps its public address.", targets=VMS),
)
KEYS: dict[str, Key] = {key.name: key for key in CONFIG_KEYS}
# Namespaces whose keys belong to someone else (the providers every stack uses, the engine), beside the targets'
# clouds (foreign_namespaces): never a misspelt pixtral key.
COMMON_NAMESPACES = ("kubernetes", "random", "tls", "pulumi")


def foreign_namespaces() -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for t in all_targets() for n in t.provider_namespaces)) + COMMON_NAMESPACES


class Settings:
    """The stack's settings, parsed: `settings["port"]` is the typed value, or the key's default when unset."""

    def __init__(self, parsed: Mapping[str, Any]):
        self._parsed = dict(parsed)

    def __getitem__(self, name: str) -> Any:
        return self._parsed[name] if name in self._parsed else KEYS[name].default

    def is_set(self, name: str) -> bool:
        return name in self._parsed


def _closest(name: str) -> str:
    close = difflib.get_close_matches(name, sorted(KEYS), n=1, cutoff=0.6)
    return f"did you mean pixtral:{close[0]}? " if close else ""


def misplaced_keys(config_keys: list[str], project: str) -> list[str]:
    """Messages for keys that look meant for this program but sit outside its namespace (`pixtrl:target`, or
    `target` alone, which the Pulumi CLI files under the project's namespace): ignored, they would surface later as
    a confusing "not set", so the real typo is named instead."""
    messages = []
    for full in config_keys:
        namespace, _, name = full.rpartition(":")
        if namespace in (NAMESPACE, *foreign_namespaces()):
            continue
        meant_for_us = (namespace in ("", project) or name in KEYS
                        or difflib.get_close_matches(namespace, [NAMESPACE], n=1, cutoff=0.7))
        if meant_for_us:
            hint = f"did you mean pixtral:{name}? " if name in KEYS else _closest(name)
            messages.append(f"{full} is not a setting this program reads; {hint}its settings are pixtral:KEY")
    return messages


def _one_of(names: tuple[str, ...]) -> str:
    """`aws`, `aws or gcp`, `aws, gcp, eks or gke`."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def parse_settings(raw: Mapping[str, Any], other_errors: list[str] | None = None) -> Settings:
    """Parse every `pixtral:*` value (namespace stripped) and check each applies to the target; every bad key
    (and `other_errors`, found in other namespaces) is reported in one ConfigError, one line each."""
    errors: list[str] = list(other_errors or [])
    parsed: dict[str, Any] = {}
    for name, value in raw.items():
        if value == "":
            continue  # `pulumi config set KEY ""` reads as unset, as the Pulumi SDK's own getters do
        key = KEYS.get(name)
        if key is None:
            errors.append(f"pixtral:{name} is not a setting this program reads; {_closest(name)}known keys: "
                          f"{', '.join(sorted(KEYS))}")
            continue
        if key.secret:
            # Whether a secret is set, never its value: the value stays a Pulumi secret (config.Secrets).
            parsed[name] = True
            continue
        try:
            parsed[name] = key.parse(value)
        except Refused as refused:
            shown_value = value if refused.shown_as is None else refused.shown_as
            errors.append(str(setting_error(name, shown_value, str(refused))))
    target = parsed.get("target")
    if target is None and not raw.get("target"):
        errors.append(f"pixtral:target is not set; set it to one of {', '.join(names())} (e.g. `pulumi config "
                         "set pixtral:target aws`)")
    chosen = find(target)
    if chosen is not None:
        errors += [f"pixtral:{name} only applies to target {_one_of(KEYS[name].targets.names())}, not to "
                   f"pixtral:target {target}{'' if KEYS[name].elsewhere is None else ' (' + KEYS[name].elsewhere + ')'}"
                   "; remove it from this stack" for name in parsed if not KEYS[name].targets(chosen)]
    if errors:
        raise ConfigError("\n".join(errors) if len(errors) == 1 else
                          f"{len(errors)} settings are wrong:\n" + "\n".join(f"- {e}" for e in errors))
    return Settings(parsed)


BEGIN, END = "<!-- config-keys:begin -->", "<!-- config-keys:end -->"


def readme_table() -> str:
    """The README's configuration table, between its markers."""
    rows = ["| key | targets | default | meaning |", "|---|---|---|---|"]
    rows += [f"| `{key.name}` | {key.readme_targets()} | {key.readme_default()} | {key.help} |" for key in CONFIG_KEYS]
    return f"{BEGIN}\n" + "\n".join(rows) + f"\n{END}"


def rewrite_readme(readme: Path) -> None:
    text = readme.read_text()
    readme.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: readme_table(), text, flags=re.S))


if __name__ == "__main__":
    rewrite_readme(Path(__file__).resolve().parent.parent / "README.md")
    sys.exit(0)
