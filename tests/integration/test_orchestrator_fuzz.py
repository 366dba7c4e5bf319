"""schemathesis against the orchestrator's own OpenAPI: generated requests carrying the admin token and signed by a
known node (so they get past authentication into validation and the handlers) must never produce a 5xx.

The known node has a real miner app behind it (with no task), so the routes that call the miner (logs, restart,
the nudge after a task change) reach a real peer; the ban route sends a real blacklistNode to the devnet chain.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import requests
import schemathesis
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from primenet.chain.deployment import Deployment
from primenet.core.auth import AUTH_HEADER, AuthPolicy, orchestrator_audience, sign_request
from primenet.core.models import ComputeSpecs, NodeRecord
from primenet.core.redisdb import connect
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.miner.app import create_app as create_miner
from primenet.miner.settings import MinerKeys, MinerSettings
from primenet.orchestrator.app import create_app
from primenet.orchestrator.models import NodeStatus
from primenet.orchestrator.settings import OrchestratorSettings
from primenet.orchestrator.store import OrchestratorStore

EXAMPLES_PER_OPERATION = 100
MINIMUM_REQUESTS = 500
TOKEN = "fuzz-admin-token-" + uuid.uuid4().hex
SPECS = ComputeSpecs(cpu_cores=4, ram_mib=8192)


class AdminAndSigned(requests.auth.AuthBase):
    """The admin bearer token on every request, and the node's signature over it exactly as sent."""

    def __init__(self, account: LocalAccount, token: str, audience: str) -> None:
        self.account = account
        self.token = token
        self.audience = audience

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        request.headers["Authorization"] = f"Bearer {self.token}"
        request.headers[AUTH_HEADER] = sign_request(
            self.account,
            method=str(request.method),
            path=str(request.path_url),
            body=body.encode() if isinstance(body, str) else body,
            audience=self.audience,
            chain_id=31337,
        )
        return request


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


def miner_app(devnet: DevnetState, node: LocalAccount, port: int, tmp_path: Path) -> FastAPI:
    settings = MinerSettings(
        host="127.0.0.1",
        port=port,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        discovery_url=f"http://127.0.0.1:{free_port()}",
        pool_id=0,
        storage_path=tmp_path / "storage",
        state_dir=tmp_path / "state",
        discovery_check_interval_s=3600,
        challenge_backend="numpy",
    )
    return create_miner(settings, MinerKeys(provider=role_account("provider"), node=node), SPECS)


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
    schema = schemathesis.openapi.from_dict(app.openapi())
    session = requests.Session()
    pools = Deployment.load(Path(devnet.deployment_file)).address("ComputePool")
    session.auth = AdminAndSigned(node, TOKEN, orchestrator_audience(pools, 0))
    known = node.address.lower()
    task_ids: list[str] = []
    sent: list[tuple[str, int]] = []
    codes: set[tuple[str, str]] = set()
    with (
        serve_in_thread(miner_app(devnet, node, miner_port, tmp_path), port=miner_port),
        serve_in_thread(app, port=free_port()) as url,
    ):
        for result in schema.get_all_operations():
            operation = result.ok()

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],  # report a failure as found; shrinking is slow here
            )
            @given(case=operation.as_strategy(), aim=st.booleans())
            def call(case: schemathesis.Case, aim: bool) -> None:
                if aim:  # half the time reach past "not found" into the handlers' work
                    if isinstance(case.body, dict) and "address" in case.body:
                        case.body["address"] = known
                    if case.path_parameters and "address" in case.path_parameters:
                        case.path_parameters["address"] = known
                    if case.path_parameters and "task_id" in case.path_parameters and task_ids:
                        case.path_parameters["task_id"] = task_ids[-1]
                response = case.call(base_url=url, session=session, timeout=30)
                label = case.operation.label
                sent.append((label, response.status_code))
                if label == "POST /tasks" and response.status_code == 201:
                    task_ids.append(response.json()["id"])
                assert response.status_code < 500, f"{label}: {response.status_code} {response.text}"
                if response.status_code >= 400:  # every refusal in the one error shape, with its code
                    code = _error_code(response.text)
                    assert code, f"{label}: {response.status_code} {response.text}"
                    codes.add((label, code))

            call()
    assert len(sent) >= MINIMUM_REQUESTS, f"only {len(sent)} requests were generated"
    labels = {label for label, _ in sent}
    assert labels >= {"POST /heartbeat", "POST /tasks", "GET /nodes/{address}", "DELETE /tasks/{task_id}"}
    for label in ("POST /heartbeat", "POST /tasks", "GET /nodes/{address}"):
        assert any(lb == label and status in (200, 201) for lb, status in sent), f"{label} never got past validation"
    # The miner was reached: it has no task, which the orchestrator passes on as a plain 404.
    assert ("GET /nodes/{address}/logs", "no_task") in codes
    assert ("POST /nodes/{address}/restart", "no_task") in codes


def _error_code(text: str) -> str | None:
    """The code of a `{"error": {"code", "message"}}` body; None for any other body."""
    try:
        return str(json.loads(text)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


pytestmark = pytest.mark.integration
