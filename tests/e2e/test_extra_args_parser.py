"""The extraArgs check agrees with vLLM 0.32.0's real parser, and its option list is that parser's.

vLLM's parser (tests/e2e/vllm_parser.py, run in the e2e venv) parses the program's own arguments followed by each
case, and reports which destinations the case was read as. A case the check refuses must be one the parser reads
as a flag the program owns (or --root-path); a case the parser reads that way must be refused; every extraArgs
example in the README must be accepted by the check and parse.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from conftest import PROJECT_DIR, e2e_python

from pixtral_deploy.errors import ConfigError
from pixtral_deploy.server import vllm_args
from pixtral_deploy.spec import load_spec
from pixtral_deploy.vllm_flags import (
    MANAGED_FLAGS,
    OPTION_ALIASES,
    OPTION_STRINGS,
    REFUSED_FLAGS,
    check_extra_args,
)

pytestmark = pytest.mark.e2e

PROBE = Path(__file__).parent / "vllm_parser.py"
# A value each flag's action accepts, different from the program's own.
VALUES = {
    "--model": "other/model",
    "--served-model-name": "other",
    "--host": "127.0.0.1",
    "--port": "9000",
    "--tokenizer-mode": "auto",
    "--config-format": "hf",
    "--load-format": "safetensors",
    "--model-loader-extra-config": '{"distributed":false}',
    "--limit-mm-per-prompt": '{"image":64}',
    "--max-model-len": "1048576",
    "--tensor-parallel-size": "8",
    "--gpu-memory-utilization": "0.5",
    "--middleware": "evil.Middleware",
    "--shutdown-timeout": "0",
    "--quantization": "fp8",
    "--api-key": "sk-other",
    "--ssl-keyfile": "/tmp/other.key",
    "--ssl-certfile": "/tmp/other.crt",
    "--root-path": "/v2",
}
# The spellings issue 10 found getting through an exact-match check.
ISSUE_FORMS = [["--api_key", "x"], ["--api-ke", "x"], ["--ho", "127.0.0.1"], ["-tp", "8"], ["-q", "fp8"],
               ["--limit-mm-per-prompt.image", "64"], ["--max_model_len", "1048576"], ["--middleware", "x.Y"]]


def _base_args() -> list[str]:
    return vllm_args(load_spec({"target": "aws", "quantization": "fp8"}).server)


def _readme_examples() -> list[list[str]]:
    readme = (PROJECT_DIR / "README.md").read_text()
    found = re.findall(r"`pixtral:extraArgs: (\[.*?\])`", readme, re.S)
    assert found, "the README shows no extraArgs example"
    return [json.loads(" ".join(text.split())) for text in found]


def _spellings(flag: str, value: str) -> list[list[str]]:
    """The ways to write `flag`: every prefix, with `_` for `-`, with `=value`, and dotted; short ones glued."""
    if not flag.startswith("--"):
        # `-tp`, and its prefix `-t` where there is one; each alone, with `=value` and with the value glued on.
        prefixes = [flag[:length] for length in range(2, len(flag) + 1)]
        return [case for prefix in prefixes
                for case in ([prefix, value], [f"{prefix}={value}"], [f"{prefix}{value}"], [f"{prefix}.x", value])]
    cases = []
    name = flag[2:]
    for length in range(1, len(name) + 1):
        for prefix in {"--" + name[:length], "--" + name[:length].replace("-", "_")}:
            cases += [[prefix, value], [f"{prefix}={value}"], [f"{prefix}.x", value], [f"{prefix}.x={value}"]]
    return cases


def _cases() -> list[list[str]]:
    cases = list(ISSUE_FORMS) + _readme_examples()
    for flag in (*MANAGED_FLAGS, *REFUSED_FLAGS):
        for option in [flag] + [alias for alias, canonical in OPTION_ALIASES.items() if canonical == flag]:
            cases += _spellings(option, VALUES[flag])
    # Every other option of the release, as written: none of them may be refused.
    cases += [[option, "1"] for option in OPTION_STRINGS]
    return cases


@pytest.fixture(scope="module")
def parser_report() -> dict:
    cases = _cases()
    request = json.dumps({"base": _base_args(), "cases": cases})
    done = subprocess.run([e2e_python(), str(PROBE), "resolve"], input=request, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["cases"] = cases
    return report


def _refusal(case: list[str]) -> str | None:
    try:
        check_extra_args(case)
    except ConfigError as error:
        return str(error)
    return None


def _owned_dests(report: dict) -> set[str]:
    return {report["dests"][flag] for flag in (*MANAGED_FLAGS, *REFUSED_FLAGS)}


def _read_as_newer_python_does(element: str, report: dict) -> bool:
    """`-t=8`: argparse since CPython gh-124345 (the VMs' Python 3.12) reads it as `-tp 8`; the e2e venv's 3.11
    does not, so the parser here cannot confirm it."""
    head = element.partition("=")[0]
    return (not report["single_dash_abbreviation_splits_at_equals"] and not element.startswith("--")
            and "=" in element and head not in OPTION_STRINGS)


def test_option_list_is_regenerated_from_the_real_parser(parser_report):
    assert tuple(parser_report["options"]) == OPTION_STRINGS, (
        "vllm_flags.OPTION_STRINGS differs from the pinned parser: regenerate it with "
        "`.venv-e2e/bin/python tests/e2e/vllm_parser.py describe`")
    aliases = {alias: flag for flag in (*MANAGED_FLAGS, *REFUSED_FLAGS)
               for alias in parser_report["aliases"][flag] if alias != flag}
    assert aliases == OPTION_ALIASES


def test_the_issue_spellings_reach_managed_flags_in_the_real_parser(parser_report):
    """The forms the check exists for are real: vLLM would have read each one as a flag the program sets."""
    owned = _owned_dests(parser_report)
    for case, result in zip(parser_report["cases"], parser_report["results"], strict=True):
        if case in ISSUE_FORMS:
            assert set(result["dests"]) & owned, (case, result)
            assert _refusal(case), case


def test_check_refuses_exactly_what_the_real_parser_reads_as_a_managed_flag(parser_report):
    owned = _owned_dests(parser_report)
    wrong = []
    for case, result in zip(parser_report["cases"], parser_report["results"], strict=True):
        read_as_owned = bool(set(result["dests"]) & owned)
        refused = _refusal(case)
        if refused and not read_as_owned and _read_as_newer_python_does(case[0], parser_report):
            continue
        if bool(refused) != read_as_owned:
            wrong.append((case, result["dests"], result["error"], refused))
    assert not wrong, "check and parser disagree (case, parser dests, parser error, check message):\n" + \
        "\n".join(map(repr, wrong[:40]))


def test_readme_examples_are_accepted_and_parse(parser_report):
    examples = _readme_examples()
    for case, result in zip(parser_report["cases"], parser_report["results"], strict=True):
        if case in examples:
            assert _refusal(case) is None, case
            assert result["error"] is None, (case, result["error"])
