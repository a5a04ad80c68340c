"""The docs stay runnable: the example CI workflow's and the README first screen's pixtralctl commands parse with
the real CLI, and the first screen says what its deploy command needs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from conftest import STACKS

from pixtralctl.__main__ import parser

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "docs/ci-deploy-and-smoke.yml"
README = (ROOT / "README.md").read_text()
FIRST_SCREEN = README.split("\n---\n", 1)[0]


def _steps() -> list[dict]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_example_workflow_deploys_waits_smokes_and_always_tears_down():
    runs = [step.get("run", "") for step in _steps()]
    order = [next(i for i, run in enumerate(runs) if marker in run)
             for marker in ("pulumi up", "pixtralctl wait", "pixtralctl smoke", "pulumi destroy")]
    assert order == sorted(order)
    (teardown,) = [step for step in _steps() if "pulumi destroy" in step.get("run", "")]
    assert teardown["if"] == "always()"


def test_every_pixtralctl_command_in_the_workflow_parses():
    commands = [step["run"] for step in _steps() if "pixtralctl " in step.get("run", "")]
    assert len(commands) >= 4
    for command in commands:
        words = shlex.split(command.replace('"$STACK"', "aws"))
        parser().parse_args(words[words.index(next(w for w in words if w.endswith("pixtralctl"))) + 1:])


def test_first_screen_says_what_the_deploy_command_needs():
    (deploy,) = [paragraph for paragraph in FIRST_SCREEN.split("\n\n") if "pulumi stack select --create" in paragraph]
    assert "(https://www.pulumi.com/docs/iac/download-install/)" in deploy
    assert "`pulumi login --local`" in deploy and "Pulumi Cloud" in deploy


def test_first_screen_offers_render_right_under_the_install_command():
    after_install = FIRST_SCREEN.split("```bash", 1)[1].split("```", 1)[1]
    under = after_install.split("```bash", 1)[0]
    (hint,) = re.findall(r"No cloud account yet\? `(?:\.venv/bin/)?(pixtralctl render [^`]+)`", under)
    args = parser().parse_args(shlex.split(hint)[1:])
    assert args.stack in STACKS


def test_docs_name_the_guide_request_not_a_seed():
    for text in (README, WORKFLOW.read_text(), *(page.read_text() for page in (ROOT / "docs").glob("*.md"))):
        assert not re.search(r"\bseed", text, re.I)


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings."""
    headings = re.findall(r"(?m)^#{1,4} (.+)$", page.read_text())
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_every_link_between_the_pages_leads_somewhere():
    broken = []
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            destination = (page.parent / path).resolve() if path else page
            if not destination.exists() or (anchor and destination.suffix == ".md"
                                              and anchor not in _anchors(destination)):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, f"links that lead nowhere: {broken}"
