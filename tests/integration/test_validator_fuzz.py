"""schemathesis against the validator's own OpenAPI (its operator routes), with and without the admin token, over a
store that holds a rejection an older version wrote: never a 5xx."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest
import requests
import schemathesis

from fuzzing import fuzz_every_operation, session
from primenet.core.redisdb import connect
from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.validator.app import create_app
from primenet.validator.settings import ValidatorSettings

pytestmark = pytest.mark.integration

TOKEN = "validator-fuzz-token-" + secrets.token_hex(8)


class Bearer(requests.auth.AuthBase):
    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {TOKEN}"
        return request


async def test_generated_requests_never_get_a_5xx(devnet: DevnetState) -> None:
    prefix = "vfuzz" + secrets.token_hex(4)
    redis = connect(devnet.redis_url)
    try:
        old = {"node": "0x" + "ab" * 20, "url": "u", "claimed_gpu": "g", "outcome": "rejected", "reason": "too_slow",
               "detail": "d", "figures": {"ratio": None}, "backend": None, "at": time.time()}  # fmt: skip
        await redis.lpush(f"{prefix}:rejections", json.dumps(old), json.dumps({**old, "figures": {"ratio": 2.0}}))
    finally:
        await redis.aclose()
    settings = ValidatorSettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        discovery_url=f"http://127.0.0.1:{free_port()}",
        admin_token=TOKEN,
        key_prefix=prefix,
    )
    app = create_app(settings, role_account("validator"))
    sessions = {"admin": session(Bearer()), "anonymous": session()}

    def prepare(_: schemathesis.Case, choice: str) -> requests.Session:
        return sessions[choice]

    with serve_in_thread(app, port=free_port()) as url:
        sent = fuzz_every_operation(app.openapi(), url, choices=sorted(sessions), prepare=prepare, examples=150)
    assert any(item.label == "GET /rejections" and item.status == 200 for item in sent)
    assert any(item.label == "GET /rejections" and item.code == "admin_token_missing" for item in sent)
