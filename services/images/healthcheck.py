#!/usr/bin/env python3
"""The images' health check, installed as /usr/local/bin/primenet-healthcheck (standard library only).

    primenet-healthcheck              GET http://127.0.0.1:$PRIMENET_PORT/health answers 2xx (a primenet service)
    primenet-healthcheck rpc PORT     JSON-RPC eth_chainId on 127.0.0.1:PORT answers with a result (the chain)
    primenet-healthcheck redis PORT   a raw PING on 127.0.0.1:PORT gets +PONG or -NOAUTH (alive; no password needed)

Exit status 0: healthy; 1: not healthy or bad arguments (the reason on stderr). Never 2, which Docker reserves.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.error
import urllib.request

HOST = "127.0.0.1"
TIMEOUT_S = 3.0
USAGE = "usage: primenet-healthcheck [rpc PORT | redis PORT]"


class UnhealthyError(Exception):
    """The probed server did not give a healthy answer."""


def check_service(port: int) -> None:
    """The service's /health answers 2xx (urllib raises HTTPError for other statuses)."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=TIMEOUT_S) as response:
            status = int(response.status)
    except (urllib.error.URLError, OSError) as error:
        raise UnhealthyError(f"/health on port {port}: {error}") from None
    if not 200 <= status < 300:
        raise UnhealthyError(f"/health on port {port} answered {status}")


def check_rpc(port: int) -> None:
    """The chain answers eth_chainId with a result."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(
        f"http://{HOST}:{port}", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            answer = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise UnhealthyError(f"eth_chainId on port {port}: {error}") from None
    if not isinstance(answer, dict) or "result" not in answer:
        raise UnhealthyError(f"eth_chainId on port {port} gave no result: {str(answer)[:200]}")


def check_redis(port: int) -> None:
    """Redis answers PING: +PONG without a password, -NOAUTH with one (alive either way)."""
    try:
        with socket.create_connection((HOST, port), timeout=TIMEOUT_S) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except OSError as error:
        raise UnhealthyError(f"redis on port {port}: {error}") from None
    if not reply.startswith((b"+PONG", b"-NOAUTH")):
        raise UnhealthyError(f"redis on port {port} answered {reply[:64]!r}")


def parse_port(text: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(text)
    return port


def main(argv: list[str]) -> int:
    try:
        if not argv:
            check_service(parse_port(os.environ.get("PRIMENET_PORT", "")))
        elif len(argv) == 2 and argv[0] == "rpc":
            check_rpc(parse_port(argv[1]))
        elif len(argv) == 2 and argv[0] == "redis":
            check_redis(parse_port(argv[1]))
        else:
            print(USAGE, file=sys.stderr)
            return 1
    except ValueError:
        given = " ".join(argv) or f"PRIMENET_PORT={os.environ.get('PRIMENET_PORT', '(unset)')}"
        print(f"primenet-healthcheck: not a port (1-65535): {given}", file=sys.stderr)
        return 1
    except UnhealthyError as problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
