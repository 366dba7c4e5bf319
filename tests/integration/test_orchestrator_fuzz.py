"""schemathesis against the orchestrator's own OpenAPI: generated requests carrying the admin token and signed by a
known node (so they get past authentication into validation and the handlers) must never produce a 5xx.

The known node has a real miner app behind it (with no task), so the routes that call the miner (logs, restart,
the nudge after a task change) reach a real peer; the ban route sends a real blacklistNode to the devnet chain.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from eth_account import Account
from eth_account.signers.local import LocalAccount

from fuzzing import SignedBy, fuzz_every_operation, session
from primenet.chain.deployment import Deployment
from primenet.core.auth import AuthPolicy, orchestrator_audience
from primenet.core.models import ComputeSpecs, NodeRecord
from primenet.core.redisdb import connect
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.orchestrator.app import create_app
from primenet.orchestrator.models import NodeStatus
from primenet.orchestrator.settings import OrchestratorSettings
from primenet.orchestrator.store import OrchestratorStore
from service_apps import miner_app

EXAMPLES_PER_OPERATION = 100
MINIMUM_REQUESTS = 500
TOKEN = "fuzz-admin-token-" + uuid.uuid4().hex
SPECS = ComputeSpecs(cpu_cores=4, ram_mib=8192)


async def healthy_node(redis_url: str, prefix: str, node: LocalAccount, miner_port: int) -> None:
    """A node the orchestrator knows (as its monitor stores a listed one), made Healthy as a heartbeat makes it."""
    redis = connect(redis_url)
    try:
        store = OrchestratorStore(redis, prefix=prefix)
        record = NodeRecord(
            node=node.address,
            provider=role_account("provider").address,
            ip="127.0.0.1",
            port=miner_port,
            pool_id=0,
            specs=SPECS,
        )
        now = time.time()
        await store.upsert_listed(record, listed_at=now, now=now)
        await store.transition(node.address, NodeStatus.HEALTHY, now=now, fields={"last_heartbeat": repr(now)})
    finally:
        await redis.aclose()


async def test_generated_requests_never_get_a_5xx(devnet: DevnetState, tmp_path: Path) -> None:
    prefix = "fuzz" + uuid.uuid4().hex[:8]
    node = Account.create()
    miner_port = free_port()
    await healthy_node(devnet.redis_url, prefix, node, miner_port)
    app = create_app(
        OrchestratorSettings(
            redis_url=devnet.redis_url,
            rpc_url=devnet.rpc_url,
            deployment_file=Path(devnet.deployment_file),
            admin_token=TOKEN,
            discovery_url=f"http://127.0.0.1:{free_port()}",
            key_prefix=prefix,
            auth=AuthPolicy(rate_limit=1_000_000, ip_rate_limit=0),  # every generated request comes from 127.0.0.1
        ),
        role_account("orchestrator"),
    )
    pools = Deployment.load(Path(devnet.deployment_file)).address("ComputePool")
    sender = session(SignedBy(node, orchestrator_audience(pools, 0), token=TOKEN))
    known = node.address.lower()
    task_ids: list[str] = []

    def prepare(case: schemathesis.Case, aim: bool) -> requests.Session:
        if aim:  # half the time reach past "not found" into the handlers' work
            if isinstance(case.body, dict) and "address" in case.body:
                case.body["address"] = known
            if case.path_parameters and "address" in case.path_parameters:
                case.path_parameters["address"] = known
            if case.path_parameters and "task_id" in case.path_parameters and task_ids:
                case.path_parameters["task_id"] = task_ids[-1]
        return sender

    def after(label: str, response: Any) -> None:
        if label == "POST /tasks" and response.status_code == 201:
            task_ids.append(response.json()["id"])

    miner, _, _ = miner_app(devnet, devnet.rpc_url, tmp_path, node=node, port=miner_port)
    with serve_in_thread(miner, port=miner_port), serve_in_thread(app, port=free_port()) as url:
        sent = fuzz_every_operation(
            app.openapi(), url, choices=[True, False], prepare=prepare, examples=EXAMPLES_PER_OPERATION, after=after
        )
    assert len(sent) >= MINIMUM_REQUESTS, f"only {len(sent)} requests were generated"
    labels = {item.label for item in sent}
    assert labels >= {"POST /heartbeat", "POST /tasks", "GET /nodes/{address}", "DELETE /tasks/{task_id}"}
    for label in ("POST /heartbeat", "POST /tasks", "GET /nodes/{address}"):
        assert any(item.label == label and item.status in (200, 201) for item in sent), f"{label} never got through"
    codes = {(item.label, item.code) for item in sent}
    # The miner was reached: it has no task, which the orchestrator passes on as a plain 404.
    assert ("GET /nodes/{address}/logs", "no_task") in codes
    assert ("POST /nodes/{address}/restart", "no_task") in codes


pytestmark = pytest.mark.integration
