"""The CLI's listings at 80 columns: short forms, no cell over more than two lines; full values where there is room.

Fed with the real models the orchestrator and the devnet answer with (`primenet nodes ls` and `tasks ls` against a
real orchestrator are in tests/integration/test_pool_cli.py).
"""

from __future__ import annotations

import pytest
from rich.console import Console, RenderableType

from cells import row_heights
from primenet.cli import tables
from primenet.devnet.local import DevnetReport, ProcessReport, RoleReport
from primenet.orchestrator.models import NodeList, TaskView

pytestmark = pytest.mark.unit
NOW = 1_764_000_000.0
NODE = "0x15d34aaf54267db7d7c367839aaf71a00a2c6a65"
OTHER = "0x" + "ab" * 20
TASK_ID = "9c41f0a2" + "7" * 24


def rendered(*renderables: RenderableType, width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


def fits(text: str, width: int, rows: list[int]) -> None:
    """Every line within `width`, each table with its number of rows, none taller than two lines."""
    assert max(len(line) for line in text.splitlines()) <= width, text
    heights = row_heights(text)
    assert [len(table) for table in heights] == rows, text
    assert all(height <= 2 for table in heights for height in table), text


def nodes() -> NodeList:
    h100s = [{"index": i, "model": "NVIDIA H100 80GB HBM3", "memory_mib": 81559} for i in range(8)]
    mixed = [
        {"index": 0, "model": "NVIDIA GeForce RTX 4090", "memory_mib": 24564},
        {"index": 1, "model": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920},
    ]
    return NodeList.model_validate(
        {
            "counts": {"healthy": 1, "waiting_for_heartbeat": 1, "dead": 1, "banned": 0},
            "nodes": [
                {
                    "address": NODE,
                    "status": "healthy",
                    "status_since": NOW - 90,
                    "ip": "203.0.113.250",
                    "port": 18091,
                    "task_id": TASK_ID,
                    "task_state": "restarting",
                    "last_heartbeat": NOW - 4,
                    "version": "0.1.0.dev12+g1234abc",
                    "specs": {"gpus": h100s},
                },
                {
                    "address": OTHER,
                    "status": "waiting_for_heartbeat",
                    "status_since": NOW - 3 * 86400,
                    "ip": "10.0.0.8",
                    "port": 8091,
                    "specs": {"gpus": mixed},
                },
                {
                    "address": "0x" + "cd" * 20,
                    "status": "dead",
                    "status_since": NOW,
                    "ip": "10.0.0.9",
                    "port": 1,
                    "last_heartbeat": NOW + 5,
                },
            ],
        }
    )


def tasks() -> list[TaskView]:
    long = {
        "id": TASK_ID,
        "name": "llama-70b-pretraining-run-with-a-long-name",
        "image": "ghcr.io/primeintellect/prime-training:2025.11.25-cuda12.4",
        "command": ["python", "-m", "train", "--config", "configs/llama-70b.toml", "--steps", "100000"],
        "gpus": 8,
        "nodes": "all",
        "created_at": NOW - 7200,
        "assignments": {
            f"0x{i:040x}": {"state": state, "updated_at": NOW - i}
            for i, state in enumerate(["running", "pulling", "failed", "restarting", "pending", "completed"])
        },
    }
    short = {
        "id": "1" * 32,
        "name": "hello",
        "image": "busybox:1.36",
        "command": ["sh", "-c", "echo hello; sleep 60"],
        "created_at": NOW - 30,
        "assignments": {NODE: {"state": "running", "updated_at": NOW - 1}},
    }
    idle = {**short, "id": "2" * 32, "name": "idle", "command": None, "assignments": {}}
    return [TaskView.model_validate(task) for task in (long, short, idle)]


def devnet() -> DevnetReport:
    logs = "/home/someone/src/primenet/.devnet/logs"
    services = {"anvil": 8545, "redis": 6379, "discovery": 8089, "orchestrator": 8090, "miner": 8091, "validator": 8093}
    return DevnetReport(
        running=True,
        chain_id=31337,
        started_at=NOW,
        processes={
            name: ProcessReport(
                name=name,
                pid=4_000_000 + port,
                port=port,
                url=f"{'redis' if name == 'redis' else 'http'}://127.0.0.1:{port}",
                log=f"{logs}/{name}.log",
                running=name != "miner",
            )
            for name, port in services.items()
        },
        deployment_file="/home/someone/src/primenet/.devnet/deployment.json",
        contracts={name: "0x5FbDB2315678afecb367f032d93F642f64180aa3" for name in ("AIToken", "PrimeNetwork")},
        roles=[
            RoleReport(role=role, address=NODE, dev_account=i) for i, role in enumerate(("deployer", "orchestrator"))
        ],
    )


def test_nodes_at_80_columns_short_forms_on_one_line() -> None:
    text = rendered(tables.nodes_table(nodes(), NOW), width=80)
    fits(text, 80, [3])
    assert "3 node(s): 1 dead, 1 healthy, 1 waiting_for_heartbeat" in " ".join(text.split())
    row = next(line for line in text.splitlines() if "0x15d3…6a65" in line)
    for cell in ("healthy", "restarting", "4s", "8x H100 80GB HBM3"):
        assert cell in row, cell
    assert NODE not in text
    waiting = next(line for line in text.splitlines() if "0xabab…abab" in line)
    assert "waiting" in waiting
    assert "future" in next(line for line in text.splitlines() if "0xcdcd…cdcd" in line)


def test_tasks_at_80_columns_cut_with_an_ellipsis() -> None:
    text = rendered(tables.tasks_table(tasks(), NOW), width=80)
    fits(text, 80, [3])
    assert "python -m tra…" in text
    assert "llama-70b-p…" in text
    row = next(line for line in text.splitlines() if "hello" in line)
    assert "1 running" in row
    assert "30s" in row


def test_the_full_layout_would_wrap_at_80_columns() -> None:
    """What the check above guards against: the full values at 80 columns break cells over many lines."""
    table = tables.nodes_table(nodes(), NOW)
    full = rendered(table._table(table.columns, short=False), width=80)
    assert max(max(heights) for heights in row_heights(full)) > 2


def test_wide_terminals_show_the_full_values() -> None:
    text = rendered(tables.nodes_table(nodes(), NOW), width=300)
    fits(text, 300, [3])
    row = next(line for line in text.splitlines() if NODE in line)
    for cell in (TASK_ID, "203.0.113.250:18091", "1m ago", "8x NVIDIA H100 80GB HBM3", "0.1.0.dev12+g1234abc"):
        assert cell in row, cell
    assert "waiting_for_heartbeat" in next(line for line in text.splitlines() if OTHER in line)
    listing = rendered(tables.tasks_table(tasks()[1:], NOW), width=300)
    assert "1" * 32 in listing
    assert "sh -c 'echo hello; sleep 60'" in listing


def test_devnet_tables_at_80_columns() -> None:
    status = devnet()
    text = rendered(*tables.devnet_tables(status, ".devnet"), width=80)
    fits(text, 80, [6, 2, 2])
    miner = next(line for line in text.splitlines() if "miner" in line and "stopped" in line)
    assert "127.0.0.1:8091" in miner
    assert "…" in miner  # the log's path, cut at its start
    assert "miner.log" in miner
    assert "0x5FbDB2315678afecb367f032d93F642f64180aa3" in text  # the contracts' full addresses fit
    wide = rendered(*tables.devnet_tables(status, ".devnet"), width=200)
    assert "/home/someone/src/primenet/.devnet/logs/miner.log" in wide


def test_short_forms() -> None:
    assert tables.short_address(NODE) == "0x15d3…6a65"
    assert tables.cut("python -m train", 9) == "python -…"
    assert tables.cut("short", 9) == "short"
    assert tables.cut_left("/a/b/logs/miner.log", 12) == "…/miner.log"
    assert tables.cut_left("abcdefghijklmnop", 5) == "…mnop"
    assert [tables.age(NOW - s, NOW) for s in (12, 180, 7200, 172800)] == ["12s", "3m", "2h", "2d"]
    assert (tables.age(None, NOW), tables.age(NOW + 1, NOW)) == ("-", "future")
