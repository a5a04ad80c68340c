"""Which `pixtral:extraArgs` elements vLLM would read as a flag the program sets, and refusing them.

The program sets some of vLLM's flags itself (`vllm_args` in server.py) from its own keys. vLLM 0.32.0's parser
(`FlexibleArgumentParser`, an `argparse.ArgumentParser`) reads far more spellings than the flag as written: it
turns `_` into `-` in a `--` name, reads `--name.key value` as `--name '{"key": value}'`, accepts any unambiguous
prefix of an option (`--ho` is `--host`), short aliases (`-tp`, `-q`) and aliases (`--device-memory-utilization`).
So an exact-match check lets `--api_key`, `--ho`, `-tp 8` or a second `--middleware` through. This module reads
each element the way the pinned parser does, from the parser's full option list, and refuses the ones that land
on a flag the program owns. Standard library only: the Pulumi program imports it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from .errors import ConfigError

# The release whose parser OPTION_STRINGS and OPTION_ALIASES describe; a test fails when server.VLLM_VERSION moves
# away from it, so a new release comes with its regenerated option list.
PARSER_RELEASE = "0.32.0"

# Each flag `vllm_args` writes (and --api-key, which the program passes as VLLM_API_KEY instead), with the
# pixtral: key it comes from; "the program" for the ones no key sets.
MANAGED_FLAGS: dict[str, str] = {
    "--model": "model",
    "--served-model-name": "servedModelName",
    "--host": "the program",
    "--port": "port",
    "--tokenizer-mode": "model",
    "--config-format": "model",
    "--load-format": "model",
    "--model-loader-extra-config": "the program",
    "--limit-mm-per-prompt": "maxImagesPerPrompt",
    "--max-model-len": "maxModelLen",
    "--tensor-parallel-size": "tensorParallelSize",
    "--gpu-memory-utilization": "gpuMemoryUtilization",
    "--middleware": "the program",
    "--shutdown-timeout": "the program",
    "--quantization": "quantization",
    "--api-key": "apiKey",
    "--ssl-keyfile": "tls",
    "--ssl-certfile": "tls",
}

# Why the program keeps the flags no key sets.
_PROGRAM_REASONS = {
    "--host": "vLLM listens on every address of its VM or pod; who may reach it is pixtral:allowedCidrs",
    "--middleware": "it loads the API key guard (pixtral_guard.RequireApiKey), and another middleware could "
                    "answer requests before the guard sees them",
    "--model-loader-extra-config": "a VM that streams the weights from the stack's artefact store on several GPUs "
                                   "reads them once for all of them (the streamer's distributed mode)",
    "--shutdown-timeout": "a replica that is scaled in or replaced drains its requests for as long as its "
                          "termination grace period allows; 0 would abort them",
}

# Flags no key sets that an extra argument must not set either.
REFUSED_FLAGS: dict[str, str] = {
    "--root-path": "the program serves the API at the root path, where its health checks (/health) and clients "
                   "(/v1) find it; a root path is for a path-routing proxy in front of vLLM, which this "
                   "deployment does not have",
}

# The other option strings of the actions above, from the pinned parser (regenerated with OPTION_STRINGS).
OPTION_ALIASES: dict[str, str] = {
    "-tp": "--tensor-parallel-size",
    "-q": "--quantization",
    "--device-memory-utilization": "--gpu-memory-utilization",
}

# Every option string of vLLM 0.32.0's OpenAI server parser, sorted: argparse accepts a prefix only when it is
# unambiguous among all of them, so deciding what `--ho` means needs the whole list. Generated from the real
# parser (`make_arg_parser(FlexibleArgumentParser())`, as `python -m vllm.entrypoints.openai.api_server` builds it)
# with `.venv-e2e/bin/python tests/e2e/vllm_parser.py describe` ("options"; OPTION_ALIASES from "aliases");
# tests/e2e/test_extra_args_parser.py regenerates both and fails when they differ.
OPTION_STRINGS: tuple[str, ...] = (
    "--additional-config", "--aggregate-engine-logging", "--all2all-backend", "--allow-credentials",
    "--allow-deprecated-quantization", "--allowed-headers", "--allowed-local-media-path", "--allowed-media-domains",
    "--allowed-methods", "--allowed-origins", "--anthropic-disabled-thinking-effort", "--api-key",
    "--api-server-count", "--async-scheduling", "--attention-backend", "--attention-config", "--aux-output-config",
    "--block-size", "--chat-template", "--chat-template-content-format", "--code-revision", "--cohere-format",
    "--cohere-is-reasoning-model", "--collect-detailed-traces", "--compilation-config", "--config",
    "--config-format", "--convert", "--cp-kv-cache-interleave-size", "--cpu-distributed-timeout-seconds",
    "--cpu-offload-gb", "--cpu-offload-params", "--cudagraph-capture-sizes", "--cudagraph-metrics",
    "--custom-histogram-buckets", "--data-parallel-address", "--data-parallel-backend",
    "--data-parallel-external-lb", "--data-parallel-hybrid-lb", "--data-parallel-multi-port-external-lb",
    "--data-parallel-rank", "--data-parallel-rpc-port", "--data-parallel-size", "--data-parallel-size-local",
    "--data-parallel-start-rank", "--data-parallel-supervisor-port", "--dbo-decode-token-threshold",
    "--dbo-prefill-token-threshold", "--dcp-comm-backend", "--dcp-kv-cache-interleave-size", "--dcp-q-replicate",
    "--decode-context-parallel-size", "--default-chat-template-kwargs", "--default-mm-loras", "--device-ids",
    "--device-memory-utilization", "--diffusion-config", "--disable-access-log-for-endpoints",
    "--disable-cascade-attn", "--disable-chunked-mm-input", "--disable-custom-all-reduce", "--disable-fastapi-docs",
    "--disable-hybrid-kv-cache-manager", "--disable-log-stats", "--disable-nccl-for-dp-synchronization",
    "--disable-sliding-window", "--disable-uvicorn-access-log", "--distributed-executor-backend",
    "--distributed-timeout-seconds", "--download-dir", "--dp-supervisor-probe-failure-threshold",
    "--dp-supervisor-probe-interval-s", "--dp-supervisor-probe-timeout-s", "--dp-sync-interval", "--dtype",
    "--ec-manager-config", "--ec-transfer-config", "--elastic-ep-max-dp-size", "--enable-auto-tool-choice",
    "--enable-batch-sharded-sampling", "--enable-chunked-prefill", "--enable-cumem-allocator", "--enable-dbo",
    "--enable-elastic-ep", "--enable-ep-weight-filter", "--enable-eplb", "--enable-expert-parallel",
    "--enable-fault-tolerance", "--enable-flash-late-interaction", "--enable-flashinfer-autotune",
    "--enable-force-include-usage", "--enable-hc-sp", "--enable-layerwise-nvtx-tracing", "--enable-log-deltas",
    "--enable-log-outputs", "--enable-log-requests", "--enable-logging-iteration-details", "--enable-lora",
    "--enable-mamba-cache-stochastic-rounding", "--enable-mamba-shared-prefix-checkpoint", "--enable-mfu-metrics",
    "--enable-mixed-moe-lora-format", "--enable-mm-embeds", "--enable-moe-shared-loras",
    "--enable-nccl-comm-suspend", "--enable-offline-docs", "--enable-per-request-metrics",
    "--enable-prefix-caching", "--enable-prompt-embeds", "--enable-prompt-tokens-details",
    "--enable-request-id-headers", "--enable-return-routed-experts", "--enable-scale-out",
    "--enable-server-load-tracking", "--enable-shm-tensor-arena", "--enable-sleep-mode", "--enable-ssl-refresh",
    "--enable-tokenizer-info-endpoint", "--enable-tower-connector-lora", "--enable-trace-replay", "--enforce-eager",
    "--engram-config", "--eplb-config", "--exclude-tools-when-tool-choice-none", "--expert-placement-strategy",
    "--fail-on-environ-validation", "--fault-tolerance-config", "--fingerprint-mode", "--fingerprint-value",
    "--fully-sharded-loras", "--gdn-prefill-backend", "--generation-config", "--gpu-memory-utilization", "--grpc",
    "--grpc-port", "--h11-max-header-count", "--h11-max-incomplete-event-size", "--headless", "--help",
    "--hf-config-path", "--hf-overrides", "--hf-token", "--host", "--ignore-patterns", "--interleave-mm-strings",
    "--io-processor-plugin", "--ir-op-priority", "--jit-monitor-mode", "--jit-monitor-verbose",
    "--kda-decode-backend", "--kda-prefill-backend", "--kernel-config", "--kv-cache-dtype",
    "--kv-cache-dtype-skip-layers", "--kv-cache-memory-bytes", "--kv-cache-metrics", "--kv-cache-metrics-sample",
    "--kv-events-config", "--kv-offloading-backend", "--kv-offloading-size", "--kv-sharing-fast-prefill",
    "--kv-transfer-config", "--language-model-only", "--limit-mm-per-prompt", "--linear-backend", "--load-format",
    "--log-config-file", "--log-error-stack", "--log-level", "--logging-config", "--logits-processors",
    "--logprobs-mode", "--long-prefill-token-threshold", "--long-prefill-token-threshold-adaptive", "--lora-dtype",
    "--lora-modules", "--lora-target-modules", "--mamba-backend", "--mamba-block-size", "--mamba-cache-dtype",
    "--mamba-cache-mode", "--mamba-cache-philox-rounds", "--mamba-ssm-cache-dtype", "--mamba-ssu-algorithm",
    "--master-addr", "--master-port", "--max-cpu-loras", "--max-cudagraph-capture-size", "--max-log-len",
    "--max-logprobs", "--max-lora-cls-labels", "--max-lora-rank", "--max-loras", "--max-model-len",
    "--max-num-active-seqs", "--max-num-batched-tokens", "--max-num-queued-reqs", "--max-num-queued-tokens",
    "--max-num-scheduled-tokens", "--max-num-seqs", "--max-parallel-loading-workers", "--media-io-kwargs",
    "--middleware", "--mm-device-do-normalize", "--mm-encoder-attn-backend", "--mm-encoder-attn-dtype",
    "--mm-encoder-fp8-scale-path", "--mm-encoder-fp8-scale-save-margin", "--mm-encoder-fp8-scale-save-path",
    "--mm-encoder-only", "--mm-encoder-tp-mode", "--mm-hasher-algorithm", "--mm-ipc-gpu-memory-gb",
    "--mm-processor-cache-gb", "--mm-processor-cache-type", "--mm-processor-device", "--mm-processor-kwargs",
    "--mm-shm-cache-max-object-size-mb", "--mm-tensor-ipc", "--model", "--model-class-overrides", "--model-impl",
    "--model-loader-extra-config", "--moe-backend", "--nnodes", "--no-allow-credentials",
    "--no-allow-deprecated-quantization", "--no-async-scheduling", "--no-cohere-is-reasoning-model",
    "--no-cudagraph-metrics", "--no-data-parallel-external-lb", "--no-data-parallel-hybrid-lb",
    "--no-dcp-q-replicate", "--no-disable-cascade-attn", "--no-disable-chunked-mm-input",
    "--no-disable-custom-all-reduce", "--no-disable-fastapi-docs", "--no-disable-hybrid-kv-cache-manager",
    "--no-disable-nccl-for-dp-synchronization", "--no-disable-sliding-window", "--no-disable-uvicorn-access-log",
    "--no-enable-auto-tool-choice", "--no-enable-batch-sharded-sampling", "--no-enable-chunked-prefill",
    "--no-enable-cumem-allocator", "--no-enable-dbo", "--no-enable-elastic-ep", "--no-enable-ep-weight-filter",
    "--no-enable-eplb", "--no-enable-expert-parallel", "--no-enable-fault-tolerance",
    "--no-enable-flash-late-interaction", "--no-enable-flashinfer-autotune", "--no-enable-force-include-usage",
    "--no-enable-hc-sp", "--no-enable-layerwise-nvtx-tracing", "--no-enable-log-deltas", "--no-enable-log-outputs",
    "--no-enable-log-requests", "--no-enable-logging-iteration-details", "--no-enable-lora",
    "--no-enable-mamba-cache-stochastic-rounding", "--no-enable-mamba-shared-prefix-checkpoint",
    "--no-enable-mfu-metrics", "--no-enable-mixed-moe-lora-format", "--no-enable-mm-embeds",
    "--no-enable-moe-shared-loras", "--no-enable-nccl-comm-suspend", "--no-enable-offline-docs",
    "--no-enable-per-request-metrics", "--no-enable-prefix-caching", "--no-enable-prompt-embeds",
    "--no-enable-prompt-tokens-details", "--no-enable-request-id-headers", "--no-enable-return-routed-experts",
    "--no-enable-scale-out", "--no-enable-server-load-tracking", "--no-enable-shm-tensor-arena",
    "--no-enable-sleep-mode", "--no-enable-ssl-refresh", "--no-enable-tokenizer-info-endpoint",
    "--no-enable-tower-connector-lora", "--no-enable-trace-replay", "--no-enforce-eager",
    "--no-exclude-tools-when-tool-choice-none", "--no-fail-on-environ-validation", "--no-fully-sharded-loras",
    "--no-interleave-mm-strings", "--no-jit-monitor-verbose", "--no-kv-cache-metrics",
    "--no-kv-sharing-fast-prefill", "--no-language-model-only", "--no-log-error-stack",
    "--no-long-prefill-token-threshold-adaptive", "--no-mm-device-do-normalize", "--no-mm-encoder-only",
    "--no-numa-bind", "--no-ray-workers-use-nsight", "--no-return-sampling-mask", "--no-return-tokens-as-token-ids",
    "--no-scheduler-reserve-full-isl", "--no-skip-mm-profiling", "--no-skip-tokenizer-init",
    "--no-sleep-mode-offload-cudagraph", "--no-specialize-active-lora", "--no-swa-bounded-replay",
    "--no-tokens-only", "--no-trust-remote-code", "--no-trust-request-chat-template",
    "--no-trust-request-mm-kwargs", "--no-use-fp64-gumbel", "--no-use-replayssm", "--no-use-tqdm-on-load",
    "--node-rank", "--num-gpu-blocks-override", "--numa-bind", "--numa-bind-cpus", "--numa-bind-nodes",
    "--offload-backend", "--offload-group-size", "--offload-num-in-group", "--offload-params",
    "--offload-prefetch-step", "--optimization-level", "--otlp-traces-endpoint", "--override-generation-config",
    "--per-request-spec-decode-metrics", "--performance-mode", "--pipeline-parallel-size", "--pooler-config",
    "--port", "--prefill-context-parallel-size", "--prefill-schedule-interval", "--prefix-cache-retention-interval",
    "--prefix-caching-hash-algo", "--prefix-match-unit", "--profiler-config", "--pt-load-map-location",
    "--quantization", "--quantization-config", "--ray-workers-use-nsight", "--reasoning-config",
    "--reasoning-parser", "--reasoning-parser-plugin", "--renderer-num-workers", "--replayssm-buffer-len",
    "--response-role", "--return-sampling-mask", "--return-tokens-as-token-ids", "--revision", "--root-path",
    "--runner", "--safetensors-load-strategy", "--safetensors-prefetch-block-size",
    "--safetensors-prefetch-num-threads", "--scheduler-cls", "--scheduler-reserve-full-isl", "--scheduling-policy",
    "--seed", "--served-model-name", "--show-hidden-metrics-for-version", "--shutdown-timeout",
    "--skip-mm-profiling", "--skip-tokenizer-init", "--sleep-mode-offload-cudagraph",
    "--sleep-preserve-parameter-names", "--sparse-indexer-topk-backend", "--spec-method", "--spec-model",
    "--spec-tokens", "--specialize-active-lora", "--speculative-config", "--sse-keep-alive-interval",
    "--ssl-ca-certs", "--ssl-cert-reqs", "--ssl-certfile", "--ssl-ciphers", "--ssl-keyfile", "--stream-interval",
    "--structured-outputs-config", "--swa-bounded-replay", "--tensor-parallel-size", "--tokenizer",
    "--tokenizer-mode", "--tokenizer-revision", "--tokens-only", "--tool-call-parser", "--tool-parser-plugin",
    "--tool-server", "--tool-strict-level", "--trust-remote-code", "--trust-request-chat-template",
    "--trust-request-mm-kwargs", "--ubatch-size", "--uds", "--use-fp64-gumbel", "--use-replayssm",
    "--use-tqdm-on-load", "--uvicorn-log-level", "--video-pruning-method", "--video-pruning-rate", "--watermark",
    "--watermark-config", "--weight-transfer-config", "--worker-cls", "--worker-extension-cls", "-ac", "-asc",
    "-cc", "-dc", "-dcp", "-dp", "-dpa", "-dpb", "-dpe", "-dph", "-dpl", "-dpm", "-dpn", "-dpp", "-dpr", "-ep",
    "-h", "-n", "-pcp", "-pp", "-q", "-r", "-sc", "-tp",
)
_OPTIONS = frozenset(OPTION_STRINGS)

# FlexibleArgumentParser rewrites `_` to `-` in a `--` name, from after the `--` up to the first `.`.
_NAME_BEFORE_DOT = re.compile(r"(?<=--)[^.]*")
# Characters that would split or corrupt an element: C0/C1 controls (newline, tab, NUL, ...) and the Unicode line
# and paragraph separators. The VMs write one element per line of /etc/pixtral/vllm.args.
_LINE_BREAKING_CATEGORIES = ("Cc", "Zl", "Zp")


def check_extra_args(args: Sequence[str]) -> None:
    """Raise ConfigError naming pixtral:extraArgs for the first element vLLM would read as a flag the program
    owns (in any spelling its parser accepts), a refused flag, or one with a control character."""
    for element in args:
        _check_characters(element)
        for option in options_read(element):
            flag = OPTION_ALIASES.get(option, option)
            if flag in MANAGED_FLAGS:
                raise ConfigError(_managed_message(element, flag))
            if flag in REFUSED_FLAGS:
                raise ConfigError(f"pixtral:extraArgs: {element!r} is not allowed: vLLM {PARSER_RELEASE} reads it "
                                  f"as {flag}, and {REFUSED_FLAGS[flag]}")


def options_read(element: str) -> list[str]:
    """The option strings vLLM's parser reads `element` as (usually none or one)."""
    return [option for arg in _argparse_strings(element) if (option := _argparse_option(arg))]


def _check_characters(element: str) -> None:
    for char in element:
        if unicodedata.category(char) in _LINE_BREAKING_CATEGORIES:
            raise ConfigError(
                f"pixtral:extraArgs: {element!r} is not allowed: it contains the control character "
                f"U+{ord(char):04X}; each element must be one line of text (the VMs write one element per line "
                f"of /etc/pixtral/vllm.args, so a line break would make it several arguments)")


def _managed_message(element: str, flag: str) -> str:
    owner = MANAGED_FLAGS[flag]
    read_as = f"vLLM {PARSER_RELEASE} reads it as {flag}, which"
    if owner == "the program":
        return f"pixtral:extraArgs: {element!r} is not allowed: {read_as} the program sets: {_PROGRAM_REASONS[flag]}"
    return f"pixtral:extraArgs: {element!r} is not allowed: {read_as} is set from pixtral:{owner}; set that key instead"


def _argparse_strings(element: str) -> list[str]:
    """What argparse is handed for this element once FlexibleArgumentParser.parse_args has rewritten it."""
    if element.startswith("--"):
        name, equals, value = element.partition("=")
        return [_dotted_name(_NAME_BEFORE_DOT.sub(lambda m: m.group(0).replace("_", "-"), name, count=1)
                             + equals + value)]
    if element.startswith("-O") and element != "-O":
        # `-O3` / `-O=3` become `--optimization-level 3`; the level then goes through the dotted rewrite too.
        level = element[3:] if element[2] == "=" else element[2:]
        return ["--optimization-level", _dotted_name(level)]
    return [_dotted_name(element)]


def _dotted_name(arg: str) -> str:
    """`--name.key[=value]` is handed to argparse as `--name` followed by a JSON object."""
    name = arg.partition("=")[0]
    if arg.startswith("-") and "." in name:
        return name.split(".", 1)[0]
    return arg


def _argparse_option(arg: str) -> str | None:
    """The option argparse resolves `arg` to, following `ArgumentParser._parse_optional` (allow_abbrev is on)."""
    if len(arg) < 2 or not arg.startswith("-"):
        return None
    if arg in _OPTIONS:
        return arg
    head, equals, _ = arg.partition("=")
    if equals and head in _OPTIONS:
        return head
    if arg[1] == "-":
        candidates = [option for option in OPTION_STRINGS if option.startswith(head)]
    else:
        # A one-letter option takes the rest as its value (`-qfp8`); a longer prefix abbreviates a single-dash
        # option (`-t` is `-tp`). Python 3.12 and 3.13 releases since CPython gh-124345 (autumn 2024; the VMs'
        # Python is 3.12) also read `-t=8` as `-tp 8`; older ones reject it. This reads it the later way.
        candidates = [option for option in OPTION_STRINGS if option == arg[:2] or option.startswith(head)]
    return candidates[0] if len(candidates) == 1 else None
