"""Dispatch at pool scale: from `POST /tasks` to the task running, for 1 task at a time and for 100 tasks at once
over 100 simulated nodes.

`primenet orchestrator` as its own process (default timers: heartbeat every 10 s) and N simulated nodes beating it
with signed heartbeats (bench/simnodes.py), each answering the orchestrator's nudge (`POST /heartbeat/now` on its
own loopback port) by beating at once, as the miner does. For a simulated node "running" means: the assignment
reached the node in a heartbeat reply (the first figure), and the node reported it running in its next beat, so
that the orchestrator's `GET /tasks` shows the assignment `running` (the second). A real miner starts the
container between the two; `heartbeat.py`'s dispatch phase measures that part on dockerd (1 task, the devnet's
miner). Each node runs at most one task, so the 100 tasks of the batch (1 node each) take every node.
  single   SINGLES tasks one after another, each deleted (and seen gone from its node) before the next
  batch    100 tasks (N by default) posted back to back; each task's time from its own POST
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable

import httpx

from results import record
from simnodes import ADMIN, Coordinator, Fleet, SimNode, coordinator, make_known, new_nodes, quantile

TASK_IMAGE = "local/primenet-busybox:1"  # never pulled: the nodes are simulated


async def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout_s:g} s")
        await asyncio.sleep(0.05)


async def running_seen(http: httpx.AsyncClient, pending: dict[str, float], seen: dict[str, float]) -> None:
    """Poll `GET /tasks` until every task in `pending` (id -> its POST time) shows an assignment `running`."""
    deadline = time.monotonic() + 180
    while pending:
        tasks = (await http.get("/tasks")).json()["tasks"]
        for task in tasks:
            if task["id"] in pending and any(a["state"] == "running" for a in task["assignments"].values()):
                seen[task["id"]] = time.time() - pending.pop(task["id"])
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} task(s) not running within 180 s; one: {tasks[0]}")
        await asyncio.sleep(0.05)


def reached(nodes: list[SimNode], task_id: str, posted: float) -> float | None:
    for node in nodes:
        if task_id in node.assigned_at:
            return node.assigned_at[task_id] - posted
    return None


async def measure(run: Coordinator, n: int, singles: int, interval_s: float) -> dict[str, list[float]]:
    nodes = new_nodes(n, nudge_ports=True)
    await make_known(run, nodes)
    fleet = Fleet(nodes, run.url, run.audience, interval_s, nudges=True)
    await fleet.start()
    figures: dict[str, list[float]] = {name: [] for name in ("single reached", "single running", "batch reached")}
    figures["batch running"] = []
    try:
        await wait_until(lambda: all(node.beats_ok for node in nodes), "every node's first beat", 3 * interval_s)
        async with httpx.AsyncClient(base_url=run.url, headers=ADMIN, timeout=30) as http:

            async def post(name: str) -> tuple[str, float]:
                posted = time.time()
                body = {"name": name, "image": TASK_IMAGE, "command": ["sleep", "3600"], "nodes": 1}
                created = await http.post("/tasks", json=body)
                if created.status_code != 201:
                    raise RuntimeError(f"POST /tasks refused: {created.status_code} {created.text}")
                return str(created.json()["id"]), posted

            async def withdraw(ids: list[str]) -> None:
                for task_id in ids:
                    (await http.delete(f"/tasks/{task_id}")).raise_for_status()
                await wait_until(lambda: not any(node.task_id for node in nodes), "every node idle", 60)

            for i in range(singles):
                task_id, posted = await post(f"single-{i}")
                seen: dict[str, float] = {}
                await running_seen(http, {task_id: posted}, seen)
                figures["single running"].append(seen[task_id])
                figures["single reached"].append(reached(nodes, task_id, posted) or float("nan"))
                await withdraw([task_id])
            print(f"single: {singles} tasks done")

            batch = [await post(f"batch-{i}") for i in range(n)]
            seen = {}
            await running_seen(http, dict(batch), seen)
            for task_id, posted in batch:
                figures["batch running"].append(seen[task_id])
                figures["batch reached"].append(reached(nodes, task_id, posted) or float("nan"))
            figures["batch all running"] = [max(seen.values())]
            print(f"batch: {n} tasks running")
            await withdraw([task_id for task_id, _ in batch])
    finally:
        await fleet.stop()
    if fleet.errors:
        print(f"heartbeat errors: {fleet.errors}")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100, help="simulated nodes, and tasks in the batch (default 100)")
    parser.add_argument("--singles", type=int, default=10, help="single tasks, one after another (default 10)")
    parser.add_argument("--interval", type=float, default=10.0, help="heartbeat interval, s (default 10)")
    args = parser.parse_args()
    settings = {"PRIMENET_ALLOW_LOOPBACK_NODES": "true", "PRIMENET_HEARTBEAT_INTERVAL_S": str(args.interval)}
    with coordinator(settings) as run:
        run.start_orchestrator()
        figures = asyncio.run(measure(run, args.n, args.singles, args.interval))

    def line(values: list[float]) -> str:
        return f"p50 {quantile(values, 0.5) * 1000:.0f} ms, p99 {quantile(values, 0.99) * 1000:.0f} ms"

    beats = f"{args.n} simulated nodes beating every {args.interval:g} s"
    rows = [
        (f"dispatch, 1 task ({args.singles}x), {beats}: `POST /tasks` to the assignment in a heartbeat reply",
         line(figures["single reached"]), "p50 under 2 s"),
        ("dispatch, 1 task: `POST /tasks` to `running` in `GET /tasks` (the node's next beat)",
         line(figures["single running"]), "none"),
        (f"dispatch, {args.n} tasks at once over {args.n} nodes: `POST /tasks` to the assignment in a reply",
         line(figures["batch reached"]), "p50 under 2 s"),
        (f"dispatch, {args.n} tasks: `POST /tasks` to `running` in `GET /tasks` (the node's next beat)",
         line(figures["batch running"]) + f", all {args.n} in {figures['batch all running'][0]:.1f} s", "none"),
    ]  # fmt: skip
    for figure, measured, target in rows:
        print(f"{figure}: {measured}")
        record("dispatch.py", figure, measured, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
