"""schemathesis against discovery's own OpenAPI: generated requests (signed, so they get past authentication
and reach validation and the handlers) must never produce a 5xx."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import schemathesis

from fuzzing import SignedBy, fuzz_every_operation, session
from primenet.core.auth import AuthPolicy
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.discovery.app import create_app
from primenet.discovery.settings import DiscoverySettings

EXAMPLES_PER_OPERATION = 200
MINIMUM_REQUESTS = 500


def test_generated_requests_never_get_a_5xx(devnet: DevnetState) -> None:
    app = create_app(
        DiscoverySettings(
            redis_url=devnet.redis_url,
            rpc_url=devnet.rpc_url,
            deployment_file=Path(devnet.deployment_file),
            key_prefix="fuzz",
            auth=AuthPolicy(rate_limit=1_000_000, ip_rate_limit=0),  # every generated request comes from 127.0.0.1
        )
    )
    sessions = {
        name: session(SignedBy(role_account(name), "discovery")) for name in ("validator", "orchestrator", "node")
    }

    def prepare(case: schemathesis.Case, signer: str) -> requests.Session:
        if isinstance(case.body, dict) and "node" in case.body:
            case.body["node"] = role_account(signer).address  # past signer_not_node, into the chain checks
        if case.path == "/api/events":
            case.query = {**(case.query or {}), "timeout": 0}  # a long-poll would otherwise wait 25-30 s
        return sessions[signer]

    with serve_in_thread(app, port=free_port()) as url:
        sent = fuzz_every_operation(
            app.openapi(), url, choices=sorted(sessions), prepare=prepare, examples=EXAMPLES_PER_OPERATION
        )
    assert len(sent) >= MINIMUM_REQUESTS, f"only {len(sent)} requests were generated"
    assert {item.label for item in sent} >= {"PUT /api/nodes", "GET /api/events", "GET /api/pool/{pool_id}"}
    assert any(item.status == 200 for item in sent), "nothing got past validation: the fuzzing is too shallow"


pytestmark = pytest.mark.integration
