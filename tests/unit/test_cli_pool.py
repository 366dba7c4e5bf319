"""`primenet nodes|tasks|logs`: option parsing, the admin token's sources, tables, log following and exit codes
that need no orchestrator (the commands against a real one are in tests/integration/test_pool_cli.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import typer
from rich.console import Console, RenderableType
from typer.testing import CliRunner

from primenet.cli import pool, tables
from primenet.devnet.processes import free_port
from primenet.orchestrator.client import error_of
from primenet.orchestrator.models import NodeList, NodeView, TaskView

pytestmark = pytest.mark.unit
runner = CliRunner()
NOW = 1_764_000_000.0
NODE = "0x15d34aaf54267db7d7c367839aaf71a00a2c6a65"
TASK_ID = "3f2a" + "0" * 28


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    pool.register(app)
    return app


def rendered(table: RenderableType) -> str:
    console = Console(width=300, record=True, color_system=None)
    console.print(table)
    return console.export_text()


# --- options -------------------------------------------------------------------------------------------------


def test_task_body_parses_command_entrypoint_env_and_nodes() -> None:
    body = pool.task_body(
        name="train",
        image="busybox:1.36",
        command="""sh -c 'echo "hello world"; sleep 5'""",
        entrypoint="/bin/env --",
        env=["A=1", "B=x=y", "EMPTY="],
        gpus=2,
        nodes="all",
        requirements="gpu:count=1",
    )
    assert body == {
        "name": "train",
        "image": "busybox:1.36",
        "command": ["sh", "-c", 'echo "hello world"; sleep 5'],
        "entrypoint": ["/bin/env", "--"],
        "env": {"A": "1", "B": "x=y", "EMPTY": ""},
        "gpus": 2,
        "nodes": "all",
        "requirements": "gpu:count=1",
    }


def test_task_body_without_command_sends_null() -> None:
    body = pool.task_body(
        name="t", image="i", command=None, entrypoint=None, env=[], gpus=0, nodes="3", requirements=""
    )
    assert (body["command"], body["entrypoint"], body["nodes"], body["env"]) == (None, None, 3, {})


@pytest.mark.parametrize(("text", "expected"), [("1", 1), ("12", 12), ("all", "all"), ("ALL", "all"), (" all ", "all")])
def test_nodes_option(text: str, expected: int | str) -> None:
    assert pool.parse_nodes(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "some", "", "1.5"])
def test_bad_nodes_option(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        pool.parse_nodes(text)


@pytest.mark.parametrize("pairs", [["NOEQUALS"], ["=value"], ["A=1", "A=2"]])
def test_bad_env_pairs(pairs: list[str]) -> None:
    with pytest.raises(typer.BadParameter):
        pool.parse_env(pairs)


@pytest.mark.parametrize("text", ["", "   ", "echo 'unbalanced"])
def test_bad_command_strings(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        pool.parse_argv(text, "--command")


def test_a_bad_option_exits_2_before_any_request(cli: typer.Typer) -> None:
    # Port 9 (discard) on loopback: nothing listens, so reaching the network would fail differently.
    result = runner.invoke(
        cli,
        ["tasks", "create", "--name", "t", "--image", "i", "--nodes", "none", "--url", "http://127.0.0.1:9"],
        env={"PRIMENET_ADMIN_TOKEN": "x" * 32, "COLUMNS": "300"},
    )
    assert result.exit_code == 2
    assert "--nodes 'none' is not a number or 'all'" in result.output


# --- the admin token ----------------------------------------------------------------------------------------


def test_token_from_the_environment() -> None:
    assert pool.load_token(None, {"PRIMENET_ADMIN_TOKEN": " tok-en \n"}) == "tok-en"


def test_no_token_is_a_clear_error() -> None:
    with pytest.raises(pool.TokenError, match="set PRIMENET_ADMIN_TOKEN or give --token-file"):
        pool.load_token(None, {})


def test_token_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "admin.token"
    path.write_text("a-long-enough-admin-token\n")
    path.chmod(0o644)
    with pytest.raises(pool.TokenError, match="chmod 600"):
        pool.load_token(path, {})
    path.chmod(0o600)
    assert pool.load_token(path, {}) == "a-long-enough-admin-token"


def test_token_file_wins_over_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "admin.token"
    path.write_text("from-the-file")
    path.chmod(0o600)
    assert pool.load_token(path, {"PRIMENET_ADMIN_TOKEN": "from-env"}) == "from-the-file"


@pytest.mark.parametrize("content", [None, ""])
def test_missing_or_empty_token_file(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "admin.token"
    if content is not None:
        path.write_text(content)
        path.chmod(0o600)
    with pytest.raises(pool.TokenError, match="does not exist" if content is None else "is empty"):
        pool.load_token(path, {})


def test_without_a_token_every_command_exits_2(cli: typer.Typer) -> None:
    for args in (["nodes", "ls"], ["nodes", "show", NODE], ["tasks", "ls"], ["tasks", "rm", "x"], ["logs", NODE]):
        result = runner.invoke(cli, args, env={"PRIMENET_ADMIN_TOKEN": "", "PRIMENET_ADMIN_TOKEN_FILE": ""})
        assert result.exit_code == 2, (args, result.output)
        assert "no admin token" in result.output


def test_the_token_is_not_an_argument(cli: typer.Typer) -> None:
    result = runner.invoke(cli, ["tasks", "ls", "--token", "secret-secret-secret"])
    assert result.exit_code == 2
    assert "No such option" in result.output


def test_an_unreachable_orchestrator_exits_2(cli: typer.Typer) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # a free port: nothing listens there
    result = runner.invoke(cli, ["tasks", "ls", "--url", url], env={"PRIMENET_ADMIN_TOKEN": "x" * 32, "COLUMNS": "300"})
    assert result.exit_code == 2
    assert f"cannot reach the orchestrator at {url}" in result.output


# --- answers ------------------------------------------------------------------------------------------------


def test_error_of_reads_the_error_shape_and_survives_other_bodies() -> None:
    shaped = httpx.Response(409, json={"error": {"code": "task_name_taken", "message": "train exists"}})
    assert error_of(shaped) == ("task_name_taken", "train exists")
    assert error_of(httpx.Response(404, text="<html>nope</html>")) == ("http_404", "<html>nope</html>")
    assert error_of(httpx.Response(400, json=["not", "an", "object"])) == ("http_400", '["not","an","object"]')
    assert error_of(httpx.Response(502)) == ("http_502", "Bad Gateway")


# --- tables -------------------------------------------------------------------------------------------------


def test_ago() -> None:
    assert tables.ago(NOW - 5, NOW) == "5s ago"
    assert tables.ago(NOW - 125, NOW) == "2m ago"
    assert tables.ago(NOW - 3 * 3600 - 1, NOW) == "3h ago"
    assert tables.ago(NOW - 2 * 86400, NOW) == "2d ago"
    assert tables.ago(NOW + 30, NOW) == "in the future"
    assert tables.ago(None, NOW) == "-"
    assert tables.ago(True, NOW) == "-"


def test_nodes_table() -> None:
    body = NodeList.model_validate(
        {
            "counts": {"healthy": 1, "dead": 1},
            "nodes": [
                {
                    "address": NODE,
                    "status": "healthy",
                    "status_since": NOW - 90,
                    "ip": "10.0.0.7",
                    "port": 8091,
                    "task_id": "t-1",
                    "task_state": "running",
                    "last_heartbeat": NOW - 4,
                    "version": "0.1.0",
                    "specs": {
                        "gpus": [{"index": i, "model": "NVIDIA H100 80GB HBM3", "memory_mib": 81559} for i in (0, 1)]
                    },
                },
                {
                    "address": "0x" + "ab" * 20,
                    "status": "dead",
                    "status_since": NOW - 600,
                    "ip": "10.0.0.8",
                    "port": 8091,
                    "task_id": None,
                    "task_state": None,
                    "last_heartbeat": None,
                    "version": None,
                    "specs": None,
                },
            ],
        }
    )
    text = rendered(tables.nodes_table(body, NOW))
    assert "2 node(s): 1 dead, 1 healthy" in text
    first = next(line for line in text.splitlines() if NODE in line)
    for cell in ("healthy", "1m ago", "10.0.0.7:8091", "t-1", "running", "4s ago", "0.1.0", "2x NVIDIA H100 80GB HBM3"):
        assert cell in first, cell
    second = next(line for line in text.splitlines() if "abab" in line)
    assert "dead" in second
    assert second.count(" - ") >= 5


def test_node_table_lists_the_hardware() -> None:
    view = NodeView.model_validate(
        {
            "address": NODE,
            "status": "healthy",
            "status_since": NOW - 10,
            "ip": "10.0.0.7",
            "port": 8091,
            "task_id": None,
            "task_state": None,
            "last_heartbeat": NOW - 1,
            "version": "0.1.0",
            "specs": {
                "gpus": [{"index": 0, "model": "NVIDIA A100", "memory_mib": 40960}],
                "cpu_cores": 32,
                "ram_mib": 256000,
                "cuda_version": "12.4",
            },
        }
    )
    text = rendered(tables.node_table(view, NOW))
    assert "1x NVIDIA A100" in text
    assert "NVIDIA A100, 40960 MiB" in text
    assert "CPU cores" in text
    assert "2025-11-24 15:59:59Z (1s ago)" in text


def test_task_tables() -> None:
    task = TaskView.model_validate(
        {
            "id": TASK_ID,
            "name": "train",
            "image": "busybox:1.36",
            "command": ["sh", "-c", "echo hi; sleep 5"],
            "entrypoint": None,
            "env": {"B": "2", "A": "1"},
            "gpus": 1,
            "nodes": "all",
            "requirements": "",
            "created_at": NOW - 60,
            "assignments": {
                NODE: {
                    "state": "running",
                    "details": {"container_id": "0123456789abcdef0123", "status": "running", "exit_code": None},
                    "updated_at": NOW - 3,
                },
                "0x" + "ab" * 20: {"state": "pulling", "details": None, "updated_at": NOW - 8},
            },
        }
    )
    summary, placed = (rendered(table) for table in tables.task_tables(task, NOW))
    assert f"task train ({TASK_ID})" in summary
    assert "sh -c 'echo hi; sleep 5'" in summary
    assert "A=1, B=2" in summary
    assert "2 assignment(s)" in placed
    line = next(line for line in placed.splitlines() if NODE in line)
    assert "running" in line
    assert "3s ago" in line
    assert "container=0123456789ab status=running" in line
    assert "exit_code" not in line
    listing = rendered(tables.tasks_table([task], NOW))
    assert "1 task(s)" in listing
    assert "1 pulling, 1 running" in listing
    assert "1m ago" in listing


# --- logs ---------------------------------------------------------------------------------------------------


def test_log_lines_accepts_text_or_lines() -> None:
    assert pool.log_lines("a\nb\n") == ["a", "b"]
    assert pool.log_lines(["a", "b"]) == ["a", "b"]
    assert pool.log_lines(None) == []


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        ([], ["a", "b"], ["a", "b"]),  # the first tail: all of it
        (["a", "b"], ["a", "b"], []),  # nothing new
        (["a", "b", "c"], ["b", "c", "d", "e"], ["d", "e"]),  # the window moved on
        (["a", "b"], ["a", "b", "c"], ["c"]),  # the log grew within the tail
        (["x", "y"], ["p", "q"], ["p", "q"]),  # no overlap: moved on by more than the tail
        (["a", "a"], ["a", "a", "a"], ["a"]),  # repeated lines: the longest overlap wins
    ],
)
def test_new_lines(previous: list[str], current: list[str], expected: list[str]) -> None:
    assert pool.new_lines(previous, current) == expected


def test_help_of_every_command(cli: typer.Typer) -> None:
    for args, expected in (
        (["nodes", "ls"], "List the nodes"),
        (["nodes", "show"], "Show one node"),
        (["tasks", "create"], "Create a task"),
        (["tasks", "ls"], "List the tasks"),
        (["tasks", "show"], "Show one task"),
        (["tasks", "rm"], "Remove a task"),
        (["logs"], "Print the logs"),
    ):
        result = runner.invoke(cli, [*args, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert expected in result.output
        assert "PRIMENET_ORCHESTRATOR_URL" in result.output
