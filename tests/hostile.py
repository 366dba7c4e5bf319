"""A peer that misbehaves on purpose, on a loopback port: it records every connection and answers as told.

Plain asyncio streams rather than uvicorn, so a reply can be as broken as a hostile node would make it: a status
line trickled one byte at a time, or a body that never ends. Every behaviour reads the request head first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from primenet.core.models import InviteRequest

Behaviour = Callable[["Peer", asyncio.StreamWriter, bytes], Awaitable[None]]
CHUNK = b" " * (64 << 10)


@dataclass
class Peer:
    behaviour: Behaviour
    port: int = 0
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)  # each request's head
    sent: int = 0  # body bytes the peer managed to write
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head)
            lines = head.lower().split(b"\r\n")
            length = next((int(line[15:]) for line in lines if line.startswith(b"content-length:")), 0)
            body = await reader.readexactly(length) if length else b""
            await self.behaviour(self, writer, body)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up: what these peers are for
        except asyncio.CancelledError:
            pass  # `serving` ends a trickle the client gave up on (asyncio logs a cancelled handler as an error)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def serving(behaviour: Behaviour) -> AsyncIterator[Peer]:
    """A `Peer` listening on 127.0.0.1 (a free port) for the life of the block."""
    peer = Peer(behaviour)
    server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
    peer.port = server.sockets[0].getsockname()[1]
    try:
        yield peer
    finally:
        server.close()
        for task in peer.tasks:  # a trickle still going after the client gave up
            task.cancel()
        await asyncio.gather(*peer.tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


async def trickle(peer: Peer, writer: asyncio.StreamWriter, _: bytes, every_s: float = 0.2) -> None:
    """One byte of a never-ending header every `every_s`: each read succeeds, the reply never completes."""
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-padding: ")
    while not writer.is_closing():
        writer.write(b"a")
        await writer.drain()
        await asyncio.sleep(every_s)


async def trickle_body(peer: Peer, writer: asyncio.StreamWriter, _: bytes, every_s: float = 0.2) -> None:
    """A complete head, then a 1000-byte body one byte every `every_s` (200 s in all)."""
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n")
    while not writer.is_closing():
        writer.write(b" ")
        await writer.drain()
        peer.sent += 1
        await asyncio.sleep(every_s)


async def flood(peer: Peer, writer: asyncio.StreamWriter, _: bytes, total: int = 1 << 30) -> None:
    """A body of `total` bytes (1 GiB) with no declared length, streamed for as long as the client reads."""
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n")
    while peer.sent < total:
        writer.write(CHUNK)
        await writer.drain()
        peer.sent += len(CHUNK)


async def declared_flood(peer: Peer, writer: asyncio.StreamWriter, _: bytes) -> None:
    """Declares a 1 GiB body, then streams it."""
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\n\r\n")
    while peer.sent < 1 << 30:
        writer.write(CHUNK)
        await writer.drain()
        peer.sent += len(CHUNK)


def answer(body: dict[str, Any], status: int = 200) -> Behaviour:
    """A polite peer: one JSON reply."""

    async def reply(peer: Peer, writer: asyncio.StreamWriter, _: bytes) -> None:
        data = json.dumps(body).encode()
        writer.write(
            f"HTTP/1.1 {status} OK\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n"
            "connection: close\r\n\r\n".encode()
            + data
        )
        await writer.drain()

    return reply


def invite_for(node: str) -> InviteRequest:
    """An invite for `node` to pool 0 whose signature no one checks: what a hostile miner is sent."""
    return InviteRequest(
        domain_id=0,
        pool_id=0,
        node=node,
        nonce=1,
        expiry=2**40,
        signature="0x" + "11" * 65,
        orchestrator_url="http://127.0.0.1:9",
    )
