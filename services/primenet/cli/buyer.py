"""The pool owner's commands against the orchestrator's API: nodes, tasks and a node's task logs.

    primenet nodes ls [--status S]           the pool's nodes with health, task and last heartbeat
    primenet nodes show NODE                 one node, with its hardware
    primenet tasks create --name N --image I [--command "..."] [--entrypoint "..."] [--env K=V ...]
                          [--gpus N] [--nodes N|all] [--requirements R]
    primenet tasks ls | show TASK | rm TASK  TASK is the task's id or its name
    primenet logs NODE [--tail N] [--follow]  the logs of the task container on one node

Every command takes `--url` (PRIMENET_ORCHESTRATOR_URL, default http://127.0.0.1:8090) and `--json`. The admin
token comes from PRIMENET_ADMIN_TOKEN or a file only its owner can read (`--token-file`,
PRIMENET_ADMIN_TOKEN_FILE), never from an argument. Exit codes: 0 done, 1 refused (the orchestrator answered
4xx: its error code and message are printed), 2 could not run (no token, orchestrator unreachable or failing).
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import quote

import httpx
import typer
from rich.table import Table

from primenet.cli.output import console, err_console, fail

TOKEN_ENV = "PRIMENET_ADMIN_TOKEN"  # noqa: S105 (a variable name, not a token)
TOKEN_FILE_ENV = "PRIMENET_ADMIN_TOKEN_FILE"  # noqa: S105 (a variable name)
URL_ENV = "PRIMENET_ORCHESTRATOR_URL"
DEFAULT_URL = "http://127.0.0.1:8090"

Json = dict[str, Any]

# --- options shared by every command (they go after the command name: `primenet tasks ls --json`) -----------

Url = Annotated[str, typer.Option("--url", envvar=URL_ENV, help="The orchestrator's base URL.")]
TokenFile = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        envvar=TOKEN_FILE_ENV,
        help=f"File holding the admin token (mode 0600); else ${TOKEN_ENV} is used.",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the orchestrator's JSON instead of tables.")]
Timeout = Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds to wait for each answer.")]


class TokenError(ValueError):
    """No admin token, or one kept where others can read it."""


def load_token(token_file: Path | None, environ: Mapping[str, str] | None = None) -> str:
    """The admin token from `token_file` when one is given (it must be 0600), else from $PRIMENET_ADMIN_TOKEN."""
    if token_file is not None:
        try:
            mode = token_file.stat().st_mode
        except FileNotFoundError:
            raise TokenError(f"token file {token_file} does not exist") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TokenError(
                f"token file {token_file} is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
                f"run: chmod 600 {token_file}"
            )
        token = token_file.read_text().strip()
        if not token:
            raise TokenError(f"token file {token_file} is empty")
        return token
    token = (os.environ if environ is None else environ).get(TOKEN_ENV, "").strip()
    if not token:
        raise TokenError(f"no admin token: set {TOKEN_ENV} or give --token-file (a file with mode 0600)")
    return token


class RefusedError(Exception):
    """The orchestrator answered 4xx: it understood and said no."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class UnusableError(Exception):
    """The orchestrator could not be asked: unreachable, timed out, 5xx, or not an orchestrator at all."""


def error_of(response: httpx.Response) -> tuple[str, str]:
    """The `{"error": {"code", "message"}}` of a refusal; a readable stand-in when the body is something else."""
    try:
        error = response.json().get("error")
        return str(error["code"]), str(error["message"])
    except (ValueError, AttributeError, KeyError, TypeError):
        text = response.text.strip().replace("\n", " ")[:200]
        return f"http_{response.status_code}", text or response.reason_phrase


class OrchestratorClient:
    """The orchestrator's admin API, one call per method; every answer is JSON or an exception above."""

    def __init__(self, url: str, token: str, *, timeout_s: float = 30.0, transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout_s,
            transport=transport,
        )

    def __enter__(self) -> OrchestratorClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Json:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise UnusableError(f"the orchestrator at {self.url} did not answer {method} {path} in time") from None
        except httpx.HTTPError as exc:
            raise UnusableError(f"cannot reach the orchestrator at {self.url}: {type(exc).__name__}: {exc}") from None
        if 400 <= response.status_code < 500:
            code, message = error_of(response)
            raise RefusedError(response.status_code, code, message)
        if response.status_code >= 500:
            code, message = error_of(response)
            raise UnusableError(f"the orchestrator could not do it: {code}: {message} (HTTP {response.status_code})")
        try:
            body = response.json()
        except ValueError:
            raise UnusableError(f"{self.url} answered {method} {path} with something that is not JSON") from None
        if not isinstance(body, dict):
            raise UnusableError(f"{self.url} answered {method} {path} with JSON that is not an object")
        return body

    def nodes(self) -> Json:
        return self.request("GET", "/nodes")

    def node(self, address: str) -> Json:
        return self.request("GET", f"/nodes/{quote(address, safe='')}")

    def logs(self, address: str, tail: int) -> Json:
        return self.request("GET", f"/nodes/{quote(address, safe='')}/logs", params={"tail": tail})

    def create_task(self, body: Json) -> Json:
        return self.request("POST", "/tasks", json=body)

    def tasks(self) -> list[Json]:
        tasks = self.request("GET", "/tasks").get("tasks")
        if not isinstance(tasks, list):
            raise UnusableError(f"{self.url} answered GET /tasks without a task list")
        return tasks

    def task(self, ref: str) -> Json:
        """A task by id, or else by its (unique) name."""
        try:
            return self.request("GET", f"/tasks/{quote(ref, safe='')}")
        except RefusedError as exc:
            if exc.status != 404:
                raise
            for task in self.tasks():
                if task.get("name") == ref:
                    return task
            raise

    def delete_task(self, task_id: str) -> Json:
        return self.request("DELETE", f"/tasks/{quote(task_id, safe='')}")


def _call(url: str, token_file: Path | None, timeout_s: float) -> OrchestratorClient:
    try:
        token = load_token(token_file)
    except (TokenError, OSError) as exc:
        fail(str(exc), 2)
    return OrchestratorClient(url, token, timeout_s=timeout_s)


def _refused(exc: RefusedError) -> NoReturn:
    fail(f"{exc.code}: {exc.message} (HTTP {exc.status})", 1)


@dataclass
class _Session:
    """Runs one command's calls; refusals exit 1 and an orchestrator that cannot be asked exits 2."""

    client: OrchestratorClient

    def __enter__(self) -> OrchestratorClient:
        return self.client

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: object) -> None:
        self.client.__exit__()
        if isinstance(exc, RefusedError):
            _refused(exc)
        if isinstance(exc, UnusableError):
            fail(str(exc), 2)


def session(url: str, token_file: Path | None, timeout_s: float) -> _Session:
    return _Session(_call(url, token_file, timeout_s))


def print_json(body: Any) -> None:
    typer.echo(json.dumps(body, indent=2, sort_keys=False))


# --- parsing of the task options --------------------------------------------------------------------------


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
) -> Json:
    """The `POST /tasks` body from the command's options."""
    return {
        "name": name,
        "image": image,
        "command": parse_argv(command, "--command") if command is not None else None,
        "entrypoint": parse_argv(entrypoint, "--entrypoint") if entrypoint is not None else None,
        "env": parse_env(env),
        "gpus": gpus,
        "nodes": parse_nodes(nodes),
        "requirements": requirements,
    }


# --- formatting ---------------------------------------------------------------------------------------------

STATUS_COLOURS = {
    "healthy": "green",
    "running": "green",
    "completed": "green",
    "waiting_for_heartbeat": "yellow",
    "pending": "yellow",
    "pulling": "yellow",
    "restarting": "yellow",
    "unhealthy": "yellow",
    "invited": "yellow",
    "discovered": "cyan",
    "dead": "red",
    "failed": "red",
    "banned": "red",
    "ejected": "red",
}


def coloured(value: Any) -> str:
    if value is None or value == "":
        return "-"
    text = str(value)
    colour = STATUS_COLOURS.get(text.lower())
    return f"[{colour}]{text}[/{colour}]" if colour else text


def ago(timestamp: Any, now: float | None = None) -> str:
    """Unix seconds -> "12s ago", "5m ago", "3h ago", "2d ago"; "-" for none."""
    if not isinstance(timestamp, int | float) or isinstance(timestamp, bool) or timestamp <= 0:
        return "-"
    delta = (time.time() if now is None else now) - float(timestamp)
    if delta < 0:
        return "in the future"
    for unit, seconds in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= seconds:
            return f"{int(delta // seconds)}{unit} ago"
    return f"{int(delta)}s ago"


def when(timestamp: Any, now: float | None = None) -> str:
    """Unix seconds -> "2025-11-25 14:39:07Z (12s ago)"."""
    if not isinstance(timestamp, int | float) or isinstance(timestamp, bool) or timestamp <= 0:
        return "-"
    moment = datetime.fromtimestamp(float(timestamp), UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return f"{moment} ({ago(timestamp, now)})"


def gpu_summary(specs: Any) -> str:
    """ "2x NVIDIA H100 80GB HBM3" (grouped by model), "none" for a node without GPUs, "-" without specs."""
    if not isinstance(specs, dict):
        return "-"
    gpus = specs.get("gpus") or []
    if not gpus:
        return "none"
    counts: dict[str, int] = {}
    for gpu in gpus:
        model = str(gpu.get("model", "?")) if isinstance(gpu, dict) else "?"
        counts[model] = counts.get(model, 0) + 1
    return ", ".join(f"{count}x {model}" for model, count in counts.items())


def endpoint(view: Json) -> str:
    ip, port = view.get("ip"), view.get("port")
    if not ip:
        return "-"
    return f"{ip}:{port}" if port else str(ip)


def nodes_table(body: Json, now: float | None = None) -> Table:
    nodes = body.get("nodes") or []
    counts = body.get("counts") or {}
    summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items())) or "none"
    table = Table(title=f"{len(nodes)} node(s): {summary}")
    for column in ("node", "status", "since", "endpoint", "task", "task state", "heartbeat", "version", "GPUs"):
        table.add_column(column, overflow="fold")
    for view in nodes:
        table.add_row(
            str(view.get("address", "?")),
            coloured(view.get("status")),
            ago(view.get("status_since"), now),
            endpoint(view),
            str(view.get("task_id") or "-"),
            coloured(view.get("task_state")),
            ago(view.get("last_heartbeat"), now),
            str(view.get("version") or "-"),
            gpu_summary(view.get("specs")),
        )
    return table


def node_table(view: Json, now: float | None = None) -> Table:
    table = Table(title=f"node {view.get('address', '?')}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("status", coloured(view.get("status")))
    table.add_row("status since", when(view.get("status_since"), now))
    table.add_row("endpoint", endpoint(view))
    table.add_row("task", str(view.get("task_id") or "-"))
    table.add_row("task state", coloured(view.get("task_state")))
    table.add_row("last heartbeat", when(view.get("last_heartbeat"), now))
    table.add_row("version", str(view.get("version") or "-"))
    specs = view.get("specs")
    table.add_row("GPUs", gpu_summary(specs))
    if isinstance(specs, dict):
        for gpu in specs.get("gpus") or []:
            if isinstance(gpu, dict):
                table.add_row(
                    f"  GPU {gpu.get('index', '?')}", f"{gpu.get('model', '?')}, {gpu.get('memory_mib', '?')} MiB"
                )
        for key, label in (
            ("driver_version", "driver"),
            ("cuda_version", "CUDA"),
            ("cpu_model", "CPU"),
            ("cpu_cores", "CPU cores"),
            ("ram_mib", "RAM (MiB)"),
            ("storage_free_gb", "storage free (GB)"),
        ):
            if specs.get(key) not in (None, ""):
                table.add_row(label, str(specs[key]))
    return table


def assignment_summary(assignments: Any) -> str:
    """{"0x..": {"state": "running"}, ...} -> "2 running, 1 pulling"; "-" for none."""
    if not isinstance(assignments, dict) or not assignments:
        return "-"
    counts: dict[str, int] = {}
    for assignment in assignments.values():
        state = str(assignment.get("state") or "unknown") if isinstance(assignment, dict) else "unknown"
        counts[state] = counts.get(state, 0) + 1
    return ", ".join(f"{count} {coloured(state)}" for state, count in sorted(counts.items()))


def argv_text(argv: Any) -> str:
    return shlex.join(str(part) for part in argv) if isinstance(argv, list) else "-"


def tasks_table(tasks: Sequence[Json], now: float | None = None) -> Table:
    table = Table(title=f"{len(tasks)} task(s)")
    for column in ("id", "name", "image", "command", "GPUs", "nodes", "created", "assignments"):
        table.add_column(column, overflow="fold")
    for task in tasks:
        table.add_row(
            str(task.get("id", "?")),
            str(task.get("name", "?")),
            str(task.get("image", "?")),
            argv_text(task.get("command")),
            str(task.get("gpus", "-")),
            str(task.get("nodes", "-")),
            ago(task.get("created_at"), now),
            assignment_summary(task.get("assignments")),
        )
    return table


def task_tables(task: Json, now: float | None = None) -> list[Table]:
    table = Table(title=f"task {task.get('name', '?')} ({task.get('id', '?')})", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("image", str(task.get("image", "?")))
    table.add_row("entrypoint", argv_text(task.get("entrypoint")))
    table.add_row("command", argv_text(task.get("command")))
    env = task.get("env") or {}
    table.add_row("env", ", ".join(f"{key}={value}" for key, value in sorted(env.items())) or "-")
    table.add_row("GPUs", str(task.get("gpus", "-")))
    table.add_row("nodes", str(task.get("nodes", "-")))
    table.add_row("requirements", str(task.get("requirements") or "-"))
    table.add_row("created", when(task.get("created_at"), now))
    tables = [table]
    assignments = task.get("assignments") or {}
    placed = Table(title=f"{len(assignments)} assignment(s)")
    for column in ("node", "state", "updated", "details"):
        placed.add_column(column, overflow="fold")
    for node, assignment in sorted(assignments.items()):
        assignment = assignment if isinstance(assignment, dict) else {}
        placed.add_row(
            node,
            coloured(assignment.get("state")),
            ago(assignment.get("updated_at"), now),
            details_text(assignment.get("details")),
        )
    tables.append(placed)
    return tables


def details_text(details: Any) -> str:
    """A container's details in one line: `status=running exit_code=0 restarts=1 container=1a2b3c4d5e6f`."""
    if not isinstance(details, dict) or not details:
        return "-" if not details else str(details)
    parts = []
    for key, value in details.items():
        if value is None:
            continue
        if key == "container_id":
            parts.append(f"container={str(value)[:12]}")
        else:
            parts.append(f"{key}={value}")
    return " ".join(parts) or "-"


def log_lines(logs: Any) -> list[str]:
    """The `logs` field as lines, whether the orchestrator sends one string or a list of lines."""
    if logs is None:
        return []
    if isinstance(logs, list):
        return [str(line) for line in logs]
    return str(logs).splitlines()


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


# --- commands -----------------------------------------------------------------------------------------------

nodes_app = typer.Typer(help="The pool's nodes as the orchestrator sees them.", no_args_is_help=True)
tasks_app = typer.Typer(help="Create, list, show and remove tasks.", no_args_is_help=True)


@nodes_app.command("ls")
def nodes_ls(
    status: Annotated[
        list[str] | None, typer.Option("--status", help="Only nodes with this status (repeatable).")
    ] = None,
    url: Url = DEFAULT_URL,
    token_file: TokenFile = None,
    timeout: Timeout = 30.0,
    as_json: AsJson = False,
) -> None:
    """List the nodes with their status, task, last heartbeat and GPUs."""
    with session(url, token_file, timeout) as client:
        body = client.nodes()
    if status:
        wanted = {value.lower() for value in status}
        body = {
            **body,
            "nodes": [view for view in body.get("nodes") or [] if str(view.get("status")).lower() in wanted],
        }
    if as_json:
        print_json(body)
    else:
        console.print(nodes_table(body))


@nodes_app.command("show")
def nodes_show(
    node: Annotated[str, typer.Argument(metavar="NODE", help="The node's address.")],
    url: Url = DEFAULT_URL,
    token_file: TokenFile = None,
    timeout: Timeout = 30.0,
    as_json: AsJson = False,
) -> None:
    """Show one node: status, endpoint, task, last heartbeat and hardware."""
    with session(url, token_file, timeout) as client:
        view = client.node(node.lower())
    if as_json:
        print_json(view)
    else:
        console.print(node_table(view))


@tasks_app.command("create")
def tasks_create(
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
    url: Url = DEFAULT_URL,
    token_file: TokenFile = None,
    timeout: Timeout = 30.0,
    as_json: AsJson = False,
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
    )
    with session(url, token_file, timeout) as client:
        task = client.create_task(body)
    if as_json:
        print_json(task)
    else:
        for table in task_tables(task):
            console.print(table)


@tasks_app.command("ls")
def tasks_ls(
    url: Url = DEFAULT_URL, token_file: TokenFile = None, timeout: Timeout = 30.0, as_json: AsJson = False
) -> None:
    """List the tasks with their image, placement and the state of their assignments."""
    with session(url, token_file, timeout) as client:
        tasks = client.tasks()
    if as_json:
        print_json({"tasks": tasks})
    else:
        console.print(tasks_table(tasks))


TaskRef = Annotated[str, typer.Argument(metavar="TASK", help="The task's id or name.")]


@tasks_app.command("show")
def tasks_show(
    task: TaskRef,
    url: Url = DEFAULT_URL,
    token_file: TokenFile = None,
    timeout: Timeout = 30.0,
    as_json: AsJson = False,
) -> None:
    """Show one task and where it runs, with each node's state and container details."""
    with session(url, token_file, timeout) as client:
        found = client.task(task)
    if as_json:
        print_json(found)
    else:
        for table in task_tables(found):
            console.print(table)


@tasks_app.command("rm")
def tasks_rm(
    task: TaskRef,
    url: Url = DEFAULT_URL,
    token_file: TokenFile = None,
    timeout: Timeout = 30.0,
    as_json: AsJson = False,
) -> None:
    """Remove a task; its nodes are nudged to beat at once and remove its container."""
    with session(url, token_file, timeout) as client:
        found = client.task(task)
        deleted = client.delete_task(str(found["id"]))
    if as_json:
        print_json(deleted)
    else:
        console.print(f"deleted task {found.get('name')} ({deleted.get('deleted', found['id'])})", highlight=False)


def follow_logs(client: OrchestratorClient, node: str, tail: int, interval_s: float) -> Iterator[list[str]]:
    """The first tail, then every `interval_s` the lines added since; ends on Ctrl-C."""
    previous: list[str] = []
    while True:
        current = log_lines(client.logs(node, tail).get("logs"))
        yield new_lines(previous, current)
        previous = current
        time.sleep(interval_s)


def logs(
    node: Annotated[str, typer.Argument(metavar="NODE", help="The node's address.")],
    tail: Annotated[int, typer.Option("--tail", "-n", min=1, max=100_000, help="Lines from the end.")] = 100,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C stops).")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.2, help="Seconds between polls with --follow.")] = 2.0,
    url: Url = DEFAULT_URL,
    token_file: TokenFile = None,
    timeout: Timeout = 30.0,
    as_json: AsJson = False,
) -> None:
    """Print the logs of the task container on NODE (fetched from its miner through the orchestrator)."""
    if follow and as_json:
        fail("--follow and --json do not go together", 2)
    with session(url, token_file, timeout) as client:
        if not follow:
            body = client.logs(node.lower(), tail)
            if as_json:
                print_json(body)
            else:
                for line in log_lines(body.get("logs")):
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
