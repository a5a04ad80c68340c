"""`pixtralctl smoke`: the request from the SkyPilot Pixtral guide (two images and a question) through the official
OpenAI client, and the key really enforced.

Fails when the status is not 200, when the answer is empty (or, with --expect-tokens, when no token was
generated), or when a request without the key, or with a wrong one, is not refused with 401. A fleet at zero
(autoscale.minReplicas 0, no replica) is woken first and waited for, as `pixtralctl wait` does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from . import api, status_codes, wait
from .errors import Failure
from .guide_request import add_image_arguments, guide_content
from .progress import Progress
from .target import Target, add_target_arguments, resolve, served_model
from .wake import at_zero, wait_timeout

EXIT_CODES = {
    status_codes.SUCCESS: "the answer is good, and requests without or with a wrong key are refused with 401",
    status_codes.CHECK_FAILED: "no answer (connection refused or dropped), a fleet at zero that did not wake within "
                               "its wake's timeout, a status other than 200 (a refused key too), an empty answer "
                               "(--expect-tokens: no generated tokens), or a request without or with a wrong key not "
                               "refused with 401",
    status_codes.USAGE_ERROR: status_codes.GENERAL_MEANINGS[status_codes.USAGE_ERROR] + "; an --image that is "
                              "neither a URL nor an image file",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "smoke", help="send the SkyPilot Pixtral guide's request (two images and a question), check the answer",
        description=__doc__.split("\n\n")[0], epilog=status_codes.epilog(status_codes.meanings(EXIT_CODES)),
        formatter_class=status_codes.HelpFormatter)
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
    try:
        return api.call(f"{target.base_url}/chat/completions", key, api.readiness_request(model), timeout=60,
                        context=target.ssl_context()).status
    except api.NoAnswer as error:
        return f"no answer ({error})"


def run(args: argparse.Namespace) -> None:
    import openai  # loaded when used: `pixtralctl render` starts without its second of imports

    target = resolve(args)
    content = guide_content(args.image)
    result: dict = {"endpoint": target.endpoint, "images": len(content) // 2}

    def failed(message: str) -> Failure:
        return Failure(message, report=result if args.json else None)

    outputs = wait.stack_outputs_of(args)
    if zero := at_zero(outputs):
        # The request below would meet the balancer's 503 (or wait in the interceptor): wake the fleet and wait for
        # its first replica as `pixtralctl wait` does. With --json the progress goes to stderr, the JSON alone to
        # stdout.
        timeout = wait_timeout(zero, None)
        with Progress(sys.stderr if args.json else sys.stdout) as progress:
            wait.wake(target, zero, timeout, progress)
            try:
                woken = wait.until_ready(target, timeout, wait.DEFAULT_INTERVAL_SECONDS,
                                         wait.RefusedGrace(wait.REFUSED_GRACE_SECONDS), wait.side_note(outputs),
                                         progress)
            except Failure as error:
                raise failed(f"the fleet was at zero and did not wake: {error}") from None
        result["woken_from_zero_seconds"] = round(woken, 1)

    try:
        result["model"] = model = served_model(target)
    except Failure as error:
        raise failed(str(error)) from None
    client = target.openai_client(args.timeout)
    started = time.monotonic()
    try:
        response = client.chat.completions.create(
            model=model, max_tokens=args.max_tokens, messages=[{"role": "user", "content": content}])
    except openai.APIStatusError as error:
        raise failed(f"the request was answered with status {error.status_code}: {error.message}") from None
    except openai.APIConnectionError as error:
        untrusted = target.certificate_error(error)
        raise failed(untrusted or f"no complete answer from {target.base_url} "
                                  f"({api.connection_problem(error, target.base_url)})") from None
    result["latency_seconds"] = round(time.monotonic() - started, 3)
    answer = (response.choices[0].message.content or "") if response.choices else ""
    usage = response.usage
    result.update(answer=answer, prompt_tokens=usage.prompt_tokens if usage else None,
                  completion_tokens=usage.completion_tokens if usage else None)
    if args.expect_tokens and not (usage and usage.completion_tokens >= 1):
        raise failed("the answer reports no generated tokens")
    if not args.expect_tokens and not answer.strip():
        raise failed("the answer is empty")
    for label, key in (("without a key", None), ("with a wrong key", "pixtralctl-wrong-key")):
        status = _unauthenticated_status(target, model, key)
        if status != 401:
            raise failed(f"a request {label} was not refused with 401 (got {status})")
    result["ok"] = True
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(answer)
        print(f"\nOK: {result['latency_seconds']:.2f}s, {result['prompt_tokens']} prompt tokens, "
              f"{result['completion_tokens']} completion tokens; requests without or with a wrong key refused")
