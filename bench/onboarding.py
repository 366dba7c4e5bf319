"""Onboarding: from `ansible-playbook playbooks/site.yml` on a bare host to a Healthy miner, by phase, cold and warm.

Real throughout: the local inventory's "GPU host" (a bare Debian 12 container with its own dockerd once provisioned,
on this machine's network; tests/machines.py), the devnet of `make demo` as the coordinator on free ports, and one
`ansible-playbook -i inventories/local playbooks/site.yml` run per measurement.

  cold   a bare host: apt installs Docker and the stand-in NVIDIA toolkit, the miner image archive is copied and
         loaded, a node key made, the miner registers, is challenged, invited and heartbeats
  warm   the same host again after `deregister.yml`: Docker, the toolkit and the image are in place, apt's lists
         fresh; a new node key and the whole registration path again (what re-onboarding a provisioned host costs)

Phases, each from the end of the one before: provision (provision.yml), host (the miner role's host preparation),
image (get the image onto the host), keys and check (keys, settings, `primenet miner check`), register (the miner
container started until its node is on chain: provider stake, whitelist, addNode), validate (the validator's
challenge, until the node is validated on chain), invite (until the node joined pool 0 on chain), first heartbeat
(until the orchestrator reports it Healthy), then validate.yml's reports. The playbook's phases are read from its
own output as it streams (each task's start), the chain's and the orchestrator's by polling every 0.2 s.
Total to Healthy is from the start of ansible-playbook. No target: the figures go to bench/README.md.

    .venv/bin/python bench/onboarding.py [--warm-runs N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the same GPU host and image helpers as tests/e2e/test_site_playbook.py

from images import ensure_images  # noqa: E402
from machines import docker, local_inventory_env, remove_machines, start_gpu_host  # noqa: E402
from primenet.chain.contracts import Network  # noqa: E402
from primenet.chain.deployment import Deployment  # noqa: E402
from primenet.chain.rpc import checksum  # noqa: E402
from primenet.chain.tx import read  # noqa: E402
from primenet.devnet.accounts import role_account  # noqa: E402
from primenet.devnet.processes import free_port  # noqa: E402
from results import record  # noqa: E402

LABEL = "org.primenet.bench=onboarding"
HOST = "primenet-gpu-host"
BIN = Path(sys.executable).parent
POLL_S = 0.2
# The playbook's marks: the start of these plays and tasks, as ansible-playbook prints them.
MARKS = {
    "miners": "PLAY [Run the primenet miner on the GPU hosts]",
    "image": "TASK [primenet_miner : Get the miner image onto the host.]",
    "files": "TASK [primenet_miner : Write the miner's keys, deployment and settings.]",
    "container": "TASK [primenet_miner : Start the miner.]",
    "validate_play": "PLAY [Validate the GPU hosts",
}
# (phase, the mark that ends it); each starts where the one before ended.
PHASES = (
    ("provision", "miners"),
    ("host", "image"),
    ("image", "files"),
    ("keys and check", "container"),
    ("register", "registered"),
    ("validate", "validated"),
    ("invite", "joined"),
    ("first heartbeat", "healthy"),
    ("validate.yml", "end"),
)


@dataclass
class Run:
    """One site.yml run: seconds since its start at which each mark was first seen."""

    name: str
    marks: dict[str, float] = field(default_factory=dict)
    node: str | None = None

    def mark(self, name: str, at: float) -> None:
        self.marks.setdefault(name, at)

    def phases(self) -> dict[str, float]:
        result: dict[str, float] = {}
        previous = 0.0
        for phase, mark in PHASES:
            if mark in self.marks:
                result[phase] = self.marks[mark] - previous
                previous = self.marks[mark]
        return result


class Watcher:
    """Polls the chain and the orchestrator for the provider's new node and the steps it passes."""

    def __init__(self, env: dict[str, str]) -> None:
        state = Path(env["PRIMENET_DEVNET_STATE_DIR"])
        self.rpc_url = f"http://127.0.0.1:{env['PRIMENET_DEVNET_ANVIL_PORT']}"
        self.orchestrator = f"http://127.0.0.1:{env['PRIMENET_DEVNET_ORCHESTRATOR_PORT']}"
        self.deployment = Deployment.load(state / "deployment.json")
        self.token = (state / "admin.token").read_text().strip()
        self.provider = role_account("provider").address

    async def provider_nodes(self, network: Network) -> set[str]:
        nodes = await read(network.registry.functions.getProviderNodes(checksum(self.provider)))
        return {str(node).lower() for node in nodes}

    async def watch(self, run: Run, start: float, done: asyncio.Event) -> None:
        async with Network.connect(self.rpc_url, self.deployment) as network, httpx.AsyncClient() as http:
            known = await self.provider_nodes(network)
            while not done.is_set():
                now = time.monotonic() - start
                if run.node is None:
                    new = await self.provider_nodes(network) - known
                    if new:
                        run.node = new.pop()
                        run.mark("registered", now)
                elif "validated" not in run.marks:
                    info = await network.node(run.node)
                    if info is not None and info.is_validated:
                        run.mark("validated", now)
                elif "joined" not in run.marks:
                    if await network.is_node_in_pool(0, run.node):
                        run.mark("joined", now)
                elif "healthy" not in run.marks:
                    reply = await http.get(
                        f"{self.orchestrator}/nodes/{run.node}", headers={"Authorization": f"Bearer {self.token}"}
                    )
                    if reply.status_code == 200 and reply.json().get("status") == "healthy":
                        run.mark("healthy", now)
                await asyncio.sleep(POLL_S)


async def site_run(name: str, argv: list[str], env: dict[str, str]) -> Run:
    """Run site.yml, marking its plays and tasks as their lines arrive and the node's steps as the watcher sees them."""
    run, done = Run(name), asyncio.Event()
    start = time.monotonic()
    watcher = asyncio.create_task(Watcher(env).watch(run, start, done))
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    assert process.stdout is not None
    output: list[str] = []
    async for raw in process.stdout:
        line = raw.decode(errors="replace")
        output.append(line)
        for mark, text in MARKS.items():
            if line.startswith(text):
                run.mark(mark, time.monotonic() - start)
    code = await process.wait()
    run.mark("end", time.monotonic() - start)
    done.set()
    await watcher
    if code != 0:
        raise SystemExit(f"site.yml ({name}) failed with exit status {code}:\n{''.join(output[-60:])}")
    return run


def deregister(settings: list[str], env: dict[str, str]) -> float:
    start = time.monotonic()
    argv = [str(BIN / "ansible-playbook"), "-i", "inventories/local", *settings, "--limit", HOST]
    done = subprocess.run([*argv, "playbooks/deregister.yml"], cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"deregister.yml failed:\n{done.stdout[-4000:]}{done.stderr[-2000:]}")
    return time.monotonic() - start


def prerequisites() -> None:
    for script in ("build-test-images.sh", "ansible-collections.sh"):
        built = subprocess.run(["/bin/bash", str(REPO / "scripts" / script)], capture_output=True, text=True)
        if built.returncode != 0:
            raise SystemExit(f"{script} failed:\n{built.stdout[-2000:]}{built.stderr[-2000:]}")
    archive = REPO / ".cache/images/primenet-miner.tar"
    archive.parent.mkdir(parents=True, exist_ok=True)
    saved = docker("save", "--output", str(archive), ensure_images()["miner"], timeout=300)
    if saved.returncode != 0:
        raise SystemExit(f"docker save failed: {saved.stderr}")


def table(runs: list[Run], deregistrations: list[float]) -> str:
    lines = [f"| phase | {' | '.join(run.name for run in runs)} |", f"| --- |{' ---: |' * len(runs)}"]
    for phase, _ in PHASES:
        cells = [f"{run.phases()[phase]:.1f} s" if phase in run.phases() else "-" for run in runs]
        lines.append(f"| {phase} | {' | '.join(cells)} |")
    totals = [f"**{run.marks['healthy']:.1f} s**" if "healthy" in run.marks else "-" for run in runs]
    lines.append(f"| **ansible-playbook start to Healthy** | {' | '.join(totals)} |")
    whole = [f"{run.marks['end']:.1f} s" for run in runs]
    lines.append(f"| whole site.yml run | {' | '.join(whole)} |")
    if deregistrations:
        lines.append(f"\nderegister.yml before each warm run: {', '.join(f'{d:.1f} s' for d in deregistrations)}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm-runs", type=int, default=1, help="warm runs after the cold one (default 1)")
    parser.add_argument("--json", action="store_true", help="print the marks and phases as JSON")
    args = parser.parse_args()

    prerequisites()
    with tempfile.TemporaryDirectory(prefix="primenet-onboarding-") as folder:
        work = Path(folder)
        remove_machines(LABEL)
        name = f"primenet-bench-{uuid.uuid4().hex[:8]}"
        env = local_inventory_env(work / "devnet", name)
        runs: list[Run] = []
        deregistrations: list[float] = []
        try:
            start_gpu_host(name, LABEL, work)
            up = subprocess.run([str(BIN / "primenet"), "devnet", "up"], env=env, capture_output=True, text=True)
            if up.returncode != 0:
                raise SystemExit(f"devnet up failed:\n{up.stdout[-3000:]}{up.stderr[-3000:]}")
            settings = ["-e", f"primenet_miner_port={free_port()}", "-e", f"validate_report_dir={work / 'validate'}"]
            site = [str(BIN / "ansible-playbook"), "-i", "inventories/local", *settings, "playbooks/site.yml"]
            runs.append(asyncio.run(site_run("cold", site, env)))
            for index in range(args.warm_runs):
                deregistrations.append(deregister(settings, env))
                runs.append(asyncio.run(site_run(f"warm {index + 1}", site, env)))
        finally:
            subprocess.run([str(BIN / "primenet"), "devnet", "down"], env=env, capture_output=True, check=False)
            remove_machines(LABEL)
    if args.json:
        body: dict[str, Any] = {
            "runs": [{"name": r.name, "node": r.node, "marks": r.marks, "phases": r.phases()} for r in runs],
            "deregister_s": deregistrations,
        }
        print(json.dumps(body, indent=2))
        return
    print(table(runs, deregistrations))
    for run in runs:
        for phase, seconds in run.phases().items():
            record("onboarding.py", f"{run.name}: {phase}", f"{seconds:.1f} s")
        if "healthy" in run.marks:
            record("onboarding.py", f"{run.name}: ansible-playbook start to Healthy", f"{run.marks['healthy']:.1f} s")
        record("onboarding.py", f"{run.name}: whole site.yml run", f"{run.marks['end']:.1f} s")
    for deregistration in deregistrations:
        record("onboarding.py", "deregister.yml before a warm run", f"{deregistration:.1f} s")
    cold, warm = runs[0], runs[1:]
    if warm and "healthy" in cold.marks and all("healthy" in run.marks for run in warm):
        ratio = min(run.marks["healthy"] for run in warm) / cold.marks["healthy"]
        print(f"\nwarm against cold, start to Healthy: {ratio:.2f}")
        record("onboarding.py", "warm against cold, start to Healthy", f"{ratio:.2f}")


if __name__ == "__main__":
    main()
