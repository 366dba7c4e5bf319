"""Private keys come from the environment or from a file only its owner can read; never from argv.

The loaded key is wrapped in `SecretStr` so that settings dumps, reprs and logs show `**********`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import SecretStr

from primenet.core.errors import PrimenetError


class PrivateKeyError(PrimenetError, ValueError):
    """A key that is missing, unreadable, too widely readable or malformed."""


def read_key_file(path: Path) -> SecretStr:
    """Read a hex private key from `path`, refusing files that group or others may read."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise PrivateKeyError(f"key file {path} does not exist") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PrivateKeyError(
            f"key file {path} is accessible by group or others (mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
        )
    return SecretStr(path.read_text().strip())


def load_key(env_var: str, key_file: Path | None = None) -> SecretStr:
    """The key named by `env_var`, else the one in `key_file`; a clear error when neither is there."""
    value = os.environ.get(env_var, "").strip()
    if value:
        return SecretStr(value)
    if key_file is not None:
        return read_key_file(key_file)
    raise PrivateKeyError(f"no private key: set {env_var} or give a key file with mode 0600")


def account_from_key(key: SecretStr) -> LocalAccount:
    """An eth-account signer; the error names no part of the key."""
    raw = key.get_secret_value()
    try:
        account: LocalAccount = Account.from_key(raw if raw.startswith("0x") else "0x" + raw)
    except (ValueError, TypeError):
        # `from None`: the original exception's text could echo the key.
        raise PrivateKeyError("the private key is not 32 bytes of hex") from None
    return account
