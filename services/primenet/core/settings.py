"""Settings shared by every service: env prefix `PRIMENET_`, `.env` files, nested via `__`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from primenet.core.auth import AuthPolicy
from primenet.core.keys import SecretError, read_secret_file
from primenet.core.metrics import MetricsExposure
from primenet.core.nodeaddr import AddressPolicy
from primenet.core.tls import TlsFiles, tls_files

SECRETS_DIR_ENV = "PRIMENET_SECRETS_DIR"


class ServiceSettings(BaseSettings):
    """Base class of each service's settings; e.g. `PRIMENET_AUTH__TIMESTAMP_WINDOW_S=30`."""

    model_config = SettingsConfigDict(
        env_prefix="PRIMENET_", env_file=".env", env_nested_delimiter="__", extra="ignore"
    )

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis for nonces, rate limits, state")
    rpc_url: str = Field("http://127.0.0.1:8545", description="JSON-RPC endpoint of the chain")
    chain_id: int = Field(31337, ge=0, description="refuse requests signed for any other chain")
    host: str = Field("127.0.0.1", description="address the HTTP server binds")
    port: int = Field(8000, ge=1, le=65535)
    log_level: str = "info"
    auth: AuthPolicy = Field(default_factory=AuthPolicy)
    allow_loopback_nodes: bool = Field(
        False,
        description="accept and connect to node records whose IP is loopback (the devnet and the tests set it)",
    )
    allow_private_nodes: bool = Field(
        False, description="accept and connect to node records whose IP is private (10/8, fc00::/7, ...)"
    )

    metrics_host: str = Field("127.0.0.1", description="address of the separate metrics listener (with metrics_port)")
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="serve /metrics on this separate port only (unset: on the main listener)"
    )
    metrics_require_admin: bool = Field(
        False, description="on the main listener, /metrics only with Authorization: Bearer <admin token>"
    )

    def metrics_exposure(self) -> MetricsExposure:
        """Where `/metrics` is served (`core.metrics`)."""
        return MetricsExposure(host=self.metrics_host, port=self.metrics_port, require_admin=self.metrics_require_admin)

    tls_cert_file: Path | None = Field(
        None, description="PEM certificate chain: serve HTTPS (with `tls_key_file`; production should)"
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of `tls_cert_file`, mode 0600")
    node_scheme: Literal["http", "https"] = Field(
        "http", description="scheme of the URLs built to nodes' APIs (https when the miners serve TLS)"
    )

    def tls(self) -> TlsFiles | None:
        """The checked certificate and key, None for plain HTTP; `core.tls.TlsError` when they cannot be served."""
        return tls_files(self.tls_cert_file, self.tls_key_file)

    def node_addresses(self) -> AddressPolicy:
        """Which node IPs this service accepts (discovery) or connects to (validator, orchestrator)."""
        return AddressPolicy(allow_loopback=self.allow_loopback_nodes, allow_private=self.allow_private_nodes)


def settings_from_secrets_dir(cls: type[BaseSettings], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Settings kept in files of the folder named by `PRIMENET_SECRETS_DIR` (none when it is unset).

    A file is named after the setting's variable in lower case (`primenet_redis_url` sets `redis_url`) and must be
    0600 like every secret file. A deployment uploads settings that hold a secret (a Redis URL with its password,
    an admin token) this way instead of passing them in the environment, where `docker inspect` shows them. The
    values are meant to take precedence over the environment, as a named secret file does in `load_secret`. Files
    whose name does not start with the prefix (key files such as `manager_key`) are left to their own settings; a
    prefixed file that names no setting raises `SecretError`, so a misspelt name is not silently ignored.
    """
    folder = (os.environ if environ is None else environ).get(SECRETS_DIR_ENV, "").strip()
    if not folder:
        return {}
    directory = Path(folder)
    if not directory.is_dir():
        raise SecretError(f"{SECRETS_DIR_ENV}={directory} is not a folder")
    prefix = str(cls.model_config.get("env_prefix", "")).lower()
    values: dict[str, str] = {}
    for path in sorted(directory.iterdir()):
        if not path.name.startswith(prefix) or not path.is_file():
            continue
        field = path.name.removeprefix(prefix)
        if field not in cls.model_fields:
            raise SecretError(f"{path} names no setting ({prefix.upper()}{field.upper()} does not exist)")
        values[field] = read_secret_file(path, "setting").get_secret_value()
    return values
