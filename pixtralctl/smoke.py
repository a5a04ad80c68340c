"""`pixtralctl smoke`: the seed's request through the official OpenAI client, and the key really enforced.

Fails when the status is not 200, when the answer is empty (or, with --expect-tokens, when no token was
generated), or when a request without the key, or with a wrong one, is not refused with 401.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request

import openai

from .seed import add_image_arguments, seed_content
from .target import Target, add_target_arguments, resolve, served_model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("smoke", help="send the seed's multimodal request and check the answer",
                                   description=__doc__.split("\n\n")[0])
    add_target_arguments(parser)
    add_image_arguments(parser)
    parser.add_argument("--expect-tokens", action="store_true",
                        help="require generated tokens (usage.completion_tokens >= 1) instead of non-empty text; "
                             "for test models with random weights, whose text may be empty")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for the request (default 600)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def _unauthenticated_status(target: Target, model: str, key: str | None) -> int | str:
    """Status of a chat request without the key (no header) or with a wrong one."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    body = json.dumps({"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]})
    request = urllib.request.Request(f"{target.base_url}/chat/completions", data=body.encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError) as error:
        return f"no answer ({getattr(error, 'reason', error)})"


def _fail(args: argparse.Namespace, result: dict, message: str) -> int:
    result.update(ok=False, error=message)
    print(json.dumps(result, indent=2) if args.json else f"FAIL: {message}")
    return 1


def run(args: argparse.Namespace) -> int:
    target = resolve(args)
    content = seed_content(args.image)
    model = served_model(target)
    client = openai.OpenAI(base_url=target.base_url, api_key=target.api_key, timeout=args.timeout, max_retries=0)
    result: dict = {"endpoint": target.endpoint, "model": model, "images": len(content) // 2}
    started = time.monotonic()
    try:
        response = client.chat.completions.create(
            model=model, max_tokens=args.max_tokens, messages=[{"role": "user", "content": content}])
    except openai.APIStatusError as error:
        return _fail(args, result, f"the request was answered with status {error.status_code}: {error.message}")
    except openai.APIConnectionError as error:
        return _fail(args, result, f"no complete answer from {target.base_url} ({error.__cause__ or error})")
    result["latency_seconds"] = round(time.monotonic() - started, 3)
    answer = (response.choices[0].message.content or "") if response.choices else ""
    usage = response.usage
    result.update(answer=answer, prompt_tokens=usage.prompt_tokens if usage else None,
                  completion_tokens=usage.completion_tokens if usage else None)
    if args.expect_tokens and not (usage and usage.completion_tokens >= 1):
        return _fail(args, result, "the answer reports no generated tokens")
    if not args.expect_tokens and not answer.strip():
        return _fail(args, result, "the answer is empty")
    for label, key in (("without a key", None), ("with a wrong key", "pixtralctl-wrong-key")):
        status = _unauthenticated_status(target, model, key)
        if status != 401:
            return _fail(args, result, f"a request {label} was not refused with 401 (got {status})")
    result["ok"] = True
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(answer)
        print(f"\nOK: {result['latency_seconds']:.2f}s, {result['prompt_tokens']} prompt tokens, "
              f"{result['completion_tokens']} completion tokens; requests without or with a wrong key refused")
    return 0
