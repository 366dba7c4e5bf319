"""Checks of what a person gave a command (an option, `PRIMENET_*` settings): a bad value exits 2 with one line.

One line naming the problem, never a traceback or a multi-line dump: what a person reads first, and what a log
keeps greppable.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from primenet.cli.output import fail
from primenet.core.keys import SecretError
from primenet.core.settings import ServiceSettings, settings_from_secrets_dir
from primenet.core.tls import TlsError, TlsFiles

Settings = TypeVar("Settings", bound=BaseSettings)


def problems(exc: ValidationError, env_prefix: str = "PRIMENET_") -> str:
    """A settings `ValidationError` in one line, naming each variable: `PRIMENET_PORT: Input should be ...; ...`."""
    found = []
    for error in exc.errors():
        name = env_prefix + "__".join(str(part) for part in error["loc"]).upper()
        found.append(f"{name}: {error['msg']}")
    return "; ".join(found).replace("\n", " ")


def load_settings(cls: type[Settings], what: str, **overrides: Any) -> Settings:
    """`cls` from its environment variables and `.env`, under the files of `PRIMENET_SECRETS_DIR`
    (`core.settings.settings_from_secrets_dir`) and the `overrides` that are not None; exit 2 otherwise."""
    try:
        from_files = settings_from_secrets_dir(cls)
    except SecretError as exc:
        fail(f"invalid {what} settings: {exc}", 2)
    try:
        values: dict[str, Any] = from_files | {key: value for key, value in overrides.items() if value is not None}
        return cls(**values)
    except ValidationError as exc:
        fail(f"invalid {what} settings: {problems(exc, str(cls.model_config.get('env_prefix', '')))}", 2)


def http_url(text: str, option: str = "--url") -> str:
    """`text` without a trailing slash when it is an absolute http(s) URL with a host; exit 2 otherwise."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (reading it checks it: a port that is not a number in range raises ValueError)
    except ValueError as exc:
        fail(f"{option} {text!r} is not a URL: {exc}", 2)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(char.isspace() for char in text):
        fail(f"{option} {text!r} is not an http(s) URL with a host, e.g. http://127.0.0.1:8090", 2)
    return text.rstrip("/")


def tls_of(settings: ServiceSettings) -> TlsFiles | None:
    """The service's checked TLS certificate and key (None: plain HTTP); exit 2 with one line when they are unusable.

    Called before anything is started or sent, so a key file others can read stops the command at once."""
    try:
        return settings.tls()
    except TlsError as exc:
        fail(f"invalid TLS settings: {exc}", 2)
