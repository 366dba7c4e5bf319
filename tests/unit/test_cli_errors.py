"""Bad input to a command ends in exit 2 and one line naming the problem: never a traceback, never a dump.

In-process through `CliRunner`, where an exception that escapes a command shows as `result.exception` (exit 1);
one case runs the installed `primenet` as a person does and reads its stderr for a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from primenet.cli.main import app
from primenet.devnet.accounts import role_account

pytestmark = pytest.mark.unit
PRIMENET = str(Path(sys.executable).with_name("primenet"))
NODE = "0x15d34aaf54267db7d7c367839aaf71a00a2c6a65"
KEYS = {
    "PRIMENET_PROVIDER_KEY": role_account("provider").key.hex(),
    "PRIMENET_NODE_KEY": role_account("node").key.hex(),
    "PRIMENET_MANAGER_KEY": role_account("orchestrator").key.hex(),
    "PRIMENET_VALIDATOR_KEY": role_account("validator").key.hex(),
    "PRIMENET_ADMIN_TOKEN": "cli-errors-test-admin-token-0123456789",
}
# Every command that reads the deployment file before it serves or sends anything.
READS_DEPLOYMENT = [["discovery"], ["orchestrator"], ["miner", "run"], ["miner", "balance"], ["miner", "deregister"]]


@pytest.fixture(autouse=True)
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No `.env` and no `.devnet/` of this checkout, no PRIMENET_* of the caller: only what each test gives."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("PRIMENET_"):
            monkeypatch.delenv(name)


def invoke(args: list[str], **env: str) -> Result:
    return CliRunner().invoke(app, args, env={"COLUMNS": "80", **KEYS, **env})


def one_line_exit_2(result: Result, *expected: str) -> str:
    """The result is exit 2 with exactly one line, on stderr, that says each of `expected`."""
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout.strip() == ""
    assert "Traceback" not in result.output
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def deployment_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Bad deployment files, each with what its message must say."""
    malformed = tmp_path / "malformed.json"
    malformed.write_text("{not json")
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"chain_id": "thirty-one", "block": 0}')
    return {
        "missing": (tmp_path / "nowhere.json", "no deployment file at"),
        "directory": (tmp_path, "is a directory"),
        "malformed": (malformed, "is not a deployment file: Invalid JSON"),
        "not a deployment": (wrong, "is not a deployment file: chain_id"),
    }


@pytest.mark.parametrize("command", READS_DEPLOYMENT, ids=" ".join)
@pytest.mark.parametrize("case", ["missing", "directory", "malformed", "not a deployment"])
def test_a_bad_deployment_file(command: list[str], case: str, tmp_path: Path) -> None:
    path, message = deployment_files(tmp_path)[case]
    result = invoke(command, PRIMENET_DEPLOYMENT_FILE=str(path), PRIMENET_STORAGE_PATH=str(tmp_path / "storage"))
    line = one_line_exit_2(result, message)
    assert str(path) in line


def test_an_unknown_challenge_backend_stops_miner_run_before_the_chain(tmp_path: Path) -> None:
    # The RPC is a port nobody listens on and the deployment file is absent: the settings are refused first.
    result = invoke(["miner", "run"], PRIMENET_CHALLENGE_BACKEND="tpu", PRIMENET_RPC_URL="http://127.0.0.1:9")
    one_line_exit_2(result, "invalid miner settings", "PRIMENET_CHALLENGE_BACKEND", "'numpy'")


def test_bad_settings_are_one_line_naming_each_variable() -> None:
    result = invoke(["miner", "balance"], PRIMENET_PORT="eighty", PRIMENET_POOL_ID="-1")
    line = one_line_exit_2(result, "invalid miner settings", "PRIMENET_PORT", "PRIMENET_POOL_ID")
    assert "; " in line


@pytest.mark.parametrize(
    "args",
    [
        ["validator", "challenge", NODE, "--url", "http://[x"],
        ["nodes", "ls", "--url", "http://[x"],
    ],
    ids=["validator challenge", "nodes ls"],
)
def test_a_malformed_url(args: list[str]) -> None:
    one_line_exit_2(invoke(args), "--url 'http://[x' is not a URL", "Invalid IPv6 URL")


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:8091", "127.0.0.1:8091", "http://", "http://host:99999"])
def test_urls_that_are_not_http_with_a_host(url: str) -> None:
    one_line_exit_2(invoke(["validator", "challenge", NODE, "--url", url]), f"--url {url!r}")


def test_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    malformed = tmp_path / "deployment.json"
    malformed.write_text("[]")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIMENET_")}
    result = subprocess.run(
        [PRIMENET, "miner", "balance"],
        env={**env, **KEYS, "PRIMENET_DEPLOYMENT_FILE": str(malformed)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {malformed} is not a deployment file: Input should be an object"
    ]
