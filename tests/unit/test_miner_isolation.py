"""The provider's task policy turned into Docker's create config: network, capabilities, user, limits, allowlists,
refusals; the `isolated` network's bridge config and its firewall rules, at the config level."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

import docker.auth
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from primenet.cli import pool
from primenet.cli.main import app
from primenet.core.models import TaskSpec
from primenet.miner import firewall
from primenet.miner.isolation import (
    ICC_OPTION,
    Isolation,
    Refusal,
    TaskPolicy,
    isolate,
    network_config,
    network_mismatch,
    registry_of,
)
from primenet.miner.settings import MinerSettings
from primenet.orchestrator.models import StoredTask, TaskRequest

pytestmark = pytest.mark.unit


def spec(**changes: Any) -> TaskSpec:
    return TaskSpec(**{"task_id": "t1", "image": "registry.provider.test/train:2", **changes})


def admitted(task: TaskSpec, policy: TaskPolicy) -> Isolation:
    decision = isolate(task, policy)
    assert isinstance(decision, Isolation), decision
    return decision


def refused(task: TaskSpec, policy: TaskPolicy) -> str:
    decision = isolate(task, policy)
    assert isinstance(decision, Refusal), decision
    return decision.reason


# --- the container config ------------------------------------------------------------------------------------


def test_default_policy_is_the_isolated_network_as_nobody_without_capabilities() -> None:
    config = admitted(spec(), TaskPolicy()).config
    assert config["network"] == "primenet-tasks"
    assert "network_mode" not in config  # never the host's namespace unless asked for
    assert config["cap_drop"] == ["ALL"]
    assert "cap_add" not in config
    assert config["user"] == "65534:65534"
    assert config["security_opt"] == ["no-new-privileges"]
    assert config["privileged"] is False
    assert config["pids_limit"] == 512
    assert "read_only" not in config


@pytest.mark.parametrize("network", ["none", "host"])
def test_none_and_host_are_network_modes(network: Any) -> None:
    config = admitted(spec(), TaskPolicy(network=network)).config
    assert config["network_mode"] == network
    assert "network" not in config


def test_capabilities_added_are_only_the_providers() -> None:
    config = admitted(spec(), TaskPolicy(cap_add=("NET_BIND_SERVICE",))).config
    assert (config["cap_drop"], config["cap_add"]) == (["ALL"], ["NET_BIND_SERVICE"])
    with pytest.raises(ValueError, match="not a capability"):
        TaskPolicy(cap_add=("ALL",))


def test_root_only_when_asked_and_allowed() -> None:
    assert "root" in refused(spec(run_as_root=True), TaskPolicy())
    assert admitted(spec(run_as_root=True), TaskPolicy(allow_root=True)).config["user"] == "0:0"
    assert admitted(spec(), TaskPolicy(allow_root=True)).config["user"] == "65534:65534"  # not asked: not root


def test_read_only_root_filesystem_has_a_tmpfs_tmp() -> None:
    config = admitted(spec(), TaskPolicy(read_only_rootfs=True, tmpfs_mib=128)).config
    assert config["read_only"] is True
    assert config["tmpfs"] == {"/tmp": "rw,nosuid,nodev,size=128m"}


def test_requests_within_the_caps_are_kept() -> None:
    policy = TaskPolicy(max_cpus=8, max_memory_mib=8192, max_shm_mib=1024)
    made = admitted(spec(cpu_limit=1.5, memory_limit_mib=2048, shm_size_mib=256), policy)
    assert made.config["nano_cpus"] == 1_500_000_000
    assert made.config["mem_limit"] == made.config["memswap_limit"] == "2048m"
    assert made.config["shm_size"] == "256m"
    assert made.notes == ()


def test_requests_over_the_caps_are_capped_with_a_note() -> None:
    policy = TaskPolicy(max_cpus=2, max_memory_mib=1024, max_shm_mib=128)
    made = admitted(spec(cpu_limit=64, memory_limit_mib=65536, shm_size_mib=4096), policy)
    assert made.config["nano_cpus"] == 2_000_000_000
    assert made.config["mem_limit"] == made.config["memswap_limit"] == "1024m"
    assert made.config["shm_size"] == "128m"
    assert len(made.notes) == 3
    assert any("memory 65536 MiB asked for, capped to 1024 MiB" in note for note in made.notes)


def test_no_request_gets_the_cap_and_no_cap_no_limit() -> None:
    capped = admitted(spec(), TaskPolicy(max_cpus=4, max_memory_mib=4096)).config
    assert (capped["nano_cpus"], capped["mem_limit"], capped["shm_size"]) == (4_000_000_000, "4096m", "64m")
    uncapped = admitted(spec(), TaskPolicy()).config
    assert "nano_cpus" not in uncapped
    assert "mem_limit" not in uncapped


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("registry.provider.test/train:2", True),
        ("registry.provider.test/train@sha256:" + "a" * 64, True),
        ("registry.provider.test/other:1", False),
        ("elsewhere.test/train:2", False),
        ("train:2", False),
    ],
)
def test_image_allowlist(image: str, allowed: bool) -> None:
    policy = TaskPolicy(image_allowlist=("registry.provider.test/train[:@]*",))
    decision = isolate(spec(image=image), policy)
    assert isinstance(decision, Isolation) is allowed
    if not allowed:
        assert isinstance(decision, Refusal)
        assert "image allowlist" in decision.reason


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("registry.provider.test/org/train:2", "registry.provider.test"),
        ("localhost:5000/train", "localhost:5000"),
        ("train:2", docker.auth.INDEX_NAME),  # a bare name pulls from Docker's default index
        ("org/train", docker.auth.INDEX_NAME),
    ],
)
def test_registry_of(image: str, registry: str) -> None:
    assert registry_of(image) == registry


def test_registry_allowlist() -> None:
    policy = TaskPolicy(registry_allowlist=("*.provider.test", "localhost:5000"))
    assert isinstance(isolate(spec(image="registry.provider.test/x:1"), policy), Isolation)
    assert isinstance(isolate(spec(image="localhost:5000/x:1"), policy), Isolation)
    assert "registry allowlist" in refused(spec(image="evil.test/x:1"), policy)
    assert "registry allowlist" in refused(spec(image="busybox:1"), policy)  # the default index is not listed


# --- the isolated network ------------------------------------------------------------------------------------


def test_isolated_network_is_a_bridge_without_inter_container_traffic() -> None:
    made = network_config(TaskPolicy())
    assert (made["name"], made["driver"], made["internal"]) == ("primenet-tasks", "bridge", False)
    assert made["options"][ICC_OPTION] == "false"
    # The bridge interface carries the network's name, so the firewall's `-i primenet-tasks` matches it.
    assert made["options"]["com.docker.network.bridge.name"] == "primenet-tasks"
    assert made["options"]["com.docker.network.bridge.enable_ip_masquerade"] == "true"
    internal = network_config(TaskPolicy(network_internal=True))
    assert internal["internal"] is True
    assert "com.docker.network.bridge.enable_ip_masquerade" not in internal["options"]


def test_an_existing_network_with_icc_on_is_refused() -> None:
    policy = TaskPolicy()
    assert network_mismatch(network_config(policy)["options"], policy) is None
    assert network_mismatch({"com.docker.network.bridge.name": "primenet-tasks"}, policy) is not None
    wrong = {**network_config(policy)["options"], ICC_OPTION: "true"}
    assert "enable_icc" in (network_mismatch(wrong, policy) or "")


def test_network_name_must_be_an_interface_name() -> None:
    with pytest.raises(ValueError, match="interface"):
        TaskPolicy(network_name="a-name-longer-than-15")


# --- the firewall's rules --------------------------------------------------------------------------------------


def actions(steps: Sequence[firewall.Step]) -> list[tuple[str, ...]]:
    return [step.action for step in steps]


def test_firewall_drops_host_link_local_and_lan_from_the_bridge() -> None:
    steps = firewall.plan("primenet-tasks", ["10.0.0.0/8"], forward_parent="DOCKER-USER")
    made = actions(steps)
    assert ("-A", firewall.IN_CHAIN, "-j", "DROP") in made  # anything to the host itself
    drops = [a[3] for a in made if a[:2] == ("-A", firewall.FORWARD_CHAIN) and a[-1] == "DROP"]
    assert drops == ["169.254.0.0/16", "10.0.0.0/8"]  # metadata always, first
    assert made[-2:] == [
        ("-I", "INPUT", "1", "-i", "primenet-tasks", "-j", firewall.IN_CHAIN),
        ("-I", "DOCKER-USER", "1", "-i", "primenet-tasks", "-j", firewall.FORWARD_CHAIN),
    ]
    assert steps[-1].check == ("-C", "DOCKER-USER", "-i", "primenet-tasks", "-j", firewall.FORWARD_CHAIN)


def test_firewall_apply_is_idempotent_and_names_a_failure() -> None:
    ran: list[list[str]] = []
    existing = {("ipt", "-n", "-L", firewall.IN_CHAIN)}  # e.g. a chain left by an earlier apply

    def run(command: Sequence[str]) -> int:
        ran.append(list(command))
        return 0 if tuple(command) in existing else (1 if command[1] in ("-n", "-C") else 0)

    firewall.apply(firewall.plan("br0"), ("ipt",), run=run)
    assert ["ipt", "-N", firewall.IN_CHAIN] not in ran
    assert ["ipt", "-N", firewall.FORWARD_CHAIN] in ran

    with pytest.raises(firewall.FirewallError, match="-N PRIMENET-TASKS-IN"):
        firewall.apply(firewall.plan("br0"), ("ipt",), run=lambda command: 1)


def test_firewall_script_and_bad_ranges() -> None:
    text = firewall.script(firewall.plan("br0", [], forward_parent="FORWARD"))
    assert "iptables -C FORWARD -i br0 -j PRIMENET-TASKS-FWD >/dev/null 2>&1 || iptables -I FORWARD 1" in text
    assert "-d 169.254.0.0/16 -j DROP" in text
    for bad in ("10.0.0.1/8", "fc00::/7", "nonsense"):
        with pytest.raises(ValueError, match=r"host bits|IPv4|does not appear"):
            firewall.cidr(bad)


def test_cli_prints_the_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMENET_TASK_BLOCKED_CIDRS", "192.168.0.0/16")
    result = CliRunner().invoke(app, ["miner", "isolation", "--chain", "FORWARD"])
    assert result.exit_code == 0, result.output
    assert "-A PRIMENET-TASKS-FWD -d 192.168.0.0/16 -j DROP" in result.output
    assert "10.0.0.0/8" not in result.output
    bad = CliRunner().invoke(app, ["miner", "isolation", "--chain", "OUTPUT"])
    assert bad.exit_code == 2


# --- settings ----------------------------------------------------------------------------------------------------


def test_settings_default_to_isolated_with_host_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRIMENET_TASK_NETWORK", raising=False)  # the test suite's own miners run `host`
    settings = MinerSettings()
    policy = settings.task_policy()
    assert (policy.network, policy.allow_root, policy.pids_limit) == ("isolated", False, 512)
    assert policy.max_cpus is not None
    assert policy.max_cpus >= 1
    assert policy.max_memory_mib is not None
    assert policy.max_memory_mib >= 16
    assert settings.task_blocked_cidrs == list(firewall.DEFAULT_BLOCKED)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMENET_TASK_CAP_ADD", "net_bind_service, CAP_SYS_PTRACE")
    monkeypatch.setenv("PRIMENET_TASK_IMAGE_ALLOWLIST", '["registry.provider.test/*"]')
    monkeypatch.setenv("PRIMENET_TASK_MAX_MEMORY_MIB", "2048")
    monkeypatch.setenv("PRIMENET_TASK_NETWORK", "none")
    policy = MinerSettings().task_policy()
    assert policy.cap_add == ("NET_BIND_SERVICE", "SYS_PTRACE")
    assert policy.image_allowlist == ("registry.provider.test/*",)
    assert (policy.max_memory_mib, policy.network) == (2048, "none")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PRIMENET_TASK_NETWORK", "bridge"),
        ("PRIMENET_TASK_CAP_ADD", "ALL"),
        ("PRIMENET_TASK_PIDS_LIMIT", "0"),
        ("PRIMENET_TASK_MAX_CPUS", "nan"),
        ("PRIMENET_TASK_BLOCKED_CIDRS", "10.0.0.1/8"),
    ],
)
def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        MinerSettings()


# --- the buyer's request carries the limits --------------------------------------------------------------------


def test_stored_task_spec_carries_shm_cpu_memory_restarts_and_root() -> None:
    stored = StoredTask(
        name="t",
        image="i:1",
        shm_size_mib=512,
        cpu_limit=2.5,
        memory_limit_mib=4096,
        max_restarts=0,
        run_as_root=True,
        id="a" * 32,
        created_at=1.0,
    )
    made = stored.spec()
    assert (made.shm_size_mib, made.cpu_limit, made.memory_limit_mib) == (512, 2.5, 4096)
    assert (made.max_restarts, made.run_as_root) == (0, True)


@pytest.mark.parametrize(
    "fields",
    [
        {"cpu_limit": math.inf},
        {"cpu_limit": math.nan},
        {"cpu_limit": 0},
        {"memory_limit_mib": 1},
        {"shm_size_mib": 0},
        {"max_restarts": -1},
        {"max_restarts": 10**6},
    ],
)
def test_task_request_limits_are_bounded_and_finite(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TaskRequest(name="t", image="i:1", **fields)


def test_config_hash_of_a_task_without_root_is_unchanged_by_the_new_field() -> None:
    # Miners already running a task keep its container after the upgrade: the name (hash) stays the same.
    task = spec()
    before = json.dumps(task.model_dump(mode="json", exclude={"run_as_root"}), sort_keys=True, separators=(",", ":"))
    assert task.config_hash() == hashlib.sha256(before.encode()).hexdigest()[:12]
    assert spec(run_as_root=True).config_hash() != task.config_hash()


def test_cli_task_body_sends_only_the_limits_given() -> None:
    common: dict[str, Any] = {
        "name": "t",
        "image": "i",
        "command": None,
        "entrypoint": None,
        "env": [],
        "gpus": 0,
        "nodes": "1",
        "requirements": "",
    }
    assert "cpu_limit" not in pool.task_body(**common)
    body = pool.task_body(**common, cpus=1.5, memory_mib=512, shm_mib=128, max_restarts=0, root=True)
    assert (body["cpu_limit"], body["memory_limit_mib"], body["shm_size_mib"]) == (1.5, 512, 128)
    assert (body["max_restarts"], body["run_as_root"]) == (0, True)
