"""The `primenet` command line: every command explains itself, and the version is printed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from primenet import __version__
from primenet.cli.main import app

pytestmark = pytest.mark.unit
runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"primenet {__version__}"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "devnet"),
        (["devnet"], "Run a local network"),
        (["devnet", "demo"], "Run a task on the devnet"),
        (["devnet", "up"], "wait until everything answers"),
        (["devnet", "down"], "Stop exactly the processes"),
        (["devnet", "status"], "Show what runs where"),
        (["devnet", "restart"], "Stop one process of the running devnet and start it again"),
    ],
)
def test_every_command_has_help(args: list[str], expected: str) -> None:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert expected in result.output
