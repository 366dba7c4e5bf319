"""schemathesis against discovery's own OpenAPI: generated requests (signed, so they get past authentication
and reach validation and the handlers) must never produce a 5xx."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from primenet.core.auth import AUTH_HEADER, AuthPolicy, sign_request
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.discovery.app import create_app
from primenet.discovery.settings import DiscoverySettings

EXAMPLES_PER_OPERATION = 200
MINIMUM_REQUESTS = 500


class SignedBy(requests.auth.AuthBase):
    """Signs each prepared request exactly as sent (path with query, body bytes)."""

    def __init__(self, signer: str) -> None:
        self.account = role_account(signer)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        request.headers[AUTH_HEADER] = sign_request(
            self.account,
            method=str(request.method),
            path=str(request.path_url),
            body=body.encode() if isinstance(body, str) else body,
            audience="discovery",
            chain_id=31337,
        )
        return request


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
    schema = schemathesis.openapi.from_dict(app.openapi())
    sessions = {name: requests.Session() for name in ("validator", "orchestrator", "node")}
    for name, session in sessions.items():
        session.auth = SignedBy(name)
    sent: list[tuple[str, int]] = []
    with serve_in_thread(app, port=free_port()) as url:
        for result in schema.get_all_operations():
            operation = result.ok()

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],  # report a failure as found; shrinking is slow here
            )
            @given(case=operation.as_strategy(), signer=st.sampled_from(sorted(sessions)))
            def call(case: schemathesis.Case, signer: str) -> None:
                if isinstance(case.body, dict) and "node" in case.body:
                    case.body["node"] = role_account(signer).address  # past signer_not_node, into the chain checks
                if case.path == "/api/events":
                    case.query = {**(case.query or {}), "timeout": 0}  # a long-poll would otherwise wait 25-30 s
                response = case.call(base_url=url, session=sessions[signer], timeout=30)
                label = case.operation.label
                sent.append((label, response.status_code))
                assert response.status_code < 500, f"{label} {case.query}: {response.status_code} {response.text}"

            call()
    assert len(sent) >= MINIMUM_REQUESTS, f"only {len(sent)} requests were generated"
    assert {label for label, _ in sent} >= {"PUT /api/nodes", "GET /api/events", "GET /api/pool/{pool_id}"}
    assert any(status == 200 for _, status in sent), "nothing got past validation: the fuzzing is too shallow"


pytestmark = pytest.mark.integration
