"""The README's examples are the contract: every command and option it shows must exist."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgecls.cli import _register_subcommands, app

README = Path(__file__).resolve().parents[1] / "README.md"


def _examples() -> list[list[str]]:
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    commands = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("edgecls "):
                commands.append(shlex.split(line)[1:])
    return commands


def _command_path(words: list[str]) -> list[str]:
    if words[0] == "package":  # 'edgecls package RUN_DIR' is 'package make RUN_DIR'
        return words[:2] if words[1:2] == ["verify"] else ["package", "make"]
    return words[:2] if words[0] in ("field", "fleet", "store") else words[:1]


EXAMPLES = _examples()


def test_readme_shows_the_two_commands_and_they_exist() -> None:
    text = README.read_text(encoding="utf-8")
    for script in ("scripts/demo", "scripts/test"):
        assert script in text
        path = README.parent / script
        assert path.is_file() and os.access(path, os.X_OK), script
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("words", EXAMPLES, ids=[" ".join(w[:3]) for w in EXAMPLES])
def test_every_readme_example_names_real_options(words: list[str]) -> None:
    _register_subcommands()
    path = _command_path(words)
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for option in (w.split("=", 1)[0] for w in words if w.startswith("--")):
        assert option in result.output, f"README uses {option} with 'edgecls {' '.join(path)}', which has no such option"
