"""`primenet devnet up|down|status|restart|demo`: the local network behind `make demo` and the tests."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from primenet.cli.options import load_settings
from primenet.cli.output import console, fail, progress
from primenet.cli.tables import devnet_tables
from primenet.devnet.local import CORE_PROCESSES, Devnet, DevnetError, DevnetSettings, report
from primenet.devnet.services import SERVICES, admin_token

devnet_app = typer.Typer(
    help="Run a local network: Anvil, Redis, the contracts and every service, on loopback ports.",
    no_args_is_help=True,
)

StateDir = Annotated[
    Path | None,
    typer.Option(
        help="Folder for the state file, logs and Redis data (env PRIMENET_DEVNET_STATE_DIR, default .devnet)"
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]


def _devnet(state_dir: Path | None, **overrides: Any) -> Devnet:
    values = {key: value for key, value in overrides.items() if value is not None}
    if state_dir is not None:
        values["state_dir"] = state_dir
    return Devnet(load_settings(DevnetSettings, "devnet", **values))


def _show(devnet: Devnet, as_json: bool) -> None:
    status = report(devnet)
    if as_json:
        typer.echo(status.model_dump_json(indent=2))
        return
    if status.chain_id is None:
        console.print(f"No devnet is running (no state in {devnet.state_path}). Start one: primenet devnet up")
        return
    for table in devnet_tables(status, str(devnet.state_dir)):
        console.print(table)


@devnet_app.command()
def up(
    state_dir: StateDir = None,
    anvil_port: Annotated[
        int | None, typer.Option(help="Anvil's port (env PRIMENET_DEVNET_ANVIL_PORT, default 8545)")
    ] = None,
    redis_port: Annotated[
        int | None, typer.Option(help="Redis's port (env PRIMENET_DEVNET_REDIS_PORT, default 6379)")
    ] = None,
    services: Annotated[
        bool | None,
        typer.Option(
            "--services/--chain-only",
            help="Also run discovery (8089), orchestrator (8090), a miner (8091) and the validator (8093) "
            "(env PRIMENET_DEVNET_SERVICES, default on).",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Start the devnet in the background and wait until everything answers; a no-op when already up.

    Anvil and Redis first, then the contracts (domain 0, pool 0), then the services as processes: the miner
    registers its provider with stake, the federator whitelists it, and the network onboards the node by itself.
    """
    devnet = _devnet(state_dir, anvil_port=anvil_port, redis_port=redis_port, services=services)
    try:
        _, started = devnet.up(progress=progress)
    except DevnetError as exc:
        fail(f"devnet up failed: {exc}")
    if not as_json:
        if started:
            console.print("[green]Devnet is up.[/green] Stop it with: primenet devnet down")
        else:
            console.print("The devnet is already running; nothing was started. (primenet devnet down stops it.)")
    _show(devnet, as_json)


@devnet_app.command()
def down(state_dir: StateDir = None) -> None:
    """Stop exactly the processes that `up` started, and forget them."""
    devnet = _devnet(state_dir)
    try:
        stopped = devnet.down()
    except DevnetError as exc:
        fail(f"devnet down failed: {exc}")
    console.print(f"Stopped: {', '.join(stopped)}." if stopped else "Nothing was running.")


@devnet_app.command()
def status(state_dir: StateDir = None, as_json: AsJson = False) -> None:
    """Show what runs where (exit status 1 when a recorded process has stopped)."""
    devnet = _devnet(state_dir)
    try:
        _show(devnet, as_json)
        alive = devnet.running()
    except DevnetError as exc:
        fail(str(exc))
    if not all(alive.values()):
        raise typer.Exit(1)


@devnet_app.command()
def restart(
    service: Annotated[
        str,
        typer.Argument(metavar="SERVICE", help=f"The process to restart: {', '.join((*CORE_PROCESSES, *SERVICES))}."),
    ],
    kill: Annotated[
        bool,
        typer.Option("--kill", help="Send SIGKILL at once instead of SIGTERM (then SIGKILL after 10 s): a crash."),
    ] = False,
    state_dir: StateDir = None,
    as_json: AsJson = False,
) -> None:
    """Stop one process of the running devnet and start it again, e.g. to pick up new code or to test a crash.

    The new process gets the same command line, environment and log file (appended) as `up` gave it; the state
    file records its new pid, and the command returns once it answers (/health, Anvil's chain id, Redis's PING).
    Only a recorded pid that still runs the recorded command line is signalled. Anvil comes back with its chain
    (its state file; after --kill, less the blocks of the last second) and Redis with every acknowledged write (its
    append-only file). Exit status 2 when SERVICE or the devnet is not there, 1 when it did not come back.
    """
    choices = (*CORE_PROCESSES, *SERVICES)
    if service not in choices:
        fail(f"unknown service {service!r}: choose one of {', '.join(choices)}", 2)
    devnet = _devnet(state_dir)
    try:
        state = devnet.recorded()
        if state is None:
            fail(f"no devnet is running (no state in {devnet.state_path}): start one with `primenet devnet up`", 2)
        if service not in state.processes:
            fail(f"the devnet in {devnet.state_dir} runs no {service} (started with --chain-only?)", 2)
        done = devnet.restart(service, kill=kill, progress=progress)
    except DevnetError as exc:
        fail(f"devnet restart failed: {exc}")
    if as_json:
        typer.echo(done.model_dump_json(indent=2))
        return
    if done.was_running:
        before = f"pid {done.previous_pid} {'killed' if done.killed else 'stopped'}"
    else:
        before = f"pid {done.previous_pid} was not running"
    console.print(
        f"[green]{service} restarted[/green]: {before}; pid {done.pid} answers at {done.url} (log: {done.log})",
        highlight=False,
    )


DEMO_IMAGE = "local/primenet-busybox:1"
DEMO_TASK_PREFIX = "hello-"
DEMO_SCRIPT = 'echo "hello from primenet on $(hostname)"; i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 2; done'
DEMO_COMMAND = ["sh", "-c", DEMO_SCRIPT]


@devnet_app.command()
def demo(
    state_dir: StateDir = None,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for the node and the task.")] = 180.0,
) -> None:
    """Run a task on the devnet's miner through the orchestrator and show its output (`make demo` ends here)."""
    devnet = _devnet(state_dir)
    state = devnet.recorded()
    if state is None or "orchestrator" not in state.processes:
        fail("no devnet with services is running: start one with `primenet devnet up`", 2)
    url = state.processes["orchestrator"].url
    headers = {"Authorization": f"Bearer {admin_token(devnet.state_dir)}"}
    deadline = time.monotonic() + timeout
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            node = _wait_for(deadline, "a Healthy node", lambda: _healthy_node(http))
            progress(f"node {node} is Healthy in pool 0")
            # The store persists across `down` and `up`: an earlier demo's task would hold the one node.
            for earlier in http.get("/tasks").json().get("tasks", []):
                if str(earlier.get("name", "")).startswith(DEMO_TASK_PREFIX):
                    http.delete(f"/tasks/{earlier['id']}")
                    progress(f"removed the earlier demo task {earlier['name']}")
            task = {
                "name": f"{DEMO_TASK_PREFIX}{secrets.token_hex(3)}",
                "image": DEMO_IMAGE,
                "command": DEMO_COMMAND,
                "nodes": 1,
            }
            created = http.post("/tasks", json=task)
            if created.status_code != 201:
                fail(f"the orchestrator refused the task: {created.status_code} {created.text}")
            task_id = created.json()["id"]
            progress(f"task {task['name']} ({task_id}) created; waiting for its container")
            _wait_for(deadline, "the task to run", lambda: _running_on(http, task_id))
            time.sleep(2.5)  # a tick or two of output
            logs = http.get(f"/nodes/{node}/logs", params={"tail": 20})
    except httpx.HTTPError as exc:
        fail(f"the orchestrator at {url} is unreachable: {exc}", 2)
    except TimeoutError as exc:
        fail(str(exc))
    if logs.status_code != 200:
        fail(f"could not read the task's logs: {logs.status_code} {logs.text}")
    console.print(f"[green]Task {task_id} runs on node {node}.[/green] Its output, fetched through the orchestrator:")
    console.print(logs.json()["logs"].rstrip(), highlight=False, markup=False)
    console.print(
        "Next: primenet nodes ls, primenet tasks ls, primenet logs <node> "
        f"(PRIMENET_ADMIN_TOKEN is in {devnet.state_dir / 'admin.token'}); stop everything with: make down"
    )


def _wait_for(deadline: float, what: str, probe: Callable[[], str | None]) -> str:
    while (found := probe()) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.5)
    return found


def _healthy_node(http: httpx.Client) -> str | None:
    nodes = http.get("/nodes").json().get("nodes", [])
    return next((str(n["address"]) for n in nodes if n.get("status") == "healthy"), None)


def _running_on(http: httpx.Client, task_id: str) -> str | None:
    assignments = http.get(f"/tasks/{task_id}").json().get("assignments", {})
    return next((str(node) for node, a in assignments.items() if a.get("state") == "running"), None)
