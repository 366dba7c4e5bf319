"""The stack's typed configuration (namespace `primenet`), read and checked before any resource is declared.

Contract: `load_config()` reads every key of the namespace that the program knows, checks them all and either
returns a frozen `StackConfig` or raises one `pulumi.RunError` listing every problem, one line each. A line names
the key and the rule it breaks and, for a missing secret, the `pulumi config set --secret` command that fixes it;
it never repeats a value, so a mistyped secret is not echoed into the terminal or the CI log. Field problems are
reported together; the cross-key rules (distinct ports, what each chain mode needs) run once every field is valid.

Secret keys (`redisPassword`, `adminToken`, `deployerKey`, `validatorKey`, `managerKey`) must be stored as Pulumi
secrets (`--secret`): a plain-text one is refused, since it would sit unencrypted in `Pulumi.<stack>.yaml`.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlsplit

import pulumi
from eth_account import Account
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

NAMESPACE: Final = "primenet"
PARTS: Final = ("chain", "redis", "discovery", "orchestrator", "validator")
SECRET_KEYS: Final = ("redisPassword", "adminToken", "deployerKey", "validatorKey", "managerKey")

# Docker's tag grammar; a tag that matches but is absent on the Docker host fails later, at RemoteImage.
TAG_PATTERN: Final = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_PATTERN: Final = (
    rf"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
_PRIVATE_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
# Characters that need no quoting in redis.conf nor escaping in a redis:// URL.
_REDIS_PASSWORD = re.compile(r"^[A-Za-z0-9._~+=-]{16,256}$")
ADMIN_TOKEN_MIN: Final = 32

# Anvil's well-known development accounts: public keys for a local chain, never for a real one.
ANVIL_MNEMONIC: Final = "test test test test test test test test test test test junk"
DEPLOYER_INDEX, VALIDATOR_INDEX, MANAGER_INDEX = 0, 1, 2

_SET_SECRET_HINT = {
    "redisPassword": 'pulumi config set --secret primenet:redisPassword "$(openssl rand -hex 24)"',
    "adminToken": 'pulumi config set --secret primenet:adminToken "$(openssl rand -hex 32)"',
    "deployerKey": "pulumi config set --secret primenet:deployerKey <0x-prefixed private key>",
    "validatorKey": "pulumi config set --secret primenet:validatorKey <0x-prefixed private key>",
    "managerKey": "pulumi config set --secret primenet:managerKey <0x-prefixed private key>",
}


class _Section(BaseModel):
    """A config object: camelCase keys as in `Pulumi.<stack>.yaml`, unknown keys refused (they are typos)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class ChainMode(StrEnum):
    ANVIL = "anvil"  # a local Anvil container; contracts deployed by the one-shot bootstrap
    EXTERNAL = "external"  # an RPC URL and an existing deployment (e.g. Arbitrum Sepolia)


class Images(_Section):
    """Full image references replacing `primenet/<part>:<imageTag>` for single parts."""

    chain: str | None = Field(None, pattern=IMAGE_PATTERN)
    redis: str | None = Field(None, pattern=IMAGE_PATTERN)
    discovery: str | None = Field(None, pattern=IMAGE_PATTERN)
    orchestrator: str | None = Field(None, pattern=IMAGE_PATTERN)
    validator: str | None = Field(None, pattern=IMAGE_PATTERN)


class Ports(_Section):
    chain: int = Field(8545, ge=1, le=65535)
    redis: int = Field(6379, ge=1, le=65535)
    discovery: int = Field(8089, ge=1, le=65535)
    orchestrator: int = Field(8090, ge=1, le=65535)
    validator: int = Field(8093, ge=1, le=65535)


class ChainConfig(_Section):
    mode: ChainMode = ChainMode.ANVIL
    chain_id: int | None = Field(None, ge=1)
    rpc_url: str | None = None
    deployment: str | None = Field(None, description="JSON text of an existing deployment file (external mode)")

    @field_validator("rpc_url")
    @classmethod
    def _rpc_url(cls, value: str | None) -> str | None:
        if value is not None and not _is_url(value, ("http", "https", "ws", "wss")):
            raise ValueError("must be an http(s):// or ws(s):// URL with a host")
        return value


class Timers(_Section):
    heartbeat_interval_s: float = Field(10.0, gt=0)
    unhealthy_after_s: float = Field(45.0, gt=0)
    dead_after_s: float = Field(120.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Timers:
        if not self.heartbeat_interval_s < self.unhealthy_after_s < self.dead_after_s:
            raise ValueError("need heartbeatIntervalS < unhealthyAfterS < deadAfterS")
        return self


class ChainDeployment(BaseModel):
    """The part of an existing deployment file the program reads; the services read the whole file."""

    model_config = ConfigDict(extra="allow", frozen=True)

    chain_id: int = Field(ge=1)
    contracts: dict[str, str]


class StackConfig(_Section):
    image_tag: str = Field("dev", pattern=TAG_PATTERN)
    images: Images = Field(default_factory=Images)
    bind_address: str = "0.0.0.0"
    ports: Ports = Field(default_factory=Ports)
    chain: ChainConfig = Field(default_factory=ChainConfig)
    pool_id: int | None = Field(None, ge=0)
    public_url: str | None = None
    timers: Timers = Field(default_factory=Timers)
    challenge_n: int = Field(256, ge=1, le=16384)
    allow_loopback_nodes: bool = Field(False, description="services accept node records with a loopback IP (dev)")
    allow_private_nodes: bool = Field(False, description="services accept node records with a private IP (LAN)")
    wait_timeout_s: int = Field(180, ge=10, le=3600, description="how long `pulumi up` waits for one container")
    redis_password: SecretStr
    admin_token: SecretStr
    deployer_key: SecretStr | None = None
    validator_key: SecretStr | None = None
    manager_key: SecretStr | None = None

    @field_validator("bind_address")
    @classmethod
    def _ip(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError("must be an IP address, e.g. 0.0.0.0 or 127.0.0.1") from None

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and not _is_url(value, ("http", "https")):
            raise ValueError("must be an http:// or https:// URL with a host")
        return None if value is None else value.rstrip("/")

    @field_validator("redis_password")
    @classmethod
    def _redis_password(cls, value: SecretStr) -> SecretStr:
        if not _REDIS_PASSWORD.fullmatch(value.get_secret_value()):
            raise ValueError("must be 16-256 characters of A-Z a-z 0-9 . _ ~ + = - (e.g. `openssl rand -hex 24`)")
        return value

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < ADMIN_TOKEN_MIN:
            raise ValueError(f"must be at least {ADMIN_TOKEN_MIN} characters (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("deployer_key", "validator_key", "manager_key")
    @classmethod
    def _private_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _PRIVATE_KEY.fullmatch(value.get_secret_value()):
            raise ValueError("must be a private key: 64 hex digits, optionally 0x-prefixed")
        return value

    # --- derived values -------------------------------------------------------------------------------------

    @property
    def external(self) -> bool:
        return self.chain.mode is ChainMode.EXTERNAL

    @property
    def existing_deployment(self) -> ChainDeployment:
        """The parsed `chain.deployment` (external mode only; checked by `cross_problems`)."""
        return ChainDeployment.model_validate_json(self.chain.deployment or "")

    @property
    def chain_id(self) -> int:
        if self.chain.chain_id is not None:
            return self.chain.chain_id
        return self.existing_deployment.chain_id if self.external else 31337

    def image(self, part: str) -> str:
        """The image reference of `part`: its override, else `primenet/<part>:<imageTag>`."""
        override: str | None = getattr(self.images, part)
        return override or f"primenet/{part}:{self.image_tag}"

    def key(self, name: str, dev_index: int) -> str:
        """A private key: the configured one, else (anvil mode only) Anvil's dev account `dev_index`."""
        configured: SecretStr | None = getattr(self, name)
        if configured is not None:
            return configured.get_secret_value()
        return dev_key(dev_index)

    def cross_problems(self) -> list[str]:
        """Rules that span keys, one line per broken rule (empty when the config is consistent)."""
        problems: list[str] = []
        used = {part: getattr(self.ports, part) for part in PARTS if not (part == "chain" and self.external)}
        by_port: dict[int, list[str]] = {}
        for part, port in used.items():
            by_port.setdefault(port, []).append(part)
        for port, parts in sorted(by_port.items()):
            if len(parts) > 1:
                problems.append(f"primenet:ports: {' and '.join(parts)} both use port {port}; give each its own")
        if self.external:
            problems += self._external_problems()
        else:
            for key, value in (("chain.rpcUrl", self.chain.rpc_url), ("chain.deployment", self.chain.deployment)):
                if value is not None:
                    problems.append(f"primenet:{key}: only for chain.mode external (anvil mode runs its own chain)")
            if self.pool_id is not None:
                problems.append("primenet:poolId: only for chain.mode external (anvil mode creates its own pool)")
        return problems

    def _external_problems(self) -> list[str]:
        problems = [
            f"primenet:{key}: required when chain.mode is external"
            for key, value in (
                ("chain.rpcUrl", self.chain.rpc_url),
                ("chain.deployment", self.chain.deployment),
                ("poolId", self.pool_id),
            )
            if value is None
        ]
        problems += [
            f"primenet:{key}: required when chain.mode is external; set it with `{_SET_SECRET_HINT[key]}`"
            for key, value in (("validatorKey", self.validator_key), ("managerKey", self.manager_key))
            if value is None
        ]
        if self.chain.deployment is not None:
            try:
                deployment = self.existing_deployment
            except ValidationError as exc:
                problems.append(f"primenet:chain.deployment: not a deployment file ({_first_error(exc)})")
            else:
                if self.chain.chain_id is not None and self.chain.chain_id != deployment.chain_id:
                    problems.append(
                        f"primenet:chain.chainId: {self.chain.chain_id} but the deployment is on chain "
                        f"{deployment.chain_id}"
                    )
        return problems


def dev_key(index: int) -> str:
    """Private key of Anvil's dev account `index` (the mnemonic is public: local chains only)."""
    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return "0x" + bytes(account.key).hex()


def address_of(key: str) -> str:
    """The checksummed address of a private key."""
    address: str = Account.from_key(key).address
    return address


def load_config(config: pulumi.Config | None = None) -> StackConfig:
    """Read and check the `primenet` namespace; one `pulumi.RunError` lists every problem (see the module doc)."""
    config = config or pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {}
    problems: list[str] = []
    for name, field in StackConfig.model_fields.items():
        key = field.alias or name
        try:
            value = _read(config, key, field.annotation)
        except (ValueError, pulumi.ConfigTypeError):  # the runtime's own message would echo the value
            problems.append(f"primenet:{key}: not valid JSON (objects are set with `pulumi config set --path`)")
            continue
        if value is None:
            continue
        if key in SECRET_KEYS and not pulumi.runtime.is_config_secret(f"{NAMESPACE}:{key}"):
            problems.append(f"primenet:{key}: stored in plain text; set it as a secret with `{_SET_SECRET_HINT[key]}`")
        raw[key] = value
    try:
        stack_config = StackConfig.model_validate(raw)
    except ValidationError as exc:
        problems += [_describe(error) for error in exc.errors()]
    else:
        problems += stack_config.cross_problems()
    if problems:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise pulumi.RunError(f"invalid configuration of stack {pulumi.get_stack()}:\n{lines}")
    return stack_config


def config_is_secret(key: str) -> bool:
    """Whether `primenet:<key>` is stored as a Pulumi secret (a nested key is secret when its object is)."""
    return bool(pulumi.runtime.is_config_secret(f"{NAMESPACE}:{key.split('.')[0]}"))


def _read(config: pulumi.Config, key: str, annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return config.get_object(key)
    return config.get(key)


def _describe(error: Any) -> str:
    """One line for a pydantic error: where and which rule, never the offending value."""
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "missing" and where in _SET_SECRET_HINT:
        return f"primenet:{where}: missing; set it with `{_SET_SECRET_HINT[where]}`"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"primenet:{where}: {message}"


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"])
    return f"{where}: {message}" if where else message


def _is_url(value: str, schemes: tuple[str, ...]) -> bool:
    parts = urlsplit(value)
    return parts.scheme in schemes and bool(parts.hostname)
