"""`pixtralctl bench`: concurrent multimodal requests, streamed, with time to first token and throughput.

Always bounded: it stops after --requests requests or --duration seconds, whichever comes first, and each
request has its own timeout. Prints a table and can write the raw per-request numbers as JSON for plotting.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import api, status_codes
from .errors import Failure, UsageError
from .guide_request import add_image_arguments, guide_content
from .target import add_target_arguments, resolve, served_model

if TYPE_CHECKING:
    import openai

MAX_REQUESTS = 10_000
MAX_DURATION_SECONDS = 3600

EXIT_CODES = {
    status_codes.SUCCESS: "at least one request succeeded (the table counts the errors)",
    status_codes.CHECK_FAILED: "no request succeeded, or the server did not answer, refused the key or listed no "
                               "model before the first request",
    status_codes.USAGE_ERROR: status_codes.GENERAL_MEANINGS[status_codes.USAGE_ERROR] + "; --concurrency, "
                              "--requests or --duration not positive; an --out that is not a file in an existing "
                              "folder",
}


@dataclass
class Sample:
    started: float
    ttft: float | None = None
    latency: float | None = None
    output_tokens: int | None = None
    error: str | None = None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="measure latency and throughput under concurrent load",
                                   description=__doc__.split("\n\n")[0],
                                   epilog=status_codes.epilog(status_codes.meanings(EXIT_CODES)),
                                   formatter_class=status_codes.HelpFormatter)
    add_target_arguments(parser)
    add_image_arguments(parser)
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight at once (default 4)")
    parser.add_argument("--requests", type=int, default=50, help=f"stop after this many (default 50, at most "
                                                                 f"{MAX_REQUESTS})")
    parser.add_argument("--duration", type=float, default=300, help=f"stop after this many seconds (default 300, "
                                                                    f"at most {MAX_DURATION_SECONDS})")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per request (default 300)")
    parser.add_argument("--out", type=Path, help="write the raw numbers as JSON here")
    parser.set_defaults(handler=run, max_tokens=128)


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile; None when there are no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def _one(client: openai.OpenAI, model: str, content: list, max_tokens: int, origin: float) -> Sample:
    import openai  # loaded when used: `pixtralctl render` starts without its second of imports

    sample = Sample(started=time.monotonic() - origin)
    begin = time.monotonic()
    try:
        stream = client.chat.completions.create(
            model=model, max_tokens=max_tokens, messages=[{"role": "user", "content": content}], stream=True,
            stream_options={"include_usage": True})
        for chunk in stream:
            if sample.ttft is None and chunk.choices and chunk.choices[0].delta.content:
                sample.ttft = time.monotonic() - begin
            if chunk.usage is not None:
                sample.output_tokens = chunk.usage.completion_tokens
        sample.latency = time.monotonic() - begin
        if sample.output_tokens is None:
            sample.error = "stream ended without a usage report"
    except openai.APIStatusError as error:
        sample.error = f"status {error.status_code}"
    except openai.APIConnectionError as error:
        sample.error = f"connection: {api.connection_problem(error, str(client.base_url))}"
    except Exception as error:  # noqa: BLE001  a benchmark reports every failure and carries on
        sample.error = f"{type(error).__name__}: {error}"
    return sample


def summarize(samples: list[Sample], wall_seconds: float) -> dict:
    ok = [s for s in samples if s.error is None]
    ttft = [s.ttft for s in ok if s.ttft is not None]
    latency = [s.latency for s in ok]
    tokens = sum(s.output_tokens or 0 for s in ok)
    per_request = [s.output_tokens / s.latency for s in ok if s.latency and s.output_tokens]
    errors: dict[str, int] = {}
    for sample in samples:
        if sample.error:
            errors[sample.error] = errors.get(sample.error, 0) + 1
    return {
        "requests": len(samples), "ok": len(ok), "errors": errors, "wall_seconds": round(wall_seconds, 3),
        **{f"ttft_p{p}": percentile(ttft, p / 100) for p in (50, 90, 99)},
        **{f"latency_p{p}": percentile(latency, p / 100) for p in (50, 90, 99)},
        "output_tokens": tokens,
        "output_tokens_per_second": round(tokens / wall_seconds, 2) if wall_seconds else None,
        "output_tokens_per_second_per_request_p50": percentile(per_request, 0.5),
    }


def _table(summary: dict) -> str:
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [f"requests {summary['requests']}  ok {summary['ok']}  errors {sum(summary['errors'].values())}  "
             f"wall {summary['wall_seconds']:.1f}s",
             f"{'':24}{'p50':>10}{'p90':>10}{'p99':>10}",
             f"{'time to first token (s)':24}" + "".join(f"{fmt(summary[f'ttft_p{p}']):>10}" for p in (50, 90, 99)),
             f"{'end-to-end latency (s)':24}" + "".join(
                 f"{fmt(summary[f'latency_p{p}']):>10}" for p in (50, 90, 99)),
             f"output tokens/s: {summary['output_tokens_per_second']} in all, "
             f"{fmt(summary['output_tokens_per_second_per_request_p50'])} per request (p50)"]
    lines += [f"error x{count}: {kind}" for kind, count in summary["errors"].items()]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> None:
    if args.concurrency < 1 or args.requests < 1 or args.duration <= 0:
        raise UsageError("--concurrency, --requests and --duration must be positive, got "
                         f"{args.concurrency}, {args.requests} and {args.duration:g}")
    # Refused before the load is sent, not after minutes of it.
    if args.out and (args.out.is_dir() or not args.out.parent.is_dir()):
        raise UsageError(f"--out {args.out}: not a file in an existing folder")
    requests, duration = min(args.requests, MAX_REQUESTS), min(args.duration, MAX_DURATION_SECONDS)
    target = resolve(args)
    content = guide_content(args.image)
    model = served_model(target)
    client = target.openai_client(args.timeout)
    origin = time.monotonic()
    deadline = origin + duration
    issued = 0
    lock = threading.Lock()

    def worker() -> list[Sample]:
        nonlocal issued
        samples = []
        while True:
            with lock:
                if issued >= requests or time.monotonic() >= deadline:
                    return samples
                issued += 1
            samples.append(_one(client, model, content, args.max_tokens, origin))

    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        samples = [s for future in [pool.submit(worker) for _ in range(args.concurrency)] for s in future.result()]
    summary = summarize(samples, time.monotonic() - origin)
    print(_table(summary))
    if args.out:
        args.out.write_text(json.dumps({
            "endpoint": target.endpoint, "model": model, "concurrency": args.concurrency,
            "images_per_request": len(content) // 2, "max_tokens": args.max_tokens, "summary": summary,
            "samples": [asdict(s) for s in sorted(samples, key=lambda s: s.started)]}, indent=2))
        print(f"raw numbers written to {args.out}")
    if not summary["ok"]:
        commonest = max(summary["errors"], key=summary["errors"].get, default="no request was sent")
        raise Failure(f"none of the {summary['requests']} requests succeeded ({commonest})")
