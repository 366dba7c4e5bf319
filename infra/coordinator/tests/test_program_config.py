"""Invalid stack configuration fails before any resource is declared, with one message naming every problem."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from harness import RecordingMocks, run_program

pytestmark = pytest.mark.unit

REDIS_PASSWORD = "redis-pw-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef0123456789"
SECRETS = {"redisPassword": REDIS_PASSWORD, "adminToken": ADMIN_TOKEN}
ALL_SECRET_KEYS = ("redisPassword", "adminToken", "deployerKey", "validatorKey", "managerKey", "chain")


def fails(config: dict[str, Any], *, base: dict[str, Any] | None = None) -> str:
    """The error message of a run with `config` over `base` (the two secrets by default); asserts nothing ran."""
    mocks = RecordingMocks()
    with pytest.raises(pulumi.RunError) as caught:
        run_program(mocks, {**(SECRETS if base is None else base), **config}, secret_keys=ALL_SECRET_KEYS)
    assert mocks.resources == [], "nothing may be declared when the config is invalid"
    message = str(caught.value)
    assert message.startswith("invalid configuration of stack test:")
    return message


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"ports": {"redis": 70000}}, "primenet:ports.redis: Input should be less than or equal to 65535"),
        ({"ports": {"discovery": 0}}, "primenet:ports.discovery: Input should be greater than or equal to 1"),
        ({"ports": {"discovery": "http"}}, "primenet:ports.discovery: Input should be a valid integer"),
        ({"ports": {"orchestrator": 8089}}, "primenet:ports: discovery and orchestrator both use port 8089"),
        ({"ports": {"redis": 8545}}, "primenet:ports: chain and redis both use port 8545"),
        ({"ports": {"grafana": 3000}}, "primenet:ports.grafana: Extra inputs are not permitted"),
        ({"imageTag": "dev latest"}, "primenet:imageTag: String should match pattern"),
        ({"imageTag": ":dev"}, "primenet:imageTag: String should match pattern"),
        ({"images": {"redis": "Redis:7"}}, "primenet:images.redis: String should match pattern"),
        ({"publicUrl": "orch.example.org:8090"}, "primenet:publicUrl: must be an http:// or https:// URL"),
        ({"publicUrl": "ftp://orch.example.org"}, "primenet:publicUrl: must be an http:// or https:// URL"),
        ({"bindAddress": "localhost"}, "primenet:bindAddress: must be an IP address"),
        (
            {"timers": {"heartbeatIntervalS": 30, "unhealthyAfterS": 20}},
            "primenet:timers: need heartbeatIntervalS < unhealthyAfterS < deadAfterS",
        ),
        ({"timers": {"deadAfterS": -1}}, "primenet:timers.deadAfterS: Input should be greater than 0"),
        ({"chain": {"mode": "ganache"}}, "primenet:chain.mode: Input should be 'anvil' or 'external'"),
        ({"poolId": "-1"}, "primenet:poolId: Input should be greater than or equal to 0"),
        ({"poolId": "3"}, "primenet:poolId: only for chain.mode external"),
        ({"challengeN": "99999"}, "primenet:challengeN: Input should be less than or equal to 16384"),
        ({"chain": "{not json"}, "primenet:chain: not valid JSON"),
        ({"validatorKey": "0x1234"}, "primenet:validatorKey: must be a private key"),
    ],
)
def test_a_bad_value_is_named_with_its_rule(config: dict[str, Any], expected: str) -> None:
    assert expected in fails(config)


@pytest.mark.parametrize("key", ["redisPassword", "adminToken"])
def test_a_missing_secret_names_the_command_that_sets_it(key: str) -> None:
    base = {k: v for k, v in SECRETS.items() if k != key}
    message = fails({}, base=base)
    assert f"primenet:{key}: missing; set it with `pulumi config set --secret primenet:{key} " in message


def test_weak_secrets_are_refused_without_echoing_them() -> None:
    weak_token, weak_password = "short-token", "has space in it!"
    message = fails({"adminToken": weak_token, "redisPassword": weak_password})
    assert "primenet:adminToken: must be at least 32 characters" in message
    assert "primenet:redisPassword: must be 16-256 characters" in message
    assert weak_token not in message
    assert weak_password not in message


def test_every_field_problem_is_reported_at_once() -> None:
    message = fails({"ports": {"redis": 70000}, "imageTag": "bad tag", "publicUrl": "nope"}, base={})
    for key in ("ports.redis", "imageTag", "publicUrl", "redisPassword", "adminToken"):
        assert f"primenet:{key}:" in message
    assert len(message.splitlines()) == 6


def test_external_mode_names_what_it_needs() -> None:
    message = fails({"chain": {"mode": "external"}})
    for key in ("chain.rpcUrl", "chain.deployment", "poolId", "validatorKey", "managerKey"):
        assert f"primenet:{key}: required when chain.mode is external" in message
    assert "pulumi config set --secret primenet:managerKey" in message


def test_external_mode_checks_the_deployment_and_the_rpc_url() -> None:
    chain = {"mode": "external", "rpcUrl": "arb-sepolia.example", "deployment": json.dumps({"chain_id": 5})}
    message = fails({"chain": chain, "poolId": "1", "validatorKey": "0x" + "1" * 64, "managerKey": "0x" + "2" * 64})
    assert "primenet:chain.rpcUrl: must be an http(s):// or ws(s):// URL" in message
    chain["rpcUrl"] = "https://arb-sepolia.example"
    message = fails({"chain": chain, "poolId": "1", "validatorKey": "0x" + "1" * 64, "managerKey": "0x" + "2" * 64})
    assert "primenet:chain.deployment: not a deployment file (contracts: Field required)" in message
    chain["deployment"] = json.dumps({"chain_id": 421614, "contracts": {}})
    chain["chainId"] = 1  # type: ignore[assignment]
    message = fails({"chain": chain, "poolId": "1", "validatorKey": "0x" + "1" * 64, "managerKey": "0x" + "2" * 64})
    assert "primenet:chain.chainId: 1 but the deployment is on chain 421614" in message


def test_anvil_mode_refuses_external_settings() -> None:
    message = fails({"chain": {"rpcUrl": "https://rpc.example"}})
    assert "primenet:chain.rpcUrl: only for chain.mode external" in message
