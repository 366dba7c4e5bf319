"""Secrets (private keys, admin tokens) come from a file only its owner can read or from the environment; never argv.

Every secret is loaded by `load_secret`, with one precedence (see there). A loaded secret is wrapped in `SecretStr`
so that settings dumps, reprs and logs show `**********`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import SecretStr

from primenet.core.errors import PrimenetError


class SecretError(PrimenetError, ValueError):
    """A secret that is missing, unreadable, readable by group or others, or empty; the message names no secret."""


class PrivateKeyError(SecretError):
    """A private key that is missing, unreadable, too widely readable or malformed."""


class TokenError(SecretError):
    """No admin token, or one kept where others can read it."""


def read_secret_file(path: Path, what: str = "secret", error: type[SecretError] = SecretError) -> SecretStr:
    """The stripped content of `path`, refusing a file that group or others may access, a missing or empty one."""
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise error(
                f"{what} file {path} is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
                f"run: chmod 600 {path}"
            )
        value = path.read_text().strip()
    except FileNotFoundError:
        raise error(f"{what} file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:  # a folder, no permission, binary junk: say which, never the content
        raise error(f"{what} file {path} cannot be read ({type(exc).__name__})") from None
    if not value:
        raise error(f"{what} file {path} is empty")
    return SecretStr(value)


def read_key_file(path: Path) -> SecretStr:
    """A hex private key from `path` (0600); `PrivateKeyError` otherwise."""
    return read_secret_file(path, "key", PrivateKeyError)


def load_secret(
    env_var: str,
    path: Path | None,
    *,
    what: str,
    missing: str,
    error: type[SecretError] = SecretError,
    environ: Mapping[str, str] | None = None,
) -> SecretStr:
    """The one precedence for every secret: the file when one is named, else the variable `env_var`.

    A named file is the deliberate choice (a flag or a `*_FILE` variable), so a value that merely lingers in the
    environment never overrides it; the file must be 0600, exist and be non-empty, else `error` says why (and a
    file that fails is never silently replaced by the variable). An empty or blank variable counts as unset.
    Without either, `error(missing)`: the message says how to provide the secret.
    """
    if path is not None:
        return read_secret_file(path, what, error)
    value = (os.environ if environ is None else environ).get(env_var, "").strip()
    if not value:
        raise error(missing)
    return SecretStr(value)


def load_key(env_var: str, key_file: Path | None = None) -> SecretStr:
    """A private key by `load_secret`'s precedence: `key_file` (0600) when given, else `env_var`."""
    return load_secret(
        env_var,
        key_file,
        what="key",
        missing=f"no private key: set {env_var} or give a key file with mode 0600",
        error=PrivateKeyError,
    )


def load_admin_token(
    env_var: str, token_file: Path | None, *, file_option: str, environ: Mapping[str, str] | None = None
) -> SecretStr:
    """An admin token by `load_secret`'s precedence: `token_file` (0600) when given, else `env_var`."""
    return load_secret(
        env_var,
        token_file,
        what="token",
        missing=f"no admin token: set {env_var} or give {file_option} (a file with mode 0600)",
        error=TokenError,
        environ=environ,
    )


def account_from_key(key: SecretStr) -> LocalAccount:
    """An eth-account signer; the error names no part of the key."""
    raw = key.get_secret_value()
    try:
        account: LocalAccount = Account.from_key(raw if raw.startswith("0x") else "0x" + raw)
    except (ValueError, TypeError):
        # `from None`: the original exception's text could echo the key.
        raise PrivateKeyError("the private key is not 32 bytes of hex") from None
    return account
