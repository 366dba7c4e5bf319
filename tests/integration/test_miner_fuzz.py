"""schemathesis against the miner's own OpenAPI: generated requests signed by the validator (the challenge routes),
by the pool's owner (invite, heartbeat nudge, logs, restart) or by a stranger must never produce a 5xx.

The miner is the real app on uvicorn against the session devnet's chain; it has no task and no orchestrator yet.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import requests
import schemathesis
from eth_account import Account

from fuzzing import SignedBy, fuzz_every_operation, session
from primenet.core.auth import AuthPolicy
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.serve import serve_in_thread
from service_apps import miner_app

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 100
CHOICES = ["entitled", "stranger", "anonymous"]  # who signs: the key the route is for, another key, none
SMALL_N = 64  # a challenge's size is the validator's to choose; generated ones stay small so the product is quick


def test_generated_requests_never_get_a_5xx(devnet: DevnetState, tmp_path: Path) -> None:
    unlimited = AuthPolicy(rate_limit=1_000_000, ip_rate_limit=0)  # every generated request comes from 127.0.0.1
    app, settings, node = miner_app(devnet, devnet.rpc_url, tmp_path, auth=unlimited)
    audience = node.address.lower()
    validator, owner = (session(SignedBy(role_account(role), audience)) for role in ("validator", "orchestrator"))
    stranger, anonymous = session(SignedBy(Account.create(), audience)), session()

    def prepare(case: schemathesis.Case, choice: str) -> requests.Session:
        if isinstance(case.body, dict):
            n = case.body.get("n")
            if isinstance(n, int | float) and not isinstance(n, bool) and math.isfinite(n):  # 64.0 is an int too
                case.body["n"] = 1 + int(n) % SMALL_N
            if "node" in case.body:  # past invite_wrong_node and invite_pool_mismatch, into the chain checks
                case.body.update(node=audience, pool_id=0)
        if choice == "entitled":  # the key each route is for: the validator's challenges, the pool owner's rest
            return validator if case.path.startswith("/challenge/") else owner
        return stranger if choice == "stranger" else anonymous

    with serve_in_thread(app, port=settings.port) as url:
        sent = fuzz_every_operation(
            app.openapi(), url, choices=CHOICES, prepare=prepare, examples=EXAMPLES_PER_OPERATION
        )
    labels = {item.label for item in sent}
    assert labels >= {"POST /challenge/commit", "POST /challenge/open", "POST /invite", "GET /task/logs", "GET /health"}
    codes = {(item.label, item.code) for item in sent}
    assert ("POST /challenge/commit", None) in codes, "no generated challenge was answered"
    assert ("GET /task/logs", "no_task") in codes, "no logs request got past authentication"
    assert ("POST /challenge/open", "signer_unauthorized") in codes, "a stranger's reveal was not refused"
    reached_chain = {("POST /invite", "invite_expired"), ("POST /invite", "node_not_registered")}
    assert codes & reached_chain, "no invite got as far as the chain's checks"
