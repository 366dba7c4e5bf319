"""The coordinator program under recording mocks: every resource's inputs, the wiring between them, the secrets.

Each test runs the real `__main__.py` (through `harness.run_program`) and checks what it declared; nothing here
re-lists the containers by hand except as expectations.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from harness import ProgramResult, RecordingMocks, Registration, run_program, sample_bootstrap_result

pytestmark = pytest.mark.unit

CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
IMAGE = "docker:index/remoteImage:RemoteImage"
ALLOWED_CUSTOM_TYPES = {CONTAINER, VOLUME, IMAGE}

REDIS_PASSWORD = "redis-pw-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef0123456789"
SECRETS = {"redisPassword": REDIS_PASSWORD, "adminToken": ADMIN_TOKEN}
SECRET_KEYS = tuple(SECRETS)
# Anvil's public dev accounts 1 (validator) and 2 (orchestrator manager).
DEV_VALIDATOR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
DEV_MANAGER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
OTHER_KEY = "0x" + "11" * 32
OTHER_KEY_2 = "0x" + "22" * 32

EXISTING_DEPLOYMENT = {
    "chain_id": 421614,
    "block": 123,
    "deployer": "0x0000000000000000000000000000000000000001",
    "federator": "0x0000000000000000000000000000000000000001",
    "validator": "0x0000000000000000000000000000000000000002",
    "contracts": {"PrimeNetwork": "0x00000000000000000000000000000000000000aa"},
    "unbonding_period_s": 60,
    "stake_minimum": 1,
}


def run(config: dict[str, Any] | None = None, secret_keys: tuple[str, ...] = (), **mocks: Any) -> ProgramResult:
    full = {**SECRETS, **(config or {})}
    return run_program(RecordingMocks(**mocks), full, secret_keys=SECRET_KEYS + secret_keys, stack="test")


@pytest.fixture(scope="module")
def anvil() -> ProgramResult:
    return run(bootstrap_result=sample_bootstrap_result(pool_id=42))


def container(result: ProgramResult, part: str) -> Registration:
    return result.one(CONTAINER, f"{part}-container")


def env(registration: Registration) -> dict[str, str]:
    return dict(item.split("=", 1) for item in registration.inputs.get("envs", []))


def uploads(registration: Registration) -> dict[str, dict[str, Any]]:
    return {upload["file"]: upload for upload in registration.inputs.get("uploads", [])}


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, f"{path}.{index}" if path else str(index))
    else:
        yield path, value


# --- what is declared ------------------------------------------------------------------------------------------


def test_anvil_mode_declares_six_containers_their_images_and_volumes(anvil: ProgramResult) -> None:
    custom = [r for r in anvil.registrations if r.custom]
    assert {r.type for r in custom} == ALLOWED_CUSTOM_TYPES
    names = {r.inputs["name"] for r in anvil.of_type(CONTAINER)}
    parts = ["chain", "redis", "contracts", "discovery", "orchestrator", "validator"]
    assert names == {f"primenet-test-{part}" for part in parts}
    assert sorted(anvil.outputs["containers"]) == sorted(names)
    images = {r.name: r.inputs for r in anvil.of_type(IMAGE)}
    expected = {part: f"primenet/{part}:dev" for part in parts} | {"contracts": "primenet/orchestrator:dev"}
    assert {name.removesuffix("-image"): inputs["name"] for name, inputs in images.items()} == expected
    assert all(inputs["keepLocally"] is True for inputs in images.values())
    volumes = {r.inputs["name"] for r in anvil.of_type(VOLUME)}
    assert volumes == {"primenet-test-chain-data", "primenet-test-redis-data", "primenet-test-contracts-deployment"}


def test_every_container_and_volume_carries_the_stack_and_part_labels(anvil: ProgramResult) -> None:
    for registration in anvil.of_type(CONTAINER) + anvil.of_type(VOLUME):
        labels = {item["label"]: item["value"] for item in registration.inputs["labels"]}
        assert labels["org.primenet.stack"] == "primenet-test"
        assert registration.inputs["name"].startswith(f"primenet-test-{labels['org.primenet.part']}")
    assert anvil.outputs["stackLabel"] == "primenet-test"


def test_containers_use_host_networking_the_image_user_and_the_image_id(anvil: ProgramResult) -> None:
    image_ids = {r.name.removesuffix("-image"): f"{r.name}" for r in anvil.of_type(IMAGE)}
    for registration in anvil.of_type(CONTAINER):
        part = registration.name.removesuffix("-container")
        assert registration.inputs["networkMode"] == "host"
        assert registration.inputs["user"] == "10001:10001"
        assert registration.inputs["image"].startswith("sha256:"), "the container must use RemoteImage.image_id"
        image_urn = next(r.urn for r in anvil.of_type(IMAGE) if r.name == image_ids[part])
        assert image_urn in registration.dependencies


def test_image_tag_and_per_part_overrides() -> None:
    result = run({"imageTag": "1.2.3", "images": {"redis": "registry.example:5000/ops/redis:7"}})
    images = {r.name.removesuffix("-image"): r.inputs["name"] for r in result.of_type(IMAGE)}
    assert images["redis"] == "registry.example:5000/ops/redis:7"
    assert images["discovery"] == "primenet/discovery:1.2.3"
    assert images["contracts"] == "primenet/orchestrator:1.2.3"


def test_chain_runs_anvil_on_loopback_with_its_state_on_a_volume(anvil: ProgramResult) -> None:
    chain = container(anvil, "chain")
    assert chain.inputs["command"] == [
        "--host", "127.0.0.1", "--port", "8545", "--chain-id", "31337", "--state", "/data/anvil-state.json",
    ]  # fmt: skip
    assert chain.inputs["volumes"] == [
        {"volumeName": "primenet-test-chain-data", "containerPath": "/data", "readOnly": False}
    ]
    assert chain.inputs["healthcheck"]["tests"] == ["CMD", "primenet-healthcheck", "rpc", "8545"]


def test_redis_gets_its_config_only_as_a_secret_file(anvil: ProgramResult) -> None:
    redis = container(anvil, "redis")
    assert redis.inputs["command"] == ["/run/secrets/primenet/redis.conf"]
    conf = uploads(redis)["/run/secrets/primenet/redis.conf"]
    lines = conf["content"].splitlines()
    assert f"requirepass {REDIS_PASSWORD}" in lines
    assert {"bind 127.0.0.1", "port 6379", "appendonly yes", "appendfsync always", "dir /data"} <= set(lines)
    assert redis.is_secret("uploads.0.content")
    assert redis.inputs["volumes"] == [
        {"volumeName": "primenet-test-redis-data", "containerPath": "/data", "readOnly": False}
    ]
    assert redis.inputs["healthcheck"]["tests"] == ["CMD", "primenet-healthcheck", "redis", "6379"]
    assert "envs" not in redis.inputs or not redis.inputs["envs"]


def test_contracts_bootstrap_is_a_one_shot_with_the_dev_accounts(anvil: ProgramResult) -> None:
    contracts = container(anvil, "contracts")
    assert contracts.inputs["command"] == [
        "chain", "bootstrap", "--validator", DEV_VALIDATOR, "--manager", DEV_MANAGER, "--json",
    ]  # fmt: skip
    assert env(contracts) == {
        "PRIMENET_RPC_URL": "http://127.0.0.1:8545",
        "PRIMENET_DEPLOYMENT": "/run/primenet/deployment/deployment.json",
        "PRIMENET_KEY_FILE": "/run/secrets/primenet/deployer_key",
    }
    key = uploads(contracts)["/run/secrets/primenet/deployer_key"]
    assert (key["permissions"], key["owner"], key["group"]) == ("0600", "10001", "10001")
    assert contracts.inputs["volumes"] == [
        {"volumeName": "primenet-test-contracts-deployment", "containerPath": "/run/primenet/deployment",
         "readOnly": False}
    ]  # fmt: skip
    inputs = contracts.inputs
    assert (inputs["restart"], inputs["mustRun"], inputs["attach"], inputs["logs"]) == ("no", False, True, True)
    assert inputs["wait"] is False
    assert inputs["healthcheck"] == {"tests": ["NONE"]}, "must not inherit the orchestrator image's HEALTHCHECK"


def test_configured_keys_replace_the_dev_accounts() -> None:
    result = run({"validatorKey": OTHER_KEY, "managerKey": OTHER_KEY_2}, secret_keys=("validatorKey", "managerKey"))
    command = container(result, "contracts").inputs["command"]
    validator, manager = command[3], command[5]
    assert validator not in (DEV_VALIDATOR, DEV_MANAGER)
    assert manager not in (DEV_VALIDATOR, DEV_MANAGER)
    assert validator != manager
    assert validator.startswith("0x")
    assert len(validator) == 42
    assert uploads(container(result, "validator"))["/run/secrets/primenet/validator_key"]["content"] == OTHER_KEY
    assert uploads(container(result, "orchestrator"))["/run/secrets/primenet/manager_key"]["content"] == OTHER_KEY_2


# --- wiring between services -----------------------------------------------------------------------------------


def test_services_are_wired_to_each_other_and_to_the_bootstrap_result(anvil: ProgramResult) -> None:
    shared = {
        "PRIMENET_CHAIN_ID": "31337",
        "PRIMENET_DEPLOYMENT_FILE": "/run/primenet/deployment/deployment.json",
        "PRIMENET_RPC_URL": "http://127.0.0.1:8545",
        "PRIMENET_SECRETS_DIR": "/run/secrets/primenet",
        "PRIMENET_HOST": "0.0.0.0",
        "PRIMENET_ALLOW_LOOPBACK_NODES": "false",  # node addresses: global only, unless the stack says otherwise
        "PRIMENET_ALLOW_PRIVATE_NODES": "false",
    }
    discovery, orchestrator, validator = (env(container(anvil, p)) for p in ("discovery", "orchestrator", "validator"))
    assert discovery == {**shared, "PRIMENET_PORT": "8089"}
    assert orchestrator == {
        **shared,
        "PRIMENET_PORT": "8090",
        "PRIMENET_DISCOVERY_URL": "http://127.0.0.1:8089",
        "PRIMENET_PUBLIC_URL": "http://127.0.0.1:8090",
        "PRIMENET_POOL_ID": "42",
        "PRIMENET_MANAGER_KEY_FILE": "/run/secrets/primenet/manager_key",
        "PRIMENET_HEARTBEAT_INTERVAL_S": "10",
        "PRIMENET_UNHEALTHY_AFTER_S": "45",
        "PRIMENET_DEAD_AFTER_S": "120",
    }
    assert validator == {
        **shared,
        "PRIMENET_PORT": "8093",
        "PRIMENET_DISCOVERY_URL": "http://127.0.0.1:8089",
        "PRIMENET_VALIDATOR_KEY_FILE": "/run/secrets/primenet/validator_key",
        "PRIMENET_CHALLENGE_N": "256",
    }
    assert [container(anvil, p).inputs["command"] for p in ("discovery", "orchestrator", "validator")] == [
        ["discovery"], ["orchestrator"], ["validator", "run"],
    ]  # fmt: skip


def test_ports_bind_address_public_url_timers_and_challenge_size_reach_the_services() -> None:
    result = run(
        {
            "bindAddress": "127.0.0.1",
            "ports": {"discovery": 9089, "orchestrator": 9090, "validator": 9093, "redis": 6390, "chain": 9545},
            "publicUrl": "https://orch.example.org/",
            "timers": {"heartbeatIntervalS": 2, "unhealthyAfterS": 6.5, "deadAfterS": 20},
            "challengeN": "1024",
        }
    )
    orchestrator, validator = env(container(result, "orchestrator")), env(container(result, "validator"))
    assert orchestrator["PRIMENET_HOST"] == "127.0.0.1"
    assert orchestrator["PRIMENET_PORT"] == "9090"
    assert orchestrator["PRIMENET_DISCOVERY_URL"] == validator["PRIMENET_DISCOVERY_URL"] == "http://127.0.0.1:9089"
    assert orchestrator["PRIMENET_PUBLIC_URL"] == "https://orch.example.org"
    assert orchestrator["PRIMENET_RPC_URL"] == "http://127.0.0.1:9545"
    assert (orchestrator["PRIMENET_HEARTBEAT_INTERVAL_S"], orchestrator["PRIMENET_UNHEALTHY_AFTER_S"]) == ("2", "6.5")
    assert validator["PRIMENET_CHALLENGE_N"] == "1024"
    redis_url = uploads(container(result, "discovery"))["/run/secrets/primenet/primenet_redis_url"]["content"]
    assert redis_url == f"redis://:{REDIS_PASSWORD}@127.0.0.1:6390/0"
    assert "port 6390" in uploads(container(result, "redis"))["/run/secrets/primenet/redis.conf"]["content"]
    assert container(result, "chain").inputs["healthcheck"]["tests"][-1] == "9545"
    assert result.outputs["orchestratorUrl"] == "https://orch.example.org"
    assert result.outputs["discoveryUrl"] == "http://127.0.0.1:9089"
    assert result.outputs["validatorUrl"] == "http://127.0.0.1:9093"


def test_services_mount_the_deployment_read_only(anvil: ProgramResult) -> None:
    for part in ("discovery", "orchestrator", "validator"):
        assert container(anvil, part).inputs["volumes"] == [
            {"volumeName": "primenet-test-contracts-deployment", "containerPath": "/run/primenet/deployment",
             "readOnly": True}
        ]  # fmt: skip


# --- secrets ----------------------------------------------------------------------------------------------------


def test_secret_files_are_0600_owned_by_the_service_user_and_marked_secret(anvil: ProgramResult) -> None:
    expected = {
        "discovery": {"primenet_redis_url", "primenet_admin_token"},
        "orchestrator": {"primenet_redis_url", "primenet_admin_token", "manager_key"},
        "validator": {"primenet_redis_url", "primenet_admin_token", "validator_key"},
    }
    for part, files in expected.items():
        registration = container(anvil, part)
        found = uploads(registration)
        assert set(found) == {f"/run/secrets/primenet/{name}" for name in files}
        for index, upload in enumerate(registration.inputs["uploads"]):
            assert (upload["permissions"], upload["owner"], upload["group"]) == ("0600", "10001", "10001")
            assert registration.is_secret(f"uploads.{index}.content")
        assert found["/run/secrets/primenet/primenet_admin_token"]["content"] == ADMIN_TOKEN


def test_no_secret_value_appears_outside_secret_inputs_or_in_plain_outputs(anvil: ProgramResult) -> None:
    secrets = {REDIS_PASSWORD, ADMIN_TOKEN}
    for registration in anvil.of_type(CONTAINER):
        for index, upload in enumerate(registration.inputs.get("uploads", [])):
            if upload["permissions"] == "0600":
                assert registration.is_secret(f"uploads.{index}.content")
                secrets.add(upload["content"].removeprefix("0x"))
    assert len(secrets) >= 5  # password, token, deployer, validator and manager keys
    for registration in anvil.registrations:
        # The only place a secret may be is the content of a 0600 upload (a secret env is still an env).
        allowed = {
            f"uploads.{index}.content"
            for index, upload in enumerate(registration.inputs.get("uploads", []))
            if upload["permissions"] == "0600"
        }
        for path, value in leaves(dict(registration.inputs)):
            if path in allowed:
                continue
            text = str(value)
            leaked = [s for s in secrets if s in text]
            assert not leaked, f"{registration.name}.{path} carries a secret in plain"
        assert not [path for path in registration.secret_paths if not path.startswith("uploads")]
    plain_outputs = json.dumps({k: v for k, v in anvil.outputs.items() if k not in anvil.secret_outputs})
    assert not [s for s in secrets if s in plain_outputs]
    assert anvil.secret_outputs == frozenset()


def test_secret_keys_must_be_stored_as_pulumi_secrets() -> None:
    with pytest.raises(Exception, match=r"primenet:adminToken: stored in plain text; .*--secret") as caught:
        run_program(RecordingMocks(), SECRETS, secret_keys=["redisPassword"])
    assert ADMIN_TOKEN not in str(caught.value)


# --- lifecycle and order ----------------------------------------------------------------------------------------


def test_long_running_containers_restart_and_are_awaited_until_healthy(anvil: ProgramResult) -> None:
    for part in ("chain", "redis", "discovery", "orchestrator", "validator"):
        inputs = container(anvil, part).inputs
        assert (inputs["restart"], inputs["mustRun"], inputs["wait"]) == ("unless-stopped", True, True)
        assert inputs["waitTimeout"] == 180
        assert inputs["attach"] is False
        health = inputs["healthcheck"]
        assert health["tests"][:2] == ["CMD", "primenet-healthcheck"]
        assert (health["interval"], health["timeout"], health["startPeriod"], health["retries"]) == (
            "5s",
            "3s",
            "5s",
            12,
        )
    for part in ("discovery", "orchestrator", "validator"):
        assert container(anvil, part).inputs["healthcheck"]["tests"] == ["CMD", "primenet-healthcheck"]


def test_dependency_order_waits_for_chain_redis_bootstrap_then_discovery(anvil: ProgramResult) -> None:
    urns = {part: container(anvil, part).urn for part in ("chain", "redis", "contracts", "discovery")}

    def container_deps(part: str) -> set[str]:
        return {urn for urn in container(anvil, part).dependencies if anvil.by_urn(urn).type == CONTAINER}

    assert container_deps("chain") == set()
    assert container_deps("redis") == set()
    assert container_deps("contracts") == {urns["chain"], urns["redis"]}
    assert container_deps("discovery") == {urns["chain"], urns["redis"], urns["contracts"]}
    for part in ("orchestrator", "validator"):
        assert container_deps(part) == set(urns.values())
    volume_urn = anvil.one(VOLUME, "contracts-deployment-volume").urn
    assert volume_urn in container(anvil, "contracts").dependencies


def test_stack_outputs_come_from_the_bootstrap(anvil: ProgramResult) -> None:
    expected = sample_bootstrap_result(pool_id=42)["deployment"]["contracts"]
    assert anvil.outputs["poolId"] == 42
    assert anvil.outputs["contracts"] == expected
    assert anvil.outputs["chainId"] == 31337
    assert anvil.outputs["rpcUrl"] == "http://127.0.0.1:8545"
    assert anvil.outputs["deployment"] == sample_bootstrap_result(pool_id=42)["deployment"]
    assert set(anvil.outputs) == {
        "discoveryUrl", "orchestratorUrl", "validatorUrl", "rpcUrl", "chainId", "poolId", "contracts", "deployment",
        "containers", "stackLabel",
    }  # fmt: skip


def test_bootstrap_line_after_docker_stream_headers_is_found() -> None:
    line = json.dumps(sample_bootstrap_result(pool_id=5))
    logs = "\x01\x00\x00\x00\x00\x00\x00\x10deploying...\n\x01\x00\x00\x00\x00\x00\x01\x7b" + line + "\n"
    result = run(bootstrap_logs=logs)
    assert result.outputs["poolId"] == 5
    assert env(container(result, "orchestrator"))["PRIMENET_POOL_ID"] == "5"


@pytest.mark.parametrize(
    ("logs", "message"),
    [
        ("Error: cannot reach http://127.0.0.1:8545\n", r"printed no JSON result; its last lines:\nError: cannot"),
        ('{"deployed": true}\n', r"printed an unexpected result \(pool_created: Field required\)"),
    ],
)
def test_a_failed_bootstrap_fails_the_update_with_its_output(logs: str, message: str) -> None:
    with pytest.raises(Exception, match=message):
        run(bootstrap_logs=logs)


def test_runs_are_independent_within_one_process(anvil: ProgramResult) -> None:
    other = run_program(RecordingMocks(), SECRETS, secret_keys=SECRET_KEYS, stack="prod")
    assert other.outputs["stackLabel"] == "primenet-prod"
    assert len(other.registrations) == len(anvil.registrations)
    again = run(bootstrap_result=sample_bootstrap_result(pool_id=42))
    assert again.outputs == anvil.outputs
    assert sorted(r.urn for r in again.registrations) == sorted(r.urn for r in anvil.registrations)


def test_a_run_after_asyncio_run_has_an_event_loop_and_leaves_none_behind() -> None:
    asyncio.run(asyncio.sleep(0))  # as the devnet and other tests do: the main thread then has no current loop
    assert run(bootstrap_result=sample_bootstrap_result(pool_id=7)).outputs["poolId"] == 7
    with pytest.raises(RuntimeError, match="no current event loop"):
        asyncio.get_event_loop_policy().get_event_loop()


def test_the_dev_stack_file_is_a_valid_config() -> None:
    stack_file = Path(__file__).resolve().parents[1] / "Pulumi.dev.yaml"
    values = yaml.safe_load(stack_file.read_text())["config"]
    result = run_program(RecordingMocks(), {**values, **SECRETS}, secret_keys=SECRET_KEYS, stack="dev")
    assert env(container(result, "discovery"))["PRIMENET_HOST"] == "127.0.0.1"
    assert result.outputs["containers"][0].startswith("primenet-dev-")
    for part in ("discovery", "orchestrator", "validator"):  # its miners run on the host and publish 127.0.0.x
        assert env(container(result, part))["PRIMENET_ALLOW_LOOPBACK_NODES"] == "true"
        assert env(container(result, part))["PRIMENET_ALLOW_PRIVATE_NODES"] == "false"


# --- external chain ---------------------------------------------------------------------------------------------


def external_config(**extra: Any) -> dict[str, Any]:
    return {
        "chain": {"mode": "external", "rpcUrl": "https://arb-sepolia.example/v2/KEY123", "deployment":
                  json.dumps(EXISTING_DEPLOYMENT)},
        "poolId": "3",
        "validatorKey": OTHER_KEY,
        "managerKey": OTHER_KEY_2,
        **extra,
    }  # fmt: skip


def test_external_chain_has_no_chain_or_contracts_container_and_uses_the_existing_deployment() -> None:
    result = run(external_config(), secret_keys=("validatorKey", "managerKey", "chain"))
    names = {r.inputs["name"] for r in result.of_type(CONTAINER)}
    assert names == {f"primenet-test-{part}" for part in ("redis", "discovery", "orchestrator", "validator")}
    assert {r.inputs["name"] for r in result.of_type(VOLUME)} == {"primenet-test-redis-data"}
    for part in ("discovery", "orchestrator", "validator"):
        registration = container(result, part)
        variables = env(registration)
        assert "PRIMENET_RPC_URL" not in variables
        assert variables["PRIMENET_CHAIN_ID"] == "421614"
        files = uploads(registration)
        assert files["/run/secrets/primenet/primenet_rpc_url"]["content"] == "https://arb-sepolia.example/v2/KEY123"
        assert files["/run/secrets/primenet/primenet_rpc_url"]["permissions"] == "0600"
        deployment = files["/run/primenet/deployment/deployment.json"]
        assert json.loads(deployment["content"]) == EXISTING_DEPLOYMENT
        assert deployment["permissions"] == "0644"
        assert registration.inputs.get("volumes", []) == []
    assert env(container(result, "orchestrator"))["PRIMENET_POOL_ID"] == "3"
    assert result.outputs["poolId"] == 3
    assert result.outputs["contracts"] == EXISTING_DEPLOYMENT["contracts"]
    assert result.outputs["chainId"] == 421614
    assert result.outputs["rpcUrl"] == "https://arb-sepolia.example/v2/KEY123"
    assert result.secret_outputs == {"rpcUrl"}, "an RPC URL set as a secret stays secret in the outputs"
    assert "KEY123" not in json.dumps(env(container(result, "orchestrator")))


def test_external_chain_rpc_url_in_plain_config_is_a_plain_output() -> None:
    result = run(external_config(), secret_keys=("validatorKey", "managerKey"))
    assert result.secret_outputs == frozenset()
    assert result.outputs["rpcUrl"].startswith("https://arb-sepolia.example/")
