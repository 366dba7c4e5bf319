"""Discovery's state in Redis, with explicit indexes (no KEYS scans) and a change feed.

Key layout (prefix `disc` by default):

    disc:node:<node>        hash   record (NodeRecord JSON), validated, active, whitelisted, blacklisted
                                   ("0"/"1"), created_at, updated_at (unix seconds); record_specs_hash
                                   (`specs_hash` of the record's specs); specs_hash and bound_specs (JSON):
                                   what a validator bound the validation to (`bind_specs`), absent until then
    disc:nodes              zset   every node, scored by created_at (stable listing order)
    disc:pool:<pool id>     set    nodes whose record names that pool
    disc:provider:<addr>    set    nodes of a provider (a whitelist change touches them all)
    disc:ip:<ip>            set    nodes that gave this IP (the per-IP limit counts the active ones); the key
                                   is `nodeaddr.ip_limit_key`: the IPv4 address, or the /64 of an IPv6 one
    disc:feed               stream change feed: fields type, node, pool_id, data (JSON)
    disc:sync               hash   block (last chain block applied), synced_at

Validated, as served (`is_validated`), is the chain's flag AND the binding: the record's specs hash to the bound
`specs_hash`. A node that uploads other hardware after its challenge is served unvalidated (and listed to the
validators as a candidate) until a validator challenges it again and binds the new specs.

A record write and its feed event go in one MULTI/EXEC, so a reader never sees one without the other, and
with AOF on, an acknowledged registration survives a restart of Redis or discovery.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any, cast

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import ResponseError, WatchError

from primenet.core.errors import PrimenetError
from primenet.core.models import ComputeSpecs, FeedEvent, FeedPage, NodeRecord, specs_hash, stored_form
from primenet.core.nodeaddr import ip_limit_key

FLAGS = ("validated", "active", "whitelisted", "blacklisted")


class StoredNode(BaseModel):
    """A node as discovery serves it: what the node said plus what the chain says."""

    record: NodeRecord
    validated: bool
    active: bool
    whitelisted: bool
    blacklisted: bool
    created_at: float
    updated_at: float
    specs_hash: str | None = None  # bound by a validator after a passed challenge
    bound_specs: ComputeSpecs | None = None

    @property
    def specs_validated(self) -> bool:
        """The record's specs are the ones a validator bound the validation to."""
        return self.specs_hash is not None and self.specs_hash == specs_hash(self.record.specs)

    def public(self) -> dict[str, Any]:
        return {
            **self.record.model_dump(mode="json"),
            **{f"is_{flag}": getattr(self, flag) for flag in FLAGS},
            "is_validated": self.validated and self.specs_validated,
            "is_chain_validated": self.validated,
            "specs_validated": self.specs_validated,
            "specs_hash": self.specs_hash,
            "bound_specs": None if self.bound_specs is None else self.bound_specs.model_dump(mode="json"),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


_WHOLE_ROW = {"record", "created_at", "updated_at"}


def _specs_validated(row: Mapping[str, str]) -> bool:
    bound = row.get("specs_hash")
    if not bound:
        return False
    current = row.get("record_specs_hash")
    if not current:
        try:
            current = specs_hash(NodeRecord.model_validate_json(row["record"]).specs)
        except ValueError:  # an unreadable record (pydantic's ValidationError is a ValueError) is not validated
            return False
    return bound == current


def _served_validated(row: Mapping[str, str]) -> bool:
    return row.get("validated") == "1" and _specs_validated(row)


def _public_json(row: Mapping[str, str]) -> str:
    """`StoredNode.public()` without pydantic (the record JSON is stored already canonical)."""
    served = {**row, "validated": "1" if _served_validated(row) else "0"}
    flags = "".join(f',"is_{flag}":{"true" if served.get(flag) == "1" else "false"}' for flag in FLAGS)
    bound = row.get("specs_hash")
    binding = (
        f',"is_chain_validated":{"true" if row.get("validated") == "1" else "false"}'
        f',"specs_validated":{"true" if _specs_validated(row) else "false"}'
        f',"specs_hash":{json.dumps(bound) if bound else "null"},"bound_specs":{row.get("bound_specs") or "null"}'
    )
    return f'{row["record"][:-1]}{flags}{binding},"created_at":{row["created_at"]},"updated_at":{row["updated_at"]}}}'


class ConflictError(PrimenetError):
    """The write lost a race with another write of the same node; the caller retries."""


class SpecsChangedError(PrimenetError):
    """A binding for specs the node's record no longer has: it uploaded other hardware since its challenge."""


def _stream_id(cursor: str) -> tuple[int, int]:
    ms, _, seq = cursor.partition("-")
    return int(ms), int(seq or 0)


class DiscoveryStore:
    def __init__(
        self, redis: Redis, *, prefix: str = "disc", feed_max_len: int = 100_000, blocking: Redis | None = None
    ) -> None:
        self.redis = redis
        self.blocking = blocking or redis  # long-polls wait here, on a client without a short read timeout
        self.prefix = prefix
        self.feed_max_len = feed_max_len
        self.feed_key = f"{prefix}:feed"
        self.nodes_key = f"{prefix}:nodes"
        self.sync_key = f"{prefix}:sync"

    def node_key(self, node: str) -> str:
        return f"{self.prefix}:node:{node.lower()}"

    def pool_key(self, pool_id: int) -> str:
        return f"{self.prefix}:pool:{pool_id}"

    def provider_key(self, provider: str) -> str:
        return f"{self.prefix}:provider:{provider.lower()}"

    def ip_key(self, ip: str) -> str:
        """The set of nodes counted against `ip`'s limit (one per IPv4 address, one per IPv6 /64)."""
        return f"{self.prefix}:ip:{ip_limit_key(ip)}"

    # --- reads ---------------------------------------------------------------------------------------

    @staticmethod
    def _decode(raw: Mapping[str, str]) -> StoredNode | None:
        if not raw:
            return None
        try:
            bound = raw.get("bound_specs")
            return StoredNode(
                record=NodeRecord.model_validate_json(raw["record"]),
                created_at=float(raw["created_at"]),
                updated_at=float(raw["updated_at"]),
                specs_hash=raw.get("specs_hash") or None,
                bound_specs=ComputeSpecs.model_validate_json(bound) if bound else None,
                **{flag: raw.get(flag) == "1" for flag in FLAGS},
            )
        except (ValueError, KeyError):  # pydantic's ValidationError is a ValueError
            # Written by an older version (one that took a host name as the IP, or `Infinity` in the specs) or by
            # hand: unusable now. Read as absent, so the node's next upload (which must be valid) replaces it, and
            # listings and the chain sync pass over it instead of failing on it.
            return None

    async def get(self, node: str) -> StoredNode | None:
        return self._decode(cast(dict[str, str], await self.redis.hgetall(self.node_key(node))))

    async def get_many(self, nodes: Iterable[str]) -> list[StoredNode]:
        return [stored for stored in map(self._decode, await self._raw_many(nodes)) if stored is not None]

    async def _raw_many(self, nodes: Iterable[str]) -> list[dict[str, str]]:
        """The nodes' hashes; one without its record or times (left half written, e.g. by hand) is passed over."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for node in nodes:
                pipe.hgetall(self.node_key(node))
            rows = cast(list[dict[str, str]], await pipe.execute())
        return [row for row in rows if row.keys() >= _WHOLE_ROW]

    async def listing_json(self, *, pool_id: int | None = None, validated: bool | None = None) -> list[str]:
        """Nodes as ready-made JSON objects, oldest first: listings of 10,000 nodes skip pydantic entirely.

        Each object is the stored record JSON with the flags and times appended, the same shape as
        `StoredNode.public()`.
        """
        if pool_id is None:
            members = cast(list[str], await self.redis.zrange(self.nodes_key, 0, -1))
            rows = await self._raw_many(members)
        else:
            rows = await self._raw_many(cast(set[str], await self.redis.smembers(self.pool_key(pool_id))))
            rows.sort(key=lambda row: float(row["created_at"]))
        if validated is not None:
            wanted = "1" if validated else "0"
            rows = [row for row in rows if ("1" if _served_validated(row) else "0") == wanted]
        return [_public_json(row) for row in rows]

    async def all_nodes(self) -> list[StoredNode]:
        return await self.get_many(cast(list[str], await self.redis.zrange(self.nodes_key, 0, -1)))

    async def provider_nodes(self, provider: str) -> set[str]:
        return cast(set[str], await self.redis.smembers(self.provider_key(provider)))

    async def count(self) -> int:
        return int(await self.redis.zcard(self.nodes_key))

    async def active_on_ip(self, ip: str, *, excluding: str) -> int:
        """Active nodes other than `excluding` counted against `ip` (the same IPv4 address, or IPv6 /64)."""
        key = ip_limit_key(ip)
        members = cast(set[str], await self.redis.smembers(self.ip_key(ip)))
        others = [node for node in members if node != excluding.lower()]
        stored_nodes = await self.get_many(others)
        return sum(1 for stored in stored_nodes if stored.active and ip_limit_key(stored.record.ip) == key)

    # --- writes --------------------------------------------------------------------------------------

    async def upsert(
        self, record: NodeRecord, flags: Mapping[str, bool], *, expected: StoredNode | None
    ) -> tuple[StoredNode, str]:
        """Write the record (and initial chain flags) if the stored node is still `expected`.

        Returns the stored node and the event type (`registered`, `updated` or `unchanged`). Raises
        ConflictError when another write of the same node got in between (optimistic concurrency).
        """
        key = self.node_key(record.node)
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            current = self._decode(cast(dict[str, str], await pipe.hgetall(key)))
            if (current is None) != (expected is None) or (
                current is not None and expected is not None and current.updated_at != expected.updated_at
            ):
                raise ConflictError
            if (
                current is not None
                and current.record == record
                and all(getattr(current, flag) == value for flag, value in flags.items())
            ):
                return current, "unchanged"
            created = current.created_at if current else now
            stored = StoredNode(
                record=record,
                created_at=created,
                updated_at=now,
                specs_hash=current.specs_hash if current else None,
                bound_specs=current.bound_specs if current else None,
                **{flag: flags.get(flag, getattr(current, flag) if current else False) for flag in FLAGS},
            )
            kind = "registered" if current is None else "updated"
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.hset(
                key,
                mapping={
                    "record": stored_form(record),
                    "record_specs_hash": specs_hash(record.specs),
                    "created_at": repr(created),
                    "updated_at": repr(now),
                    **{flag: "1" if getattr(stored, flag) else "0" for flag in FLAGS},
                },
            )
            pipe.zadd(self.nodes_key, {record.node: created}, nx=True)
            if current is not None and current.record.pool_id != record.pool_id:
                pipe.srem(self.pool_key(current.record.pool_id), record.node)
            if current is not None and self.ip_key(current.record.ip) != self.ip_key(record.ip):
                pipe.srem(self.ip_key(current.record.ip), record.node)
            if current is not None and current.record.provider != record.provider:
                pipe.srem(self.provider_key(current.record.provider), record.node)
            pipe.sadd(self.pool_key(record.pool_id), record.node)
            pipe.sadd(self.ip_key(record.ip), record.node)
            pipe.sadd(self.provider_key(record.provider), record.node)
            self._emit(pipe, kind, record.node, record.pool_id, stored.public())
            try:
                await pipe.execute()
            except WatchError:
                raise ConflictError from None
        return stored, kind

    async def set_flags(self, node: str, flags: Mapping[str, bool]) -> dict[str, bool]:
        """Apply chain flags to a known node; returns the flags that changed (and emits one event for them)."""
        key = self.node_key(node)
        for _ in range(5):
            async with self.redis.pipeline(transaction=True) as pipe:
                await pipe.watch(key)
                current = self._decode(cast(dict[str, str], await pipe.hgetall(key)))
                if current is None:
                    return {}
                changed = {flag: value for flag, value in flags.items() if getattr(current, flag) != value}
                if not changed:
                    return {}
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.hset(key, mapping={flag: "1" if value else "0" for flag, value in changed.items()})
                pipe.hset(key, "updated_at", repr(time.time()))
                event = dict(changed)
                if "validated" in event:  # as served: a chain validation counts only with a matching binding
                    event["validated"] = changed["validated"] and current.specs_validated
                    event["chain_validated"] = changed["validated"]
                self._emit(pipe, "flags_changed", node.lower(), current.record.pool_id, event)
                try:
                    await pipe.execute()
                except WatchError:
                    continue
                return changed
        raise ConflictError

    async def remove(self, node: str, reason: str) -> bool:
        """Drop a node the chain no longer backs (record and every index) and emit a `removed` event with `reason`,
        in one step. False when it was not stored."""
        key = self.node_key(node)
        for _ in range(5):
            async with self.redis.pipeline(transaction=True) as pipe:
                await pipe.watch(key)
                raw = cast(dict[str, str], await pipe.hgetall(key))
                if not raw:
                    return False
                current = self._decode(raw)
                address = node.lower()
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.delete(key)
                pipe.zrem(self.nodes_key, address)
                pool_id = 0
                if current is not None:  # an unreadable record has no indexes worth more than the sweep below
                    pool_id = current.record.pool_id
                    pipe.srem(self.pool_key(pool_id), address)
                    pipe.srem(self.ip_key(current.record.ip), address)
                    pipe.srem(self.provider_key(current.record.provider), address)
                self._emit(pipe, "removed", address, pool_id, {"reason": reason})
                try:
                    await pipe.execute()
                except WatchError:
                    continue
                return True
        raise ConflictError

    async def bind_specs(self, node: str, specs: ComputeSpecs) -> StoredNode | None:
        """Bind the node's validation to `specs` (set by a validator after a passed challenge) and emit an
        `updated` event with the node as served. None when the node is unknown; `SpecsChangedError` when its
        record's specs no longer hash to these (it uploaded other hardware since the challenge)."""
        key = self.node_key(node)
        bound = specs_hash(specs)
        for _ in range(5):
            async with self.redis.pipeline(transaction=True) as pipe:
                await pipe.watch(key)
                current = self._decode(cast(dict[str, str], await pipe.hgetall(key)))
                if current is None:
                    return None
                if specs_hash(current.record.specs) != bound:
                    raise SpecsChangedError(node)
                now = time.time()
                stored = current.model_copy(update={"specs_hash": bound, "bound_specs": specs, "updated_at": now})
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.hset(
                    key,
                    mapping={
                        "specs_hash": bound,
                        "bound_specs": specs.model_dump_json(),
                        "record_specs_hash": bound,
                        "updated_at": repr(now),
                    },
                )
                self._emit(pipe, "updated", node.lower(), current.record.pool_id, stored.public())
                try:
                    await pipe.execute()
                except WatchError:
                    continue
                return stored
        raise ConflictError

    def _emit(self, pipe: Any, kind: str, node: str, pool_id: int, data: Mapping[str, Any]) -> None:
        pipe.xadd(
            self.feed_key,
            {"type": kind, "node": node, "pool_id": str(pool_id), "data": json.dumps(data)},
            maxlen=self.feed_max_len,
            approximate=True,
        )

    # --- change feed ---------------------------------------------------------------------------------

    async def latest_cursor(self) -> str:
        newest = await self.redis.xrevrange(self.feed_key, count=1)
        return str(newest[0][0]) if newest else "0-0"

    async def read_feed(self, since: str, *, block_ms: int, limit: int, pool_id: int | None) -> FeedPage:
        """Events after `since` (exclusive), waiting up to `block_ms` for the first one.

        `since="0"` reads from the oldest kept event; `since="now"` returns no events, just the current cursor.
        """
        if since == "now":
            return FeedPage(events=[], cursor=await self.latest_cursor())
        reset = False
        if since not in ("0", "0-0"):
            oldest = await self.redis.xrange(self.feed_key, count=1)
            if oldest and _stream_id(since) < _stream_id(str(oldest[0][0])):
                reset, since = True, "0-0"
        try:
            reply = await self.blocking.xread({self.feed_key: since}, count=limit, block=block_ms or None)
        except ResponseError as exc:  # an id Redis cannot parse
            raise ValueError(f"invalid cursor {since!r}: {exc}") from None
        events: list[FeedEvent] = []
        cursor = since
        for _, entries in cast(list[tuple[str, list[tuple[str, dict[str, str]]]]], reply or []):
            for entry_id, fields in entries:
                cursor = str(entry_id)
                event_pool = int(fields["pool_id"]) if fields.get("pool_id", "") != "" else None
                if pool_id is not None and event_pool != pool_id:
                    continue
                events.append(
                    FeedEvent(
                        cursor=cursor,
                        type=fields["type"],
                        node=fields["node"],
                        pool_id=event_pool,
                        data=json.loads(fields["data"]),
                    )
                )
        return FeedPage(events=events, cursor=cursor, reset=reset)

    # --- chain sync bookkeeping ----------------------------------------------------------------------

    async def sync_state(self) -> tuple[int | None, float | None]:
        raw = cast(dict[str, str], await self.redis.hgetall(self.sync_key))
        block = int(raw["block"]) if "block" in raw else None
        synced = float(raw["synced_at"]) if "synced_at" in raw else None
        return block, synced

    async def record_sync(self, block: int) -> None:
        await self.redis.hset(self.sync_key, mapping={"block": str(block), "synced_at": repr(time.time())})
