"""TLS for every primenet HTTP server: a certificate and key from files, checked before the server starts.

Each service (discovery, orchestrator, validator, the miner's API) serves HTTPS when both
`PRIMENET_TLS_CERT_FILE` and `PRIMENET_TLS_KEY_FILE` are set, plain HTTP when neither is. `tls_files` refuses
every half-way state with one line (`TlsError`), which the commands print before exiting 2: only one of the two
set, a file that is not there, a key file that group or others may read (it must be mode 0600, as every secret
file), a certificate and key that do not load as a pair.

Clients verify servers against the system's trust store; for a private CA set `SSL_CERT_FILE` to its PEM bundle
(httpx, which every primenet client uses, and OpenSSL itself read it). `client_context` builds the same context
from a file for code and tests that pass it explicitly.
"""

from __future__ import annotations

import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

from primenet.core.errors import PrimenetError


class TlsError(PrimenetError, ValueError):
    """The TLS settings cannot be served as they are; the message names the setting and the fix."""


@dataclass(frozen=True)
class TlsFiles:
    """A certificate chain (PEM) and its private key (PEM, mode 0600), checked by `tls_files`."""

    cert_file: Path
    key_file: Path


def tls_files(cert_file: Path | None, key_file: Path | None) -> TlsFiles | None:
    """The checked pair, or None when neither is set (plain HTTP); `TlsError` for anything else."""
    if cert_file is None and key_file is None:
        return None
    if cert_file is None or key_file is None:
        missing = "PRIMENET_TLS_CERT_FILE" if cert_file is None else "PRIMENET_TLS_KEY_FILE"
        raise TlsError(f"{missing} is not set: TLS needs both a certificate and a key file")
    for name, path in (("PRIMENET_TLS_CERT_FILE", cert_file), ("PRIMENET_TLS_KEY_FILE", key_file)):
        if not path.is_file():
            raise TlsError(f"{name}={path} is not a readable file")
    mode = key_file.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TlsError(
            f"TLS key file {key_file} is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 600 {key_file}"
        )
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as exc:
        # The reason only: an SSLError's text names files and OpenSSL's reason, never key material.
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise TlsError(f"TLS certificate {cert_file} and key {key_file} do not load as a pair ({reason})") from None
    return TlsFiles(cert_file=cert_file, key_file=key_file)


def client_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """A client context that verifies servers against `ca_file` (a private CA), else the system's trust store."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
