"""Operational endpoints (issue 15, item 11) on uvicorn against the real devnet chain and Redis.

- `/health` of the orchestrator, discovery and the validator after a loop failed (its peer, or the chain, is a
  closed loopback port): anyone sees `degraded` and the loop's state name, never the error text (before the fix it
  named the failing host and port to anyone); the operator, with the admin token, sees it under `details`.
- `/metrics` with `metrics_require_admin`: refused (401 JSON) without the token; with `metrics_port`: only on that
  separate listener, not on the main one. The default (public on the main listener) still works for the devnet.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from primenet.devnet.accounts import role_account
from primenet.devnet.local import DevnetState
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.discovery.app import create_app as create_discovery
from primenet.discovery.settings import DiscoverySettings
from primenet.orchestrator.app import create_app as create_orchestrator
from primenet.orchestrator.settings import OrchestratorSettings
from primenet.validator.app import create_app as create_validator
from primenet.validator.settings import ValidatorSettings
from waiting import until

TOKEN = "ops-admin-token-0123456789abcdef"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
CLOSED = "http://127.0.0.1:9"  # nothing listens on the discard port: every call to it fails at once
LEAKS = ("127.0.0.1:9", "ConnectError", "ClientConnectorError", "Cannot connect", "connection attempts failed")


def orchestrator_app(devnet: DevnetState, **changes: Any) -> FastAPI:
    settings = OrchestratorSettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        discovery_url=CLOSED,  # the monitor's every pass fails
        admin_token=TOKEN,
        key_prefix="ops" + secrets.token_hex(4),
        **changes,
    )
    return create_orchestrator(settings, role_account("orchestrator"))


def discovery_app(devnet: DevnetState, **changes: Any) -> FastAPI:
    settings = DiscoverySettings(
        redis_url=devnet.redis_url,
        rpc_url=CLOSED,  # the chain sync's every pass fails
        deployment_file=Path(devnet.deployment_file),
        admin_token=TOKEN,
        sync_interval_s=0.2,
        key_prefix="dops" + secrets.token_hex(4),
        **changes,
    )
    return create_discovery(settings)


def validator_app(devnet: DevnetState) -> FastAPI:
    settings = ValidatorSettings(
        redis_url=devnet.redis_url,
        rpc_url=devnet.rpc_url,
        deployment_file=Path(devnet.deployment_file),
        discovery_url=CLOSED,  # the feed's every read fails
        admin_token=TOKEN,
        challenge_backend="numpy",
        key_prefix="vops" + secrets.token_hex(4),
    )
    return create_validator(settings, role_account("validator"))


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    with serve_in_thread(app, port=free_port()) as url:
        yield url


# service -> (its app, the failing loop's name, where the admin finds its error under `details`)
SERVICES: dict[str, tuple[Callable[[DevnetState], FastAPI], str, Callable[[dict[str, Any]], Any]]] = {
    "orchestrator": (orchestrator_app, "monitor", lambda d: d["loops"]["monitor"]["last_error"]),
    "discovery": (discovery_app, "chain_sync", lambda d: d["chain_sync"]["last_error"]),
    "validator": (validator_app, "feed", lambda d: d["feed_error"]),
}


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_health_shows_loop_errors_only_to_the_admin(devnet: DevnetState, service: str) -> None:
    make, loop, error_of = SERVICES[service]
    with served(make(devnet)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:

            async def failing() -> httpx.Response | None:
                # Either sign of the failure ends the wait: the state name, or (the code before the fix) its text.
                response = await http.get("/health")
                state = response.json().get("loops", {}).get(loop, {}).get("state")
                return response if state == "failing" or any(leak in response.text for leak in LEAKS) else None

            anonymous = await until(failing, f"the {service}'s {loop} loop to fail", timeout_s=20)
            privileged = await http.get("/health", headers=ADMIN)
            wrong = await http.get("/health", headers={"authorization": "Bearer " + "x" * 32})
    body = anonymous.json()
    assert body["status"] == "degraded", body
    assert "details" not in body
    for leak in LEAKS:
        assert leak not in anonymous.text, f"anonymous /health shows {leak!r}: {anonymous.text}"
    assert "details" not in wrong.json(), "a wrong token is anonymous"
    assert privileged.status_code == anonymous.status_code
    error = error_of(privileged.json()["details"])
    assert isinstance(error, str), privileged.text
    assert error
    assert any(leak in error for leak in LEAKS), error


async def test_metrics_behind_the_admin_token_when_required(devnet: DevnetState) -> None:
    with served(orchestrator_app(devnet, metrics_require_admin=True)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            anonymous = await http.get("/metrics/")
            wrong = await http.get("/metrics/", headers={"authorization": "Bearer " + "x" * 32})
            privileged = await http.get("/metrics/", headers=ADMIN)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.json()["error"]["code"] == "admin_token_missing"
    assert "primenet_" not in anonymous.text
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "admin_token_invalid"
    assert privileged.status_code == 200
    assert "primenet_orchestrator_heartbeats" in privileged.text


async def test_metrics_on_a_separate_listener_when_a_port_is_set(devnet: DevnetState) -> None:
    port = free_port()
    with served(discovery_app(devnet, metrics_host="127.0.0.1", metrics_port=port)) as url:
        async with httpx.AsyncClient(timeout=30) as http:
            main = await http.get(f"{url}/metrics/", headers=ADMIN)
            separate = await http.get(f"http://127.0.0.1:{port}/metrics/")
            health = await http.get(f"{url}/health")
    assert main.status_code == 404, main.text  # not on the main listener at all, token or not
    assert separate.status_code == 200
    assert "primenet_discovery_nodes" in separate.text
    assert health.status_code == 200
    # The listener went with the app.
    async with httpx.AsyncClient(timeout=5) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/metrics/")


async def test_metrics_stay_public_on_the_main_listener_by_default(devnet: DevnetState) -> None:
    with served(orchestrator_app(devnet)) as url:
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.get(f"{url}/metrics/")
    assert response.status_code == 200
    assert "primenet_orchestrator_heartbeats" in response.text
