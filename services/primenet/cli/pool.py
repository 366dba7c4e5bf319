"""The pool owner's commands against the orchestrator's admin API: nodes, tasks and a node's task logs.

    primenet nodes ls [--status S]           the pool's nodes with health, task and last heartbeat
    primenet nodes show NODE                 one node, with its hardware
    primenet tasks create --name N --image I [--command "..."] [--entrypoint "..."] [--env K=V ...]
                          [--gpus N] [--nodes N|all] [--requirements R]
                          [--cpus C] [--memory-mib M] [--shm-mib S] [--max-restarts R] [--root]
    primenet tasks ls | show TASK | rm TASK  TASK is the task's id or its name
    primenet logs NODE [--tail N] [--follow]  the logs of the task container on one node

Every command takes `--url` (PRIMENET_ORCHESTRATOR_URL, default http://127.0.0.1:8090), `--token-file`,
`--timeout` and `--json` (the orchestrator's JSON as it sent it), declared once by `pool_command`. The admin token
comes from a file only its owner can read (`--token-file`, PRIMENET_ADMIN_TOKEN_FILE) or else from
PRIMENET_ADMIN_TOKEN (`primenet.core.keys.load_secret`), never from an argument. Exit codes: 0 done, 1 refused
(the orchestrator answered 4xx: its error code and message are printed), 2 could not run (no token, a malformed
URL, the orchestrator unreachable or failing).
"""

from __future__ import annotations

import functools
import inspect
import json
import shlex
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, get_type_hints

import typer
from pydantic import BaseModel
from rich.console import RenderableType

from primenet.cli.options import http_url
from primenet.cli.output import console, err_console, fail
from primenet.cli.tables import node_table, nodes_table, task_tables, tasks_table
from primenet.core.keys import TokenError, load_admin_token
from primenet.orchestrator.client import OrchestratorClient, RefusedError, UnusableError
from primenet.orchestrator.models import NodeList

TOKEN_ENV = "PRIMENET_ADMIN_TOKEN"  # noqa: S105 (a variable name, not a token)
TOKEN_FILE_ENV = "PRIMENET_ADMIN_TOKEN_FILE"  # noqa: S105 (a variable name)
URL_ENV = "PRIMENET_ORCHESTRATOR_URL"
DEFAULT_URL = "http://127.0.0.1:8090"

__all__ = ["TokenError", "load_token", "pool_command", "register"]


def load_token(token_file: Path | None, environ: Mapping[str, str] | None = None) -> str:
    """The admin token: from `token_file` when one is given (it must be 0600), else from $PRIMENET_ADMIN_TOKEN."""
    return load_admin_token(TOKEN_ENV, token_file, file_option="--token-file", environ=environ).get_secret_value()


# --- the options every command takes, declared once -------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    """What the shared options say: where the orchestrator is, how to authenticate, how to print."""

    url: str
    token_file: Path | None
    timeout_s: float
    as_json: bool

    def session(self) -> Session:
        """The client for one command; refusals exit 1 and an orchestrator that cannot be asked exits 2."""
        try:
            token = load_token(self.token_file)
        except TokenError as exc:
            fail(str(exc), 2)
        try:
            return Session(OrchestratorClient(self.url, token, timeout_s=self.timeout_s))
        except UnusableError as exc:
            fail(str(exc), 2)

    def show(self, answer: BaseModel, *tables: RenderableType) -> None:
        """`answer` as the orchestrator's JSON with --json, else `tables` for people."""
        if self.as_json:
            typer.echo(json.dumps(answer.model_dump(mode="json"), indent=2))
            return
        for table in tables:
            console.print(table)


_SHARED = [
    inspect.Parameter(
        "url",
        inspect.Parameter.KEYWORD_ONLY,
        default=DEFAULT_URL,
        annotation=Annotated[str, typer.Option("--url", envvar=URL_ENV, help="The orchestrator's base URL.")],
    ),
    inspect.Parameter(
        "token_file",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            Path | None,
            typer.Option(
                "--token-file",
                envvar=TOKEN_FILE_ENV,
                help=f"File holding the admin token (mode 0600); else ${TOKEN_ENV} is used.",
            ),
        ],
    ),
    inspect.Parameter(
        "timeout",
        inspect.Parameter.KEYWORD_ONLY,
        default=30.0,
        annotation=Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds to wait for each answer.")],
    ),
    inspect.Parameter(
        "as_json",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[bool, typer.Option("--json", help="Print the orchestrator's JSON instead of tables.")],
    ),
]


def pool_command(command: Callable[..., None]) -> Callable[..., None]:
    """`command(pool: Pool, ...)` as a Typer command that also takes `--url`, `--token-file`, `--timeout` and
    `--json` (after its own options: `primenet tasks ls --json`), handed to it as `pool`."""
    hints = get_type_hints(command, include_extras=True)
    own = [
        parameter.replace(annotation=hints[parameter.name])
        for parameter in inspect.signature(command).parameters.values()
        if parameter.name != "pool"
    ]

    @functools.wraps(command)
    def run(*args: Any, url: str, token_file: Path | None, timeout: float, as_json: bool, **kwargs: Any) -> None:
        pool = Pool(url=http_url(url), token_file=token_file, timeout_s=timeout, as_json=as_json)
        command(pool, *args, **kwargs)

    # Typer reads the parameters from the signature: the command's own, then the shared ones.
    parameters = [*own, *_SHARED]
    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    return run


@dataclass
class Session:
    """Runs one command's calls; refusals exit 1 and an orchestrator that cannot be asked exits 2."""

    client: OrchestratorClient

    def __enter__(self) -> OrchestratorClient:
        return self.client

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.client.close()
        if isinstance(exc, RefusedError):
            fail(f"{exc.code}: {exc.message} (HTTP {exc.status})", 1)
        if isinstance(exc, UnusableError):
            fail(str(exc), 2)


# --- parsing of the task options --------------------------------------------------------------------------------


def parse_argv(text: str, option: str) -> list[str]:
    """A shell-like string ("python -c 'print(1)'") -> argv; an empty or unbalanced one is a bad parameter."""
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{option} {text!r}: {exc}") from None
    if not argv:
        raise typer.BadParameter(f"{option} is empty")
    return argv


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """`K=V` pairs -> a dict; the value may hold `=` and be empty, the name may not; a repeated name is refused."""
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"--env {pair!r} is not NAME=VALUE")
        if name in env:
            raise typer.BadParameter(f"--env {name} is given twice")
        env[name] = value
    return env


def parse_nodes(text: str) -> int | str:
    """`--nodes`: a count >= 1 or `all`."""
    if text.strip().lower() == "all":
        return "all"
    try:
        count = int(text)
    except ValueError:
        raise typer.BadParameter(f"--nodes {text!r} is not a number or 'all'") from None
    if count < 1:
        raise typer.BadParameter("--nodes must be at least 1 (or 'all')")
    return count


def task_body(
    *,
    name: str,
    image: str,
    command: str | None,
    entrypoint: str | None,
    env: Sequence[str],
    gpus: int,
    nodes: str,
    requirements: str,
    cpus: float | None = None,
    memory_mib: int | None = None,
    shm_mib: int | None = None,
    max_restarts: int | None = None,
    root: bool = False,
) -> dict[str, Any]:
    """The `POST /tasks` body from the command's options; the orchestrator checks the rest and says what is wrong.
    Limits not given are left out: the orchestrator's defaults apply, and each miner caps them."""
    limits = {
        "cpu_limit": cpus,
        "memory_limit_mib": memory_mib,
        "shm_size_mib": shm_mib,
        "max_restarts": max_restarts,
        "run_as_root": root or None,
    }
    return {
        **{key: value for key, value in limits.items() if value is not None},
        "name": name,
        "image": image,
        "command": parse_argv(command, "--command") if command is not None else None,
        "entrypoint": parse_argv(entrypoint, "--entrypoint") if entrypoint is not None else None,
        "env": parse_env(env),
        "gpus": gpus,
        "nodes": parse_nodes(nodes),
        "requirements": requirements,
    }


# --- logs -------------------------------------------------------------------------------------------------------


def log_lines(logs: str | Sequence[str] | None) -> list[str]:
    """The `logs` field as lines, whether the orchestrator sends one string or a list of lines."""
    if logs is None:
        return []
    if isinstance(logs, str):
        return logs.splitlines()
    return [str(line) for line in logs]


def new_lines(previous: Sequence[str], current: Sequence[str]) -> list[str]:
    """What `current` (a later tail of the same log) adds after `previous`.

    The longest suffix of `previous` that is a prefix of `current` is the overlap; what follows it is new. With no
    overlap the whole of `current` is new (the log moved on by more than the tail, or the container was replaced).
    """
    for start in range(max(0, len(previous) - len(current)), len(previous)):
        overlap = len(previous) - start
        if list(previous[start:]) == list(current[:overlap]):
            return list(current[overlap:])
    return list(current)


def follow_logs(client: OrchestratorClient, node: str, tail: int, interval_s: float) -> Iterator[list[str]]:
    """The first tail, then every `interval_s` the lines added since; ends on Ctrl-C."""
    previous: list[str] = []
    while True:
        current = log_lines(client.logs(node, tail).logs)
        yield new_lines(previous, current)
        previous = current
        time.sleep(interval_s)


# --- commands ---------------------------------------------------------------------------------------------------

nodes_app = typer.Typer(help="The pool's nodes as the orchestrator sees them.", no_args_is_help=True)
tasks_app = typer.Typer(help="Create, list, show and remove tasks.", no_args_is_help=True)
NodeRef = Annotated[str, typer.Argument(metavar="NODE", help="The node's address.")]
TaskRef = Annotated[str, typer.Argument(metavar="TASK", help="The task's id or name.")]


@nodes_app.command("ls")
@pool_command
def nodes_ls(
    pool: Pool,
    status: Annotated[
        list[str] | None, typer.Option("--status", help="Only nodes with this status (repeatable).")
    ] = None,
) -> None:
    """List the nodes with their status, task, last heartbeat and GPUs."""
    with pool.session() as client:
        body = client.nodes()
    if status:
        wanted = {value.lower() for value in status}
        body = NodeList(counts=body.counts, nodes=[view for view in body.nodes if view.status.value in wanted])
    pool.show(body, nodes_table(body))


@nodes_app.command("show")
@pool_command
def nodes_show(pool: Pool, node: NodeRef) -> None:
    """Show one node: status, endpoint, task, last heartbeat and hardware."""
    with pool.session() as client:
        view = client.node(node.lower())
    pool.show(view, node_table(view))


@tasks_app.command("create")
@pool_command
def tasks_create(
    pool: Pool,
    name: Annotated[str, typer.Option("--name", help="A unique name for the task.")],
    image: Annotated[str, typer.Option("--image", help="The container image, e.g. ubuntu:24.04.")],
    command: Annotated[
        str | None, typer.Option("--command", help="The container's command, split like a shell does.")
    ] = None,
    entrypoint: Annotated[
        str | None, typer.Option("--entrypoint", help="Replaces the image's entrypoint, split like a shell does.")
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", "-e", metavar="NAME=VALUE", help="An environment variable (repeatable)."),
    ] = None,
    gpus: Annotated[int, typer.Option("--gpus", min=0, help="GPUs per node (0: none).")] = 0,
    nodes: Annotated[str, typer.Option("--nodes", metavar="N|all", help="How many nodes run it, or all.")] = "1",
    requirements: Annotated[
        str, typer.Option("--requirements", help='What a node must have, e.g. "gpu:count=1;gpu:model=H100".')
    ] = "",
    cpus: Annotated[float | None, typer.Option("--cpus", help="CPUs per container (each miner caps it).")] = None,
    memory_mib: Annotated[
        int | None, typer.Option("--memory-mib", help="Memory limit in MiB (each miner caps it).")
    ] = None,
    shm_mib: Annotated[int | None, typer.Option("--shm-mib", help="Shared memory (shm) in MiB (default 64).")] = None,
    max_restarts: Annotated[
        int | None, typer.Option("--max-restarts", help="Restarts after a failure (default 3; 0: none).")
    ] = None,
    root: Annotated[bool, typer.Option("--root", help="Run as root; only miners that allow it run the task.")] = False,
) -> None:
    """Create a task; the scheduler assigns it to nodes, which are nudged to beat at once and start it."""
    body = task_body(
        name=name,
        image=image,
        command=command,
        entrypoint=entrypoint,
        env=env or [],
        gpus=gpus,
        nodes=nodes,
        requirements=requirements,
        cpus=cpus,
        memory_mib=memory_mib,
        shm_mib=shm_mib,
        max_restarts=max_restarts,
        root=root,
    )
    with pool.session() as client:
        task = client.create_task(body)
    pool.show(task, *task_tables(task))


@tasks_app.command("ls")
@pool_command
def tasks_ls(pool: Pool) -> None:
    """List the tasks with their image, placement and the state of their assignments."""
    with pool.session() as client:
        listing = client.tasks()
    pool.show(listing, tasks_table(listing.tasks))


@tasks_app.command("show")
@pool_command
def tasks_show(pool: Pool, task: TaskRef) -> None:
    """Show one task and where it runs, with each node's state and container details."""
    with pool.session() as client:
        found = client.task(task)
    pool.show(found, *task_tables(found))


@tasks_app.command("rm")
@pool_command
def tasks_rm(pool: Pool, task: TaskRef) -> None:
    """Remove a task; its nodes are nudged to beat at once and remove its container."""
    with pool.session() as client:
        found = client.task(task)
        deleted = client.delete_task(found.id)
    if pool.as_json:
        pool.show(deleted)
    else:
        console.print(f"deleted task {found.name} ({deleted.deleted})", highlight=False, markup=False)


@pool_command
def logs(
    pool: Pool,
    node: NodeRef,
    tail: Annotated[int, typer.Option("--tail", "-n", min=1, max=100_000, help="Lines from the end.")] = 100,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C stops).")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.2, help="Seconds between polls with --follow.")] = 2.0,
) -> None:
    """Print the logs of the task container on NODE (fetched from its miner through the orchestrator)."""
    if follow and pool.as_json:
        fail("--follow and --json do not go together", 2)
    with pool.session() as client:
        if not follow:
            body = client.logs(node.lower(), tail)
            if pool.as_json:
                pool.show(body)
            else:
                for line in log_lines(body.logs):
                    typer.echo(line)
            return
        try:
            for lines in follow_logs(client, node.lower(), tail, interval):
                for line in lines:
                    typer.echo(line)
        except KeyboardInterrupt:
            err_console.print("[dim]stopped[/dim]")


def register(app: typer.Typer) -> None:
    """Add `nodes`, `tasks` and `logs` to the `primenet` command."""
    app.add_typer(nodes_app, name="nodes")
    app.add_typer(tasks_app, name="tasks")
    app.command("logs")(logs)
