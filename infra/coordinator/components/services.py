"""The three coordinator services (discovery, orchestrator, validator): one `ComponentResource` each.

Every service reads its settings from `PRIMENET_*` variables (plain values only) and its secrets from files in
`/run/secrets/primenet` (0600): `primenet_redis_url`, `primenet_admin_token`, `primenet_rpc_url` (external mode)
through `PRIMENET_SECRETS_DIR`, and its private key through `PRIMENET_<ROLE>_KEY_FILE`. The deployment file is at
`/run/primenet/deployment/deployment.json`, mounted read-only from the contracts volume or uploaded (external).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi

from components.chain import Chain
from components.contracts import Contracts
from components.docker_target import DockerWorkload
from components.redis import Redis
from components.spec import DEPLOYMENT_FILE, LOOPBACK, SECRETS_DIR, HealthProbe, StackNaming, WorkloadSpec
from config import MANAGER_INDEX, VALIDATOR_INDEX, StackConfig

MANAGER_KEY_FILE = f"{SECRETS_DIR}/manager_key"
VALIDATOR_KEY_FILE = f"{SECRETS_DIR}/validator_key"


def reachable_host(bind_address: str) -> str:
    """Where a service bound to `bind_address` is reached from the Docker host (loopback for a wildcard)."""
    address = ipaddress.ip_address(bind_address)
    if address.is_unspecified or address.is_loopback:
        return LOOPBACK
    return f"[{address}]" if address.version == 6 else str(address)


def service_url(config: StackConfig, port: int) -> str:
    return f"http://{reachable_host(config.bind_address)}:{port}"


@dataclass(frozen=True)
class ServiceContext:
    """What every service is built from: the config and the parts it connects to."""

    config: StackConfig
    naming: StackNaming
    chain: Chain
    redis: Redis
    contracts: Contracts
    admin_token: pulumi.Output[str]

    @property
    def discovery_url(self) -> str:
        return service_url(self.config, self.config.ports.discovery)

    def spec(
        self,
        part: str,
        command: Sequence[str],
        port: int,
        env: Mapping[str, pulumi.Input[str]],
        secret_files: Mapping[str, pulumi.Input[str]],
        depends_on: Sequence[pulumi.Resource],
    ) -> WorkloadSpec:
        """A service's spec: the settings every service shares, then its own (`env`, `secret_files`)."""
        config = self.config
        shared_env: dict[str, pulumi.Input[str]] = {
            "PRIMENET_HOST": config.bind_address,
            "PRIMENET_PORT": str(port),
            "PRIMENET_CHAIN_ID": str(config.chain_id),
            "PRIMENET_DEPLOYMENT_FILE": DEPLOYMENT_FILE,
            "PRIMENET_SECRETS_DIR": SECRETS_DIR,
            # Which node IPs discovery accepts and the validator and orchestrator connect to (global ones always).
            "PRIMENET_ALLOW_LOOPBACK_NODES": str(config.allow_loopback_nodes).lower(),
            "PRIMENET_ALLOW_PRIVATE_NODES": str(config.allow_private_nodes).lower(),
        }
        shared_secrets: dict[str, pulumi.Input[str]] = {
            f"{SECRETS_DIR}/primenet_redis_url": self.redis.url,
            f"{SECRETS_DIR}/primenet_admin_token": self.admin_token,
        }
        if self.chain.local_rpc_url is not None:
            shared_env["PRIMENET_RPC_URL"] = self.chain.local_rpc_url
        else:
            shared_secrets[f"{SECRETS_DIR}/primenet_rpc_url"] = self.chain.rpc_url
        return WorkloadSpec(
            part=part,
            image=config.image(part),
            command=command,
            env={**shared_env, **env},
            secret_files={**shared_secrets, **secret_files},
            plain_files=self.contracts.service_files,
            volumes=self.contracts.service_volumes,
            health=HealthProbe(["primenet-healthcheck"]),
            port=port,
            depends_on=[self.redis, self.chain, *self.contracts.depends_on, *depends_on],
        )


class Discovery(pulumi.ComponentResource):
    """The node registry. Output: `url`."""

    url: str

    def __init__(self, context: ServiceContext, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("primenet:coordinator:Discovery", "discovery", None, opts)
        port = context.config.ports.discovery
        self.url = context.discovery_url
        spec = context.spec("discovery", ["discovery"], port, env={}, secret_files={}, depends_on=[])
        self.workload = DockerWorkload(
            spec, context.naming, context.config.wait_timeout_s, pulumi.ResourceOptions(parent=self)
        )
        self.register_outputs({"url": self.url})


class Orchestrator(pulumi.ComponentResource):
    """The pool coordinator, managing the bootstrap's (or the configured) pool. Output: `url` (its public URL)."""

    url: str

    def __init__(
        self, context: ServiceContext, discovery: Discovery, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("primenet:coordinator:Orchestrator", "orchestrator", None, opts)
        config = context.config
        port = config.ports.orchestrator
        self.url = config.public_url or service_url(config, port)
        timers = config.timers
        env: dict[str, pulumi.Input[str]] = {
            "PRIMENET_DISCOVERY_URL": discovery.url,
            "PRIMENET_PUBLIC_URL": self.url,
            "PRIMENET_POOL_ID": context.contracts.pool_id.apply(str),
            "PRIMENET_MANAGER_KEY_FILE": MANAGER_KEY_FILE,
            "PRIMENET_HEARTBEAT_INTERVAL_S": _seconds(timers.heartbeat_interval_s),
            "PRIMENET_UNHEALTHY_AFTER_S": _seconds(timers.unhealthy_after_s),
            "PRIMENET_DEAD_AFTER_S": _seconds(timers.dead_after_s),
        }
        manager_key = pulumi.Output.secret(config.key("manager_key", MANAGER_INDEX))
        spec = context.spec(
            "orchestrator",
            ["orchestrator"],
            port,
            env=env,
            secret_files={MANAGER_KEY_FILE: manager_key},
            depends_on=[discovery],
        )
        self.workload = DockerWorkload(spec, context.naming, config.wait_timeout_s, pulumi.ResourceOptions(parent=self))
        self.register_outputs({"url": self.url})


class Validator(pulumi.ComponentResource):
    """Challenges new nodes and records verdicts on chain. Output: `url` (its health and metrics API)."""

    url: str

    def __init__(
        self, context: ServiceContext, discovery: Discovery, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("primenet:coordinator:Validator", "validator", None, opts)
        config = context.config
        port = config.ports.validator
        self.url = service_url(config, port)
        env: dict[str, pulumi.Input[str]] = {
            "PRIMENET_DISCOVERY_URL": discovery.url,
            "PRIMENET_VALIDATOR_KEY_FILE": VALIDATOR_KEY_FILE,
            "PRIMENET_CHALLENGE_N": str(config.challenge_n),
        }
        validator_key = pulumi.Output.secret(config.key("validator_key", VALIDATOR_INDEX))
        spec = context.spec(
            "validator",
            ["validator", "run"],
            port,
            env=env,
            secret_files={VALIDATOR_KEY_FILE: validator_key},
            depends_on=[discovery],
        )
        self.workload = DockerWorkload(spec, context.naming, config.wait_timeout_s, pulumi.ResourceOptions(parent=self))
        self.register_outputs({"url": self.url})


def _seconds(value: float) -> str:
    """A duration as the services parse it: `10` rather than `10.0` when whole."""
    return str(int(value)) if value == int(value) else str(value)
