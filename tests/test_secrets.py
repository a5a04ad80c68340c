"""Secrets stay Pulumi secrets end to end: never in user data, a plain output, or vLLM's command line."""

from __future__ import annotations

import json

from conftest import run_stack

from pixtral_deploy.cloudinit import declared_user_data

API_KEY = "sk-known-test-key-7f3a9c"
HF_TOKEN = "hf_known_test_token_51d2"
# Where a secret must be: the cloud's secret stores (encrypted by Pulumi in state, by the cloud at rest).
SECRET_HOLDERS = {
    "aws:ssm/parameter:Parameter": "value",
    "gcp:secretmanager/secretVersion:SecretVersion": "secretData",
    "kubernetes:core/v1:Secret": "stringData",
}


def _run_with_known_secrets(stack: str) -> dict:
    run = run_stack(stack, secrets={"pixtral:apiKey": API_KEY, "pixtral:hfToken": HF_TOKEN})
    assert run["error"] is None, run["error"]
    return run


def test_known_secrets_appear_only_in_secret_stores(stack):
    run = _run_with_known_secrets(stack)
    for resource in run["resources"]:
        holder_field = SECRET_HOLDERS.get(resource["type"])
        inputs = {k: v for k, v in resource["inputs"].items() if k != holder_field}
        # EC2 user data travels gzip-compressed: search the document itself, not its encoding.
        text = json.dumps(inputs) + (declared_user_data(resource) or "")
        for secret in (API_KEY, HF_TOKEN):
            assert secret not in text, f"{resource['type']} {resource['name']} carries a secret outside a secret store"


def test_secret_stores_receive_the_configured_values(stack):
    run = _run_with_known_secrets(stack)
    stored = json.dumps([r["inputs"].get(f) for r in run["resources"] for t, f in SECRET_HOLDERS.items()
                         if r["type"] == t])
    assert API_KEY in stored and HF_TOKEN in stored


def test_known_secrets_are_in_no_plain_output(stack):
    run = _run_with_known_secrets(stack)
    plain = {k: v for k, v in run["outputs"].items() if k not in run["secret_outputs"]}
    for secret in (API_KEY, HF_TOKEN):
        assert secret not in json.dumps(plain)
    assert run["outputs"]["apiKey"] == API_KEY and "apiKey" in run["secret_outputs"]


def test_program_log_never_shows_secrets(stack):
    log = "\n".join(_run_with_known_secrets(stack)["log"])
    assert API_KEY not in log and HF_TOKEN not in log


def test_the_secret_search_reads_compressed_user_data(stack):
    # Guards the search above: a secret inside EC2's gzip+base64 user data would not show in the raw inputs.
    run = _run_with_known_secrets(stack)
    documents = [declared_user_data(r) for r in run["resources"] if declared_user_data(r)]
    for document in documents:
        assert document.startswith("#cloud-config") and "PIXTRAL_API_KEY_SECRET=" in document
