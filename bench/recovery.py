"""Recovery: how soon the orchestrator serves heartbeats again after its process, or its Redis, is killed.

`primenet orchestrator` as its own process (default timers) on a private Anvil and Redis (AOF, `appendfsync
always`), N simulated nodes beating it every 10 s (bench/simnodes.py; on chain, in the pool, since a restarted
orchestrator checks) and one task placed, so the store holds what a running pool holds. A probe node sends a
freshly signed heartbeat every 20 ms (1 s timeout each); "serving" is the first one answered 200.
  orchestrator  SIGKILL to the process, then started again at once (what a supervisor or Docker's restart policy
                does): from the kill to the first heartbeat answered, the new process's whole start (interpreter,
                imports, Redis and chain checks) included
  redis         SIGKILL to Redis, then started again at once on the same port and AOF: from the kill to the
                orchestrator answering a heartbeat, and from Redis answering PING to that
After each round: the task is still there (nothing acknowledged lost), and no simulated node left Healthy.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount

from heartbeat import CHAIN_ID
from primenet.core.auth import AUTH_HEADER, sign_request
from primenet.core.models import Heartbeat
from primenet.devnet.processes import stop
from results import record
from simnodes import (
    ADMIN,
    JSON,
    Coordinator,
    Fleet,
    SimNode,
    coordinator,
    join_on_chain,
    make_known,
    new_nodes,
    quantile,
)

PROBE_EVERY_S = 0.02


async def serving(url: str, probe: LocalAccount, audience: str, limit_s: float = 120.0) -> float:
    """Seconds until a freshly signed heartbeat from `probe` is answered 200 (time.time() when it was)."""
    deadline = time.monotonic() + limit_s
    async with httpx.AsyncClient(base_url=url, timeout=1.0) as http:
        while time.monotonic() < deadline:
            body = Heartbeat(address=probe.address, version="bench", timestamp=time.time()).model_dump_json().encode()
            auth = sign_request(
                probe, method="POST", path="/heartbeat", body=body, audience=audience, chain_id=CHAIN_ID
            )
            try:
                response = await http.post("/heartbeat", content=body, headers={**JSON, AUTH_HEADER: auth})
                if response.status_code == 200:
                    return time.time()
            except httpx.HTTPError:
                pass
            await asyncio.sleep(PROBE_EVERY_S)
    raise RuntimeError(f"no heartbeat answered within {limit_s:g} s")


async def state_kept(run: Coordinator, task_id: str, nodes: list[SimNode]) -> tuple[bool, dict[str, int]]:
    """Whether the task is still stored, and the simulated nodes not Healthy, by status."""
    async with httpx.AsyncClient(base_url=run.url, headers=ADMIN, timeout=30) as http:
        kept = (await http.get(f"/tasks/{task_id}")).status_code == 200
        rows = (await http.get("/nodes")).json()["nodes"]
    addresses = {node.address.lower() for node in nodes}
    others: dict[str, int] = {}
    for row in rows:
        if row["address"] in addresses and row["status"] != "healthy":
            others[row["status"]] = others.get(row["status"], 0) + 1
    return kept, others


async def measure(run: Coordinator, n: int, rounds: int, interval_s: float) -> dict[str, list[float]]:
    nodes = new_nodes(n)
    probe = SimNode(Account.create(), nodes[0].port)
    # On chain, in the pool: a restarted orchestrator re-reads every known node's membership (a node the chain
    # does not list in the pool is Ejected).
    await join_on_chain(run.anvil.url, run.state / "deployment.json", [node.account for node in [*nodes, probe]])
    run.start_orchestrator()
    await make_known(run, [*nodes, probe])
    fleet = Fleet(nodes, run.url, run.audience, interval_s)
    await fleet.start()
    figures: dict[str, list[float]] = {"orchestrator": [], "redis": [], "redis after": []}
    lost: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=run.url, headers=ADMIN, timeout=30) as http:
            body = {"name": "kept", "image": "local/primenet-busybox:1", "command": ["sleep", "3600"], "nodes": 1}
            created = await http.post("/tasks", json=body)
            created.raise_for_status()
            task_id = str(created.json()["id"])
        await serving(run.url, probe.account, run.audience)
        for i in range(rounds):
            killed = time.time()
            run.kill_orchestrator()
            run.launch_orchestrator()
            answered = await serving(run.url, probe.account, run.audience)
            figures["orchestrator"].append(answered - killed)
            print(f"round {i + 1}: orchestrator kill -9 to serving {answered - killed:.2f} s")

            killed = time.time()
            stop(run.redis, kill=True)
            run.redis = await asyncio.to_thread(run.devnet.start_redis)  # same port, same AOF; waits for PING
            back = time.time()
            answered = await serving(run.url, probe.account, run.audience)
            figures["redis"].append(answered - killed)
            figures["redis after"].append(answered - back)
            print(f"round {i + 1}: Redis kill -9 to serving {answered - killed:.2f} s ({answered - back:.2f} s after)")
            kept, unhealthy = await state_kept(run, task_id, nodes)
            if not kept or unhealthy:
                lost.append(f"round {i + 1}: task kept {kept}, nodes not Healthy: {unhealthy}")
            await asyncio.sleep(2 * interval_s)  # every node beats again between the rounds
    finally:
        await fleet.stop()
    figures["lost"] = [float(len(lost))]
    for line in lost:
        print(line)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100, help="simulated nodes (on chain) beating meanwhile (default 100)")
    parser.add_argument("--rounds", type=int, default=5, help="kills of each (default 5)")
    parser.add_argument("--interval", type=float, default=10.0, help="the nodes' heartbeat interval, s (10)")
    args = parser.parse_args()
    with coordinator({"PRIMENET_HEARTBEAT_INTERVAL_S": str(args.interval)}) as run:
        figures = asyncio.run(measure(run, args.n, args.rounds, args.interval))

    def span(values: list[float]) -> str:
        return f"p50 {quantile(values, 0.5):.2f} s, max {max(values):.2f} s"

    context = f"{args.rounds}x, {args.n:,} nodes beating every {args.interval:g} s"
    lost = int(figures["lost"][0])
    rows = [
        (f"recovery: orchestrator kill -9 and restart to a signed heartbeat answered ({context})",
         span(figures["orchestrator"]), "none"),
        (f"recovery: Redis kill -9 and restart to the orchestrator answering a heartbeat ({context})",
         f"{span(figures['redis'])}; {span(figures['redis after'])} after Redis answered PING", "none"),
        ("recovery: the task and the nodes' Healthy status after every restart",
         "kept" if lost == 0 else f"lost in {lost} round(s)", "kept"),
    ]  # fmt: skip
    for figure, measured, target in rows:
        print(f"{figure}: {measured}")
        record("recovery.py", figure, measured, target)
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
