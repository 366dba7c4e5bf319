"""A service keeps an idle keep-alive connection open longer than our clients' pools reuse one.

httpx reuses an idle pooled connection for up to `keepalive_expiry` (5 s by default, what every primenet client
uses). A server that closes idle connections at that same age races the client: a request sent on the connection
as the server closes it fails with a ReadError (bench/discovery.py at N = 10,000 failed so). The service is
`core.app.serve` in its own process, as the `primenet` commands run it; a raw socket holds one connection idle for
the client's whole expiry, then sends a second request on it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from primenet.devnet.processes import answers_health, free_port, spawn, wait_ready

SERVE = (
    "import sys; from primenet.core.app import serve, service_app; "
    "serve(service_app(title='keep-alive', max_body_bytes=1000), host='127.0.0.1', port=int(sys.argv[1]))"
)
REQUEST = b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"


def read_response(sock: socket.socket) -> bytes:
    """One whole response (head and content-length body); b"" when the server closed the connection instead."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in lines if line.startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_idle_connection_outlives_the_clients_pool_expiry(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    process = spawn([sys.executable, "-c", SERVE, str(port)], log)
    try:
        wait_ready(process, answers_health(f"http://127.0.0.1:{port}"), name="serve", log_path=log, timeout_s=30)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(REQUEST)
            assert read_response(sock).startswith(b"HTTP/1.1 404")
            # Idle as long as an httpx pool may still hand this connection out, plus a loaded machine's delay.
            expiry = httpx.Limits().keepalive_expiry
            assert expiry is not None
            time.sleep(expiry + 1.0)
            try:
                sock.sendall(REQUEST)
                second = read_response(sock)
            except ConnectionError:
                second = b""
            assert second.startswith(b"HTTP/1.1 404"), f"the server closed the idle connection: {second!r}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
