"""A second `pulumi up` on a VM stack: a changed setting or a rotated key must reach the running server.

cloud-init reads user data once per instance, so a VM whose user data changes in place keeps serving what it booted
with. Both VMs are therefore replaced when their user data changes, and the user data names the exact version of
each secret, so a rotated key changes it too. `fetch-secrets.sh` runs for real here against stand-ins for the
`aws` and `gcloud` CLIs that hold two versions of each secret.
"""

from __future__ import annotations

import grp
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import VM_STACKS, environment_file, resources_of, run_stack, target_of, vm_files, vm_user_data
from systemd_env_file import systemd_environment

from pixtral_deploy.cloudinit import declared_user_data

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
API_KEY = "sk-pixtral-version-one-0123456789abcdef"
HF_TOKEN = "hf_version_one_0123456789abcdef"
SECRETS = {"pixtral:apiKey": API_KEY, "pixtral:hfToken": HF_TOKEN}
# What the store holds for the TLS private key in this test (the fake CLI serves it; any text goes).
TLS_KEY = "-----BEGIN EC PRIVATE KEY-----\nversion-one-key\n-----END EC PRIVATE KEY-----\n"


def _machines(run: dict) -> list[dict]:
    """The VM, or each instance template of a fleet."""
    machines = [r for r in run["resources"] if declared_user_data(r)]
    assert machines, run["error"]
    return machines


def _instance(run: dict) -> dict:
    (instance,) = _machines(run)
    return instance


def _is_fleet(run: dict) -> bool:
    return any(r["type"] == "gcp:compute/instanceTemplate:InstanceTemplate" for r in run["resources"])


@pytest.mark.parametrize("stack", VM_STACKS)
def test_a_changed_setting_replaces_the_vm_with_one_that_boots_it(stack):
    before, after = run_stack(stack), run_stack(stack, {"pixtral:maxModelLen": "16384"})
    assert "16384" in vm_files(after)["/etc/pixtral/vllm.args"]
    assert vm_user_data(before) != vm_user_data(after)
    if _is_fleet(after):
        # A template cannot change in place: the provider replaces it (create first, since the groups use it) and
        # each group rolls its replicas onto the new one, new ones first.
        for template in _machines(after):
            assert not template["options"].get("deleteBeforeReplace"), "the groups still reference the old one"
        for group in resources_of(after, "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"):
            assert group["inputs"]["updatePolicy"]["type"] == "PROACTIVE"
        return
    instance = _instance(after)
    if instance["type"] == LAUNCH_TEMPLATE:
        # A fleet: the changed template is a new version, and the group rolls replicas onto it, new ones first.
        (group,) = resources_of(after, "aws:autoscaling/group:Group")
        assert group["inputs"]["instanceRefresh"]["preferences"]["minHealthyPercentage"] == 100
    elif target_of(stack) == "aws":
        assert instance["inputs"].get("userDataReplaceOnChange") is True, "EC2 would keep the old cloud-init"
    else:
        assert "metadata" in instance["options"].get("replaceOnChanges", []), "GCE updates metadata in place"
        # The new VM takes over the static address, which one VM at a time can hold.
        assert instance["options"].get("deleteBeforeReplace") is True


def _stored_versions(run: dict) -> dict[str, str]:
    """Secret name -> version, as the (mock) cloud numbered them."""
    if target_of(run["stack"]) == "aws":
        return {p["outputs"]["name"]: str(p["outputs"]["version"])
                for p in resources_of(run, "aws:ssm/parameter:Parameter")}
    # Each Secret's value is its SecretVersion, declared as "<secret's resource name>-version".
    secret_ids = {s["name"]: s["inputs"]["secretId"] for s in resources_of(run, "gcp:secretmanager/secret:Secret")}
    return {secret_ids[v["name"].removesuffix("-version")]: v["outputs"]["version"]
            for v in resources_of(run, "gcp:secretmanager/secretVersion:SecretVersion")}


@pytest.mark.parametrize("stack", VM_STACKS)
def test_the_vm_reads_the_secret_versions_the_stack_wrote(stack):
    run = run_stack(stack, secrets=SECRETS)
    env, versions = environment_file(vm_files(run)), _stored_versions(run)
    assert env["PIXTRAL_API_KEY_VERSION"] == versions[env["PIXTRAL_API_KEY_SECRET"]]
    assert env["PIXTRAL_HF_TOKEN_VERSION"] == versions[env["PIXTRAL_HF_TOKEN_SECRET"]]
    if _serves_tls(run):
        assert env["PIXTRAL_TLS_KEY_VERSION"] == versions[env["PIXTRAL_TLS_KEY_SECRET"]]
    else:  # plain HTTP on the VMs (tls false, or TLS ends at the load balancer): no key to read
        assert env["PIXTRAL_TLS_KEY_SECRET"] == "" and len(versions) == 2


def _serves_tls(run: dict) -> bool:
    """Whether the VMs serve HTTPS themselves, and so hold a TLS key: pixtral:tls on, and no load balancer in front
    that terminates it (the GCP fleet's does; the AWS fleet stack sets pixtral:tls false)."""
    return run["config"].get("pixtral:tls", "true") != "false" and not any(
        r["type"].endswith(":GpuFleet") for r in run["resources"])


FAKE_CLI = r'''#!{python}
"""Stand-in for the cloud's secret store CLI: version 1 holds the stack's values, version 2 a later rotation."""
import json, sys
args = sys.argv[1:]
open({log!r}, "a").write(json.dumps(args) + "\n")
store = json.load(open({store!r}))
if args[:2] == ["ssm", "get-parameter"]:
    name, _, version = args[args.index("--name") + 1].rpartition(":")
    assert "--with-decryption" in args
elif args[:3] == ["secrets", "versions", "access"]:
    name, version = args[args.index("--secret") + 1], args[3]
else:
    sys.exit("unexpected call: " + " ".join(args))
value = store.get(name, {{}}).get(version)
if value is None:
    sys.exit(f"no version {{version!r}} of {{name}}")
print(value)
'''


def _fake_store_cli(folder: Path, versions: dict[str, dict[str, str]], cli: str) -> Path:
    folder.mkdir()
    (folder / "store.json").write_text(json.dumps(versions))
    script = folder / cli
    script.write_text(FAKE_CLI.format(python=sys.executable, log=str(folder / "calls.log"),
                                      store=str(folder / "store.json")))
    script.chmod(0o755)
    return folder


@pytest.mark.parametrize("stack", VM_STACKS)
def test_fetch_secrets_reads_exactly_those_versions_into_a_root_only_file(stack, tmp_path):
    run = run_stack(stack, secrets=SECRETS)
    files = vm_files(run)
    env = environment_file(files)
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ("pixtral-lib.sh", "fetch-secrets.sh"):
        (lib / name).write_text(files[f"/usr/local/lib/pixtral/{name}"])
    # Each secret's store holds the value at the version the stack wrote, and a newer one written since:
    # reading "latest" (or any other version) would give the VM the wrong key.
    tls = _serves_tls(run)
    values = {env["PIXTRAL_API_KEY_SECRET"]: API_KEY, env["PIXTRAL_HF_TOKEN_SECRET"]: HF_TOKEN}
    if tls:
        values[env["PIXTRAL_TLS_KEY_SECRET"]] = TLS_KEY
    store = {name: {version: values[name], str(int(version) + 1): "rotated-later", "latest": "rotated-later"}
             for name, version in _stored_versions(run).items()}
    cli = "aws" if target_of(stack) == "aws" else "gcloud"
    fake = _fake_store_cli(tmp_path / "bin", store, cli)
    secrets_file = tmp_path / "etc/secrets.env"
    secrets_file.parent.mkdir()
    key_file = tmp_path / "etc/tls.key"
    # The service user's group on the VM; here, this test's own group.
    group = grp.getgrgid(os.getgid()).gr_name
    env.update({"PIXTRAL_LIB": str(lib), "PIXTRAL_STATE_DIR": str(tmp_path / "state"), "PIXTRAL_RETRY_SECONDS": "0",
                "PIXTRAL_SECRETS_FILE": str(secrets_file), "PATH": f"{fake}:{os.environ['PATH']}",
                "HOME": str(tmp_path), "PIXTRAL_TLS_KEY_FILE": str(key_file), "PIXTRAL_USER": group})
    done = subprocess.run(["bash", str(lib / "fetch-secrets.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert systemd_environment(secrets_file) == {"VLLM_API_KEY": API_KEY, "HF_TOKEN": HF_TOKEN}
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    if tls:
        # vLLM (the service user) opens the TLS key itself: readable by root and the service's group, nobody else.
        assert key_file.read_text().strip() == TLS_KEY.strip()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o640
        assert key_file.stat().st_gid == grp.getgrnam(group).gr_gid
    else:
        assert not key_file.exists()
    calls = [json.loads(line) for line in (fake / "calls.log").read_text().splitlines()]
    assert len(calls) == 2 + tls, calls
    assert API_KEY not in done.stdout + done.stderr and "PRIVATE KEY" not in done.stdout + done.stderr


# Where each VM's boot image is, as an input and as an ignoreChanges path.
IMAGE_SETTING = {"aws": ("pixtral:amiId", "ami-0fedcba9876543210", "ami"),
                 "gcp": ("pixtral:image", "projects/my-project/global/images/my-dlvm",
                         "bootDisk.initializeParams.image")}
TEMPLATE_IMAGE = "disks[0].sourceImage"


@pytest.mark.parametrize("stack", VM_STACKS)
def test_a_newer_published_image_does_not_replace_a_serving_vm(stack):
    key, chosen, path = IMAGE_SETTING[target_of(stack)]

    def image_path(machine: dict) -> str:
        # A fleet: the template's image (replicas roll by instance refresh / rolling update).
        return {LAUNCH_TEMPLATE: "imageId"}.get(machine["type"], TEMPLATE_IMAGE if machine["type"].endswith(
            "InstanceTemplate") else path)

    # Looked up (newest DLAMI / DLVM family): fixed at creation, ignored on later runs.
    for machine in _machines(run_stack(stack)):
        assert image_path(machine) in machine["options"].get("ignoreChanges", [])
    # Chosen by the user: a new value must take effect, so it is not ignored.
    for pinned in _machines(run_stack(stack, {key: chosen})):
        where = image_path(pinned)
        assert where not in pinned["options"].get("ignoreChanges", [])
        assert chosen in json.dumps(pinned["inputs"])
