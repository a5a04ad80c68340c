"""The README's first screen stays true: two commands, the test one is what CI runs, every key documented."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import STACKS

from pixtral_deploy.keys import CONFIG_KEYS, readme_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
FIRST_SCREEN = README.split("\n---\n", 1)[0]


def _commands(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, re.S)]


def test_first_screen_has_exactly_two_setup_commands():
    commands = _commands(FIRST_SCREEN)
    assert len(commands) == 2, commands
    install, test = commands
    assert "pip install -e ." in install
    assert "pytest" in test


def test_the_install_stands_alone_and_the_deploy_comes_after_it():
    # Chained to the install, a missing Pulumi CLI would end the README's first command in "command not found".
    install = _commands(FIRST_SCREEN)[0]
    assert "pulumi" not in install and "&& pulumi" not in FIRST_SCREEN, install
    assert FIRST_SCREEN.index(install) < FIRST_SCREEN.index("pulumi stack select --create")
    assert "`pulumi up`" in FIRST_SCREEN


def test_the_render_folder_of_the_readme_is_ignored_by_git():
    folder = re.search(r"pixtralctl render --stack \S+ --out (\S+?)/?`", FIRST_SCREEN).group(1)
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert f"/{folder}/" in ignored or f"{folder}/" in ignored, f"{folder}/ is not in .gitignore"


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = _commands(FIRST_SCREEN)[1]
    ci = (ROOT / ".ci/run").read_text()
    assert test_command in ci.splitlines(), "the README's test command and .ci/run have drifted"


def test_default_stack_of_the_install_command_is_shipped():
    stack = re.search(r"pulumi stack select --create ([\w-]+)", FIRST_SCREEN).group(1)
    assert stack in STACKS


def test_every_config_key_is_documented():
    documented = set(re.findall(r"^\| `([A-Za-z]+)` \|", README, re.M))
    missing = {key.name for key in CONFIG_KEYS} - documented
    assert not missing, f"config keys missing from the README table: {sorted(missing)}"


def test_every_shipped_stack_is_documented():
    for stack in STACKS:
        assert f"| `{stack}` |" in README, f"stack {stack} has no row in the README's stack table"


def test_readme_configuration_table_is_the_one_generated_from_the_keys():
    # Defaults, targets and help text live once, in pixtral_deploy/keys.py; `python -m pixtral_deploy.keys`
    # rewrites the table.
    assert readme_table() in README, "README's configuration table differs from CONFIG_KEYS: run " \
                                     "`.venv/bin/python -m pixtral_deploy.keys`"
