"""Every table the CLI prints for people: the pool's nodes and tasks, one node or task, the devnet.

A listing is a `Fitted` table: it picks its layout for the width it is rendered at. When every column with full
values fits, that is what it shows; otherwise it shows short forms (`0x15d3…6a65`, ages like `12s`, a command cut
with an ellipsis) in the columns that fit, most useful first, each cell on one line. So at 80 columns (a plain
terminal, CI logs) nothing breaks over several lines, and a wider terminal shows more. The full values are in
`show` and in `--json`.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from rich.console import Console, ConsoleOptions, JustifyMethod, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table

from primenet.core.models import ComputeSpecs, TaskDetails
from primenet.devnet.local import DevnetReport, ProcessReport, RoleReport
from primenet.orchestrator.models import AssignmentView, NodeList, NodeView, TaskView

Row = TypeVar("Row")

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
SHORT_STATUS = {"waiting_for_heartbeat": "waiting"}  # the one status longer than a column can spare
GPU_VENDOR_WORDS = ("NVIDIA ", "GeForce ")  # the same on every GPU of the network: left out of short forms
ELLIPSIS = "…"


# --- values: full and short forms ------------------------------------------------------------------------------


def cut(text: str, width: int) -> str:
    """`text` in at most `width` characters: cut at the end with an ellipsis when longer."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + ELLIPSIS


def cut_left(text: str, width: int) -> str:
    """A path in at most `width` characters, keeping its end from a `/` on when it can: `…/logs/miner.log`."""
    if len(text) <= width:
        return text
    tail = text[len(text) - width + 1 :]
    if "/" in tail:
        tail = tail[tail.index("/") :]
    return ELLIPSIS + tail


def short_address(address: str) -> str:
    """`0x15d34aaf54267db7d7c367839aaf71a00a2c6a65` -> `0x15d3…6a65`."""
    return address if len(address) <= 12 else f"{address[:6]}{ELLIPSIS}{address[-4:]}"


def coloured(value: object, short: bool = False) -> str:
    """A status or task state in its colour (markup); `-` for none."""
    if value is None or value == "":
        return "-"
    text = str(value)
    shown = SHORT_STATUS.get(text, text) if short else text
    colour = STATUS_COLOURS.get(text.lower())
    return f"[{colour}]{shown}[/{colour}]" if colour else shown


def _seconds(timestamp: object) -> float | None:
    if not isinstance(timestamp, int | float) or isinstance(timestamp, bool) or timestamp <= 0:
        return None
    return float(timestamp)


def age(timestamp: object, now: float | None = None) -> str:
    """Unix seconds -> how long ago, short: "12s", "5m", "3h", "2d"; "future" when ahead of our clock; "-" for none."""
    seconds = _seconds(timestamp)
    if seconds is None:
        return "-"
    delta = (time.time() if now is None else now) - seconds
    if delta < 0:
        return "future"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= size:
            return f"{int(delta // size)}{unit}"
    return f"{int(delta)}s"


def ago(timestamp: object, now: float | None = None) -> str:
    """Unix seconds -> "12s ago", "5m ago", "3h ago", "2d ago"; "in the future"; "-" for none."""
    short = age(timestamp, now)
    return {"-": "-", "future": "in the future"}.get(short, f"{short} ago")


def when(timestamp: object, now: float | None = None) -> str:
    """Unix seconds -> "2025-11-25 14:39:07Z (12s ago)"."""
    seconds = _seconds(timestamp)
    if seconds is None:
        return "-"
    moment = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return f"{moment} ({ago(timestamp, now)})"


def gpu_summary(specs: ComputeSpecs | None, short: bool = False) -> str:
    """ "2x NVIDIA H100 80GB HBM3" (grouped by model; short: "2x H100 80GB HBM3"), "none" without GPUs, "-" without
    specs."""
    if specs is None:
        return "-"
    if not specs.gpus:
        return "none"
    counts: dict[str, int] = {}
    for gpu in specs.gpus:
        model = gpu.model
        if short:
            for word in GPU_VENDOR_WORDS:
                model = model.replace(word, "")
        counts[model] = counts.get(model, 0) + 1
    return ", ".join(f"{count}x {model}" for model, count in counts.items())


def endpoint(view: NodeView) -> str:
    if not view.ip:
        return "-"
    return f"{view.ip}:{view.port}" if view.port else view.ip


def argv_text(argv: Sequence[str] | None) -> str:
    return shlex.join(argv) if argv is not None else "-"


def assignment_summary(assignments: Mapping[str, AssignmentView], width: int | None = None) -> str:
    """{"0x..": running, ...} -> "2 running, 1 pulling" (markup); within `width` characters, the states that fit
    and an ellipsis; "-" for none."""
    if not assignments:
        return "-"
    counts: dict[str, int] = {}
    for assignment in assignments.values():
        state = assignment.state or "unknown"
        counts[state] = counts.get(state, 0) + 1
    parts = [(f"{count} {state}", f"{count} {coloured(state)}") for state, count in sorted(counts.items())]
    shown: list[str] = []
    length = 0
    for plain, marked in parts:
        extra = len(plain) + (2 if shown else 0)
        if width is not None and shown and length + extra > width - 3:  # keep room for ", …"
            shown.append(ELLIPSIS)
            break
        shown.append(marked)
        length += extra
    return ", ".join(shown)


def details_text(details: TaskDetails | None) -> str:
    """A container's details in one line: `container=1a2b3c4d5e6f status=running exit_code=0 restarts=1`."""
    if details is None:
        return "-"
    parts = []
    for key, value in details.model_dump().items():
        if value is None:
            continue
        parts.append(f"container={str(value)[:12]}" if key == "container_id" else f"{key}={value}")
    return " ".join(parts) or "-"


# --- tables that fit the width they are given ------------------------------------------------------------------


@dataclass(frozen=True)
class Column(Generic[Row]):
    """One column of a `Fitted` table: its full value, its short form (the full one when None), and its rank
    (lower ranks are kept first when the width is short; the first column of rank 0 is always kept)."""

    header: str
    full: Callable[[Row], str]
    short: Callable[[Row], str] | None = None
    rank: int = 0
    justify: JustifyMethod = "left"


class Fitted(Generic[Row]):
    """A listing that chooses, when rendered, between full values in every column and short forms in the columns
    that fit (see the module's docstring)."""

    def __init__(self, title: str, columns: Sequence[Column[Row]], rows: Sequence[Row]) -> None:
        self.title = title
        self.columns = list(columns)
        self.rows = list(rows)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.layout(console, options.max_width)

    def layout(self, console: Console, width: int) -> Table:
        """The table as it shows at `width` columns."""
        full = self._table(self.columns, short=False)
        if _natural_width(console, full) <= width:
            return full
        kept: list[int] = []
        for index in sorted(range(len(self.columns)), key=lambda i: self.columns[i].rank):
            trial = sorted([*kept, index])
            if kept and _natural_width(console, self._table([self.columns[i] for i in trial], True)) > width:
                break  # the next most useful column does not fit: show those that do, in their order
            kept = trial
        return self._table([self.columns[i] for i in kept], short=True)

    def _table(self, columns: Sequence[Column[Row]], short: bool) -> Table:
        table = Table(title=self.title)
        for column in columns:
            if short:  # one line per cell: the forms are short, and what still does not fit ends in an ellipsis
                table.add_column(column.header, justify=column.justify, no_wrap=True, overflow="ellipsis")
            else:
                table.add_column(column.header, justify=column.justify, overflow="fold")
        for row in self.rows:
            table.add_row(*((column.short or column.full)(row) if short else column.full(row) for column in columns))
        return table


def _natural_width(console: Console, table: Table) -> int:
    """How wide `table` is with no cell wrapped."""
    return Measurement.get(console, console.options.update_width(10_000), table).maximum


# --- the pool: nodes and tasks ---------------------------------------------------------------------------------


def nodes_table(body: NodeList, now: float | None = None) -> Fitted[NodeView]:
    """`primenet nodes ls`."""
    summary = ", ".join(f"{count} {status}" for status, count in sorted(body.counts.items()) if count) or "none"
    columns: list[Column[NodeView]] = [
        Column("node", lambda v: v.address, lambda v: short_address(v.address), rank=0),
        Column("status", lambda v: coloured(v.status.value), lambda v: coloured(v.status.value, short=True), rank=1),
        Column("since", lambda v: ago(v.status_since, now), lambda v: age(v.status_since, now), rank=7),
        Column("endpoint", endpoint, rank=6),
        Column("task", lambda v: v.task_id or "-", lambda v: cut(v.task_id or "-", 9), rank=5),
        Column("task state", lambda v: coloured(v.task_state), rank=2),
        Column("heartbeat", lambda v: ago(v.last_heartbeat, now), lambda v: age(v.last_heartbeat, now), rank=3),
        Column("version", lambda v: v.version or "-", lambda v: cut(v.version or "-", 10), rank=8),
        Column("GPUs", lambda v: gpu_summary(v.specs), lambda v: cut(gpu_summary(v.specs, short=True), 17), rank=4),
    ]
    return Fitted(f"{len(body.nodes)} node(s): {summary}", columns, body.nodes)


def node_table(view: NodeView, now: float | None = None) -> Table:
    """`primenet nodes show`: every field in full."""
    table = Table(title=f"node {view.address}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("status", coloured(view.status.value))
    table.add_row("status since", when(view.status_since, now))
    table.add_row("endpoint", endpoint(view))
    table.add_row("task", view.task_id or "-")
    table.add_row("task state", coloured(view.task_state))
    table.add_row("last heartbeat", when(view.last_heartbeat, now))
    table.add_row("version", view.version or "-")
    specs = view.specs
    table.add_row("GPUs", gpu_summary(specs))
    if specs is not None:
        for gpu in specs.gpus:
            table.add_row(f"  GPU {gpu.index}", f"{gpu.model}, {gpu.memory_mib} MiB")
        fields: dict[str, object] = {
            "driver": specs.driver_version,
            "CUDA": specs.cuda_version,
            "CPU": specs.cpu_model,
            "CPU cores": specs.cpu_cores,
            "RAM (MiB)": specs.ram_mib,
            "storage free (GB)": specs.storage_free_gb,
        }
        for label, value in fields.items():
            if value not in (None, ""):
                table.add_row(label, str(value))
    return table


def tasks_table(tasks: Sequence[TaskView], now: float | None = None) -> Fitted[TaskView]:
    """`primenet tasks ls`."""
    columns: list[Column[TaskView]] = [
        Column("id", lambda t: t.id, lambda t: cut(t.id, 9), rank=5),
        Column("name", lambda t: t.name, lambda t: cut(t.name, 12), rank=0),
        Column("image", lambda t: t.image, lambda t: cut(t.image, 14), rank=3),
        Column("command", lambda t: argv_text(t.command), lambda t: cut(argv_text(t.command), 14), rank=2),
        Column("GPUs", lambda t: str(t.gpus), rank=6, justify="right"),
        Column("nodes", lambda t: str(t.nodes), rank=7, justify="right"),
        Column("created", lambda t: ago(t.created_at, now), lambda t: age(t.created_at, now), rank=4),
        Column(
            "assignments",
            lambda t: assignment_summary(t.assignments),
            lambda t: assignment_summary(t.assignments, width=16),
            rank=1,
        ),
    ]
    return Fitted(f"{len(tasks)} task(s)", columns, tasks)


def task_tables(task: TaskView, now: float | None = None) -> list[Table]:
    """`primenet tasks show` and `create`: the task in full, then where it runs."""
    table = Table(title=f"task {task.name} ({task.id})", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("image", task.image)
    table.add_row("entrypoint", argv_text(task.entrypoint))
    table.add_row("command", argv_text(task.command))
    table.add_row("env", ", ".join(f"{key}={value}" for key, value in sorted(task.env.items())) or "-")
    table.add_row("GPUs", str(task.gpus))
    table.add_row("nodes", str(task.nodes))
    table.add_row("requirements", task.requirements or "-")
    table.add_row("created", when(task.created_at, now))
    table.add_row("state", task.state + (f": {task.reason}" if task.reason else ""))
    placed = Table(title=f"{len(task.assignments)} assignment(s)")
    for column in ("node", "state", "updated", "details", "message"):
        placed.add_column(column, overflow="fold")
    for node, assignment in sorted(task.assignments.items()):
        placed.add_row(
            node,
            coloured(assignment.state),
            ago(assignment.updated_at, now),
            details_text(assignment.details),
            assignment.message or "",
        )
    return [table, placed]


# --- the devnet ------------------------------------------------------------------------------------------------


def devnet_tables(status: DevnetReport, state_dir: str) -> list[RenderableType]:
    """`primenet devnet up|status`: its processes, contracts and roles (`status` of a running devnet)."""
    processes: list[Column[ProcessReport]] = [
        Column("service", lambda p: p.name, rank=0),
        Column("state", lambda p: "[green]running[/green]" if p.running else "[red]stopped[/red]", rank=1),
        Column("pid", lambda p: str(p.pid), rank=3, justify="right"),
        Column("url", lambda p: p.url, lambda p: p.url.split("://", 1)[-1], rank=2),
        Column("log", lambda p: p.log, lambda p: cut_left(p.log, 24), rank=4),
    ]
    contracts: list[Column[tuple[str, str]]] = [
        Column("contract", lambda c: c[0], rank=0),
        Column("address", lambda c: c[1], lambda c: short_address(c[1]), rank=1),
    ]
    roles: list[Column[RoleReport]] = [
        Column("role", lambda r: r.role, rank=0),
        Column("address", lambda r: r.address, lambda r: short_address(r.address), rank=1),
        Column("dev account", lambda r: f"#{r.dev_account}", rank=2),
    ]
    tables: list[RenderableType] = [
        Fitted(f"devnet: chain id {status.chain_id}, state in {state_dir}", processes, list(status.processes.values()))
    ]
    if status.contracts:
        tables.append(Fitted(f"contracts ({status.deployment_file})", contracts, list(status.contracts.items())))
    tables.append(Fitted("roles (Anvil dev accounts: public keys, for this devnet only)", roles, status.roles))
    return tables
