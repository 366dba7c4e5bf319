"""The orchestrator's state in Redis: nodes, tasks and assignments, with explicit indexes (never KEYS/SCAN).

Key layout (prefix `orch` by default):
    {p}:nodes              set     every node address this orchestrator knows (lower-case 0x hex)
    {p}:node:{address}     hash    one node: status, status_since, ip, port, provider, specs (JSON), listed_at,
                                   first_seen, last_heartbeat, version, task_id/task_state/task_details/
                                   task_message/task_updated_at (what its last heartbeat reported),
                                   invite_failures, next_invite_at, specs_hash (the validator's binding)
    {p}:status:{status}    set     node addresses by status (moved together with the hash's status field)
    {p}:tasks              set     task ids
    {p}:task:{id}          string  the task as created (StoredTask JSON; tasks are immutable)
    {p}:task_names         hash    task name -> id (names are unique)
    {p}:beats              zset    the Healthy and Unhealthy nodes, scored by their last heartbeat (what the
                                   health pass reads instead of every node)
    {p}:assign             hash    node address -> task id (at most one task per node)
    {p}:task_nodes:{id}    set     node addresses assigned to the task (the reverse index)
    {p}:cursor             string  discovery change-feed cursor
    {p}:chain_block        string  the last chain block whose pool logs the chain watch applied
    {p}:store_marker       hash    pool_id, created_at, how (fresh, adopted, confirmed): this store is the pool's
                                   record (`orchestrator.guard`); while it is absent every node's task is held
    {p}:store_hold         string  when the store-lost hold began (kept across restarts until an operator confirms)

Multi-key changes run as Lua scripts, so a crash never leaves a status set, a name or an assignment index
half-written. The scripts build key names from the prefix, which needs a single Redis (not a cluster).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import structlog
from prometheus_client import Counter
from redis.asyncio import Redis

from primenet.core.models import ComputeSpecs, NodeRecord, TaskDetails, TaskSpec, read_stored, specs_hash, stored_form
from primenet.orchestrator.decide import NodeFacts
from primenet.orchestrator.models import AssignmentView, NodeStatus, NodeView, StoredTask, TaskView

_TRANSITION = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return false end
if ARGV[5] ~= '' then
  local allowed = false
  for s in string.gmatch(ARGV[5], '[^,]+') do if s == cur then allowed = true end end
  if not allowed then return false end
end
if cur ~= ARGV[3] then
  redis.call('HSET', KEYS[1], 'status', ARGV[3], 'status_since', ARGV[4])
  redis.call('SREM', ARGV[1] .. ':status:' .. cur, ARGV[2])
  redis.call('SADD', ARGV[1] .. ':status:' .. ARGV[3], ARGV[2])
end
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[3] == 'healthy' or ARGV[3] == 'unhealthy' then
  local beat = redis.call('HGET', KEYS[1], 'last_heartbeat')
  if not beat or beat == '' then beat = ARGV[4] end
  redis.call('ZADD', ARGV[1] .. ':beats', beat, ARGV[2])
else
  redis.call('ZREM', ARGV[1] .. ':beats', ARGV[2])
end
return cur
"""

# A heartbeat in one step. KEYS: the node's hash, the store marker. ARGV: prefix, node, now, statuses a beat makes
# Healthy (comma list), statuses that are refused (comma list), '1' when the marker is to be checked (the guard is
# on), then the hash fields to write as name, value pairs.
# Returns {status before, the assigned task's JSON or '', '1' when the store marker is absent}: a refused or unknown
# node gets nothing written; a node in the first list becomes Healthy and gets its assignment, unless the marker is
# absent (the store-lost hold: what this store lacks must not withdraw anything); any other is left to the caller
# (it needs the chain), with the beat recorded. The marker is read in the same step, so a store wiped under a
# running orchestrator holds from its very next beat.
_BEAT = """
local function listed(list, value)
  for s in string.gmatch(list, '[^,]+') do if s == value then return true end end
  return false
end
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {'', '', ''} end
if listed(ARGV[5], cur) then return {cur, '', ''} end
local held = ''
if ARGV[6] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then held = '1' end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
if not listed(ARGV[4], cur) then return {cur, '', held} end
if cur ~= 'healthy' then
  redis.call('HSET', KEYS[1], 'status', 'healthy', 'status_since', ARGV[3])
  redis.call('SREM', ARGV[1] .. ':status:' .. cur, ARGV[2])
  redis.call('SADD', ARGV[1] .. ':status:healthy', ARGV[2])
end
redis.call('ZADD', ARGV[1] .. ':beats', ARGV[3], ARGV[2])
if held == '1' then return {cur, '', held} end
local task = redis.call('HGET', ARGV[1] .. ':assign', ARGV[2])
if not task then return {cur, '', ''} end
return {cur, redis.call('GET', ARGV[1] .. ':task:' .. task) or '', ''}
"""

_UPSERT = """
local fields = {'ip', ARGV[4], 'port', ARGV[5], 'provider', ARGV[6], 'specs', ARGV[7], 'listed_at', ARGV[8],
                'specs_hash', ARGV[9]}
local cur = redis.call('HGET', KEYS[1], 'status')
redis.call('HSET', KEYS[1], unpack(fields))
if cur then return cur end
redis.call('HSET', KEYS[1], 'address', ARGV[2], 'status', 'discovered', 'status_since', ARGV[3],
           'first_seen', ARGV[3], 'invite_failures', '0', 'next_invite_at', '0')
redis.call('SADD', ARGV[1] .. ':nodes', ARGV[2])
redis.call('SADD', ARGV[1] .. ':status:discovered', ARGV[2])
return false
"""

_CREATE_TASK = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[2])
return 1
"""

# Returns the nodes whose assignment was withdrawn, or nil when there is no such task.
_DELETE_TASK = """
local raw = redis.call('GET', ARGV[1] .. ':task:' .. ARGV[2])
if not raw then return false end
local withdrawn = {}
redis.call('HDEL', ARGV[1] .. ':task_names', cjson.decode(raw)['name'])
redis.call('DEL', ARGV[1] .. ':task:' .. ARGV[2])
redis.call('SREM', ARGV[1] .. ':tasks', ARGV[2])
for _, node in ipairs(redis.call('SMEMBERS', ARGV[1] .. ':task_nodes:' .. ARGV[2])) do
  if redis.call('HGET', ARGV[1] .. ':assign', node) == ARGV[2] then
    redis.call('HDEL', ARGV[1] .. ':assign', node)
    table.insert(withdrawn, node)
  end
end
redis.call('DEL', ARGV[1] .. ':task_nodes:' .. ARGV[2])
return withdrawn
"""

# ARGV: prefix, node, task id ('' clears). A task deleted meanwhile is not assigned.
_ASSIGN = """
local old = redis.call('HGET', ARGV[1] .. ':assign', ARGV[2])
if old == ARGV[3] then return 0 end
if old then
  redis.call('SREM', ARGV[1] .. ':task_nodes:' .. old, ARGV[2])
  redis.call('HDEL', ARGV[1] .. ':assign', ARGV[2])
end
if ARGV[3] ~= '' and redis.call('EXISTS', ARGV[1] .. ':task:' .. ARGV[3]) == 1 then
  redis.call('HSET', ARGV[1] .. ':assign', ARGV[2], ARGV[3])
  redis.call('SADD', ARGV[1] .. ':task_nodes:' .. ARGV[3], ARGV[2])
end
return 1
"""


log = structlog.get_logger(__name__)
UNREADABLE = Counter(
    "primenet_orchestrator_unreadable_records", "Stored records skipped because they do not parse", ["kind"]
)


def _skip_unreadable(kind: str, key: str, error: Exception | None = None) -> None:
    """One record that does not parse (written by hand, or by an older version) is logged and skipped: it never
    stops a listing or a pass over the others."""
    UNREADABLE.labels(kind).inc()
    log.warning("unreadable record skipped", kind=kind, key=key, error=None if error is None else str(error)[:200])


def _parsed_nodes(rows: Iterable[Mapping[str, str]]) -> list[NodeRow]:
    nodes: list[NodeRow] = []
    for row in rows:
        if not row.get("status"):
            continue
        try:
            nodes.append(NodeRow.parse(row))
        except (ValueError, KeyError) as exc:  # pydantic's ValidationError is a ValueError
            _skip_unreadable("node", row.get("address", "?"), exc)
    return nodes


def _float(value: str | None) -> float | None:
    return float(value) if value else None


@functools.lru_cache(maxsize=4096)
def _specs(raw: str) -> ComputeSpecs:
    """Parsed once per distinct text: a pool's nodes share a handful of hardware shapes, and the scheduler reads
    every node's specs on each pass. (Callers must not mutate the shared result.)"""
    return ComputeSpecs.model_validate_json(raw)


@functools.lru_cache(maxsize=4096)
def _specs_hash(raw: str) -> str:
    """`specs_hash` of stored specs text, once per distinct text (the scheduler asks for every node each pass)."""
    return specs_hash(_specs(raw))


@functools.lru_cache(maxsize=256)
def task_spec(raw: str) -> TaskSpec:
    """A stored task's spec, parsed once per task: tasks are immutable and every assigned node's beat needs it."""
    return StoredTask.model_validate_json(raw).spec()


@dataclass(frozen=True)
class BeatOutcome:
    previous: NodeStatus | None  # None: an unknown node
    task: TaskSpec | None  # the assignment, given only when the beat made the node Healthy
    held: bool = False  # the store marker is absent: the node keeps what it runs (`orchestrator.guard`)


@dataclass(frozen=True)
class NodeRow:
    address: str
    status: NodeStatus
    status_since: float
    ip: str
    port: int
    provider: str
    specs: ComputeSpecs | None
    listed_at: float
    last_heartbeat: float | None
    version: str | None
    task_id: str | None
    task_state: str | None
    task_details: TaskDetails | None
    task_updated_at: float | None
    invite_failures: int
    next_invite_at: float
    task_message: str | None = None  # what the miner last said about its task (why it failed or waits)

    @classmethod
    def parse(cls, row: Mapping[str, str]) -> NodeRow:
        return cls(
            address=row["address"],
            status=NodeStatus(row["status"]),
            status_since=float(row["status_since"]),
            ip=row.get("ip", ""),
            port=int(row.get("port", "0")),
            provider=row.get("provider", ""),
            specs=_specs(row["specs"]) if row.get("specs") else None,
            listed_at=float(row.get("listed_at", "0")),
            last_heartbeat=_float(row.get("last_heartbeat")),
            version=row.get("version") or None,
            task_id=row.get("task_id") or None,
            task_state=row.get("task_state") or None,
            task_details=TaskDetails.model_validate_json(row["task_details"]) if row.get("task_details") else None,
            task_updated_at=_float(row.get("task_updated_at")),
            invite_failures=int(row.get("invite_failures", "0")),
            next_invite_at=float(row.get("next_invite_at", "0")),
            task_message=row.get("task_message") or None,
        )

    def view(self) -> NodeView:
        return NodeView(
            address=self.address,
            status=self.status,
            status_since=self.status_since,
            ip=self.ip,
            port=self.port,
            task_id=self.task_id,
            task_state=self.task_state,
            last_heartbeat=self.last_heartbeat,
            version=self.version,
            specs=self.specs,
        )


class OrchestratorStore:
    def __init__(self, redis: Redis, *, prefix: str = "orch") -> None:
        self.redis = redis
        self.prefix = prefix
        self._transition = redis.register_script(_TRANSITION)
        self._upsert = redis.register_script(_UPSERT)
        self._create_task = redis.register_script(_CREATE_TASK)
        self._delete_task = redis.register_script(_DELETE_TASK)
        self._assign = redis.register_script(_ASSIGN)
        self._beat = redis.register_script(_BEAT)

    @property
    def marker_key(self) -> str:
        return f"{self.prefix}:store_marker"

    def node_key(self, address: str) -> str:
        return f"{self.prefix}:node:{address.lower()}"

    # --- nodes ------------------------------------------------------------------------------------------

    async def upsert_listed(
        self, record: NodeRecord, *, listed_at: float, now: float, bound_specs_hash: str | None = None
    ) -> NodeStatus | None:
        """Store what discovery lists for a node; a new node starts Discovered. Returns the prior status.

        `bound_specs_hash`: the hash a validator bound the node's validation to; the scheduler gives a node work
        only while its stored specs hash to it (`NodeFacts.specs_validated`)."""
        previous = await self._upsert(
            keys=[self.node_key(record.node)],
            args=[
                self.prefix, record.node, repr(now), record.ip, str(record.port), record.provider,
                stored_form(record.specs), repr(listed_at), bound_specs_hash or "",
            ],
        )  # fmt: skip
        return NodeStatus(previous) if previous else None

    async def transition(
        self,
        address: str,
        to: NodeStatus,
        *,
        now: float,
        expected: Iterable[NodeStatus] = (),
        fields: Mapping[str, str] | None = None,
    ) -> NodeStatus | None:
        """Move a node to `to` if its status is one of `expected` (any when empty); extra `fields` are written in the
        same step. Returns the status it had, or None when it was not moved (unknown, or changed meanwhile)."""
        extra = [item for pair in (fields or {}).items() for item in pair]
        previous = await self._transition(
            keys=[self.node_key(address)],
            args=[self.prefix, address.lower(), to.value, repr(now), ",".join(s.value for s in expected), *extra],
        )
        return NodeStatus(previous) if previous else None

    async def beat(
        self,
        address: str,
        fields: Mapping[str, str],
        *,
        now: float,
        healthy_from: Iterable[NodeStatus],
        refused: Iterable[NodeStatus],
        guarded: bool = True,
    ) -> BeatOutcome:
        """Record a heartbeat's `fields` (not for a node in `refused`); a node in `healthy_from` becomes Healthy and
        the outcome carries its assignment, unless `guarded` and the store marker is absent (`held`). One round
        trip: this is the orchestrator's hottest path."""
        previous, raw, held = await self._beat(
            keys=[self.node_key(address), self.marker_key],
            args=[
                self.prefix, address.lower(), repr(now), ",".join(s.value for s in healthy_from),
                ",".join(s.value for s in refused), "1" if guarded else "",
                *(item for pair in fields.items() for item in pair),
            ],
        )  # fmt: skip
        return BeatOutcome(
            previous=NodeStatus(previous) if previous else None,
            task=task_spec(raw) if raw else None,
            held=held == "1",
        )

    async def silent(self, since: float) -> list[str]:
        """Healthy and Unhealthy nodes whose last heartbeat is older than `since`."""
        return cast(list[str], await self.redis.zrangebyscore(f"{self.prefix}:beats", "-inf", f"({since!r}"))

    async def members(self, status: NodeStatus) -> set[str]:
        return cast(set[str], await self.redis.smembers(f"{self.prefix}:status:{status.value}"))

    async def facts(self, addresses: Iterable[str], chunk: int = 500) -> list[NodeFacts]:
        """What the scheduler needs of each node, read in chunks so heartbeats are served in between."""
        wanted = sorted(addresses)
        facts: list[NodeFacts] = []
        for start in range(0, len(wanted), chunk):
            part = wanted[start : start + chunk]
            async with self.redis.pipeline(transaction=False) as pipe:
                for address in part:
                    pipe.hmget(self.node_key(address), ["status", "specs", "last_heartbeat", "specs_hash"])
                rows = cast(list[list[str | None]], await pipe.execute())
            for address, (status, specs, last_heartbeat, bound) in zip(part, rows, strict=True):
                if not status:
                    continue
                try:
                    parsed = _specs(specs) if specs else None
                    validated = parsed is not None and bool(bound) and bound == _specs_hash(specs or "")
                    beat = _float(last_heartbeat)
                    facts.append(NodeFacts(address, NodeStatus(status), parsed, beat, specs_validated=validated))
                except ValueError as exc:
                    _skip_unreadable("node", address, exc)
        return facts

    async def set_fields(self, address: str, fields: Mapping[str, str]) -> None:
        await self.redis.hset(self.node_key(address), mapping=dict(fields))  # type: ignore[arg-type]

    async def is_known(self, address: str) -> bool:
        """Whether `address` (lower case) is a node of this store, in any status: one SISMEMBER."""
        return bool(await self.redis.sismember(f"{self.prefix}:nodes", address))

    async def known_nodes(self) -> set[str]:
        """Every node address this store knows, in any status."""
        return cast(set[str], await self.redis.smembers(f"{self.prefix}:nodes"))

    async def node(self, address: str) -> NodeRow | None:
        row = cast(dict[str, str], await self.redis.hgetall(self.node_key(address)))
        parsed = _parsed_nodes([row])
        return parsed[0] if parsed else None

    async def nodes(self, addresses: Iterable[str] | None = None) -> list[NodeRow]:
        if addresses is None:
            addresses = cast(set[str], await self.redis.smembers(f"{self.prefix}:nodes"))
        wanted = sorted(addresses)
        async with self.redis.pipeline(transaction=False) as pipe:
            for address in wanted:
                pipe.hgetall(self.node_key(address))
            rows = cast(list[dict[str, str]], await pipe.execute())
        return _parsed_nodes(rows)

    async def with_status(self, status: NodeStatus) -> list[NodeRow]:
        return await self.nodes(await self.members(status))

    async def counts(self) -> dict[str, int]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for status in NodeStatus:
                pipe.scard(f"{self.prefix}:status:{status.value}")
            sizes = cast(list[int], await pipe.execute())
        return {status.value: int(size) for status, size in zip(NodeStatus, sizes, strict=True)}

    # --- tasks ------------------------------------------------------------------------------------------

    async def create_task(self, task: StoredTask) -> bool:
        """False when the name is taken."""
        created = await self._create_task(
            keys=[f"{self.prefix}:task_names", f"{self.prefix}:task:{task.id}", f"{self.prefix}:tasks"],
            args=[task.name, task.id, stored_form(task)],
        )
        return bool(created)

    async def delete_task(self, task_id: str) -> list[str] | None:
        """Removes the task and withdraws its assignments in one step: the nodes withdrawn, None if no such task."""
        withdrawn = await self._delete_task(keys=[], args=[self.prefix, task_id])
        return None if withdrawn is None else sorted(cast(list[str], withdrawn))

    async def task(self, task_id: str) -> StoredTask | None:
        raw = cast(str | None, await self.redis.get(f"{self.prefix}:task:{task_id}"))
        return self._read_task(task_id, raw) if raw else None

    @staticmethod
    def _read_task(task_id: str, raw: str) -> StoredTask | None:
        task = read_stored(StoredTask, raw)
        if task is None:
            _skip_unreadable("task", task_id)
        return task

    async def tasks(self) -> list[StoredTask]:
        ids = sorted(cast(set[str], await self.redis.smembers(f"{self.prefix}:tasks")))
        if not ids:
            return []
        raws = cast(list[str | None], await self.redis.mget([f"{self.prefix}:task:{i}" for i in ids]))
        found = [task for i, raw in zip(ids, raws, strict=True) if raw and (task := self._read_task(i, raw))]
        return sorted(found, key=lambda task: (task.created_at, task.id))

    # --- assignments ------------------------------------------------------------------------------------

    async def assignments(self) -> dict[str, str]:
        return cast(dict[str, str], await self.redis.hgetall(f"{self.prefix}:assign"))

    async def assign(self, address: str, task_id: str | None) -> None:
        await self.assign_many({address: task_id})

    async def assign_many(self, changes: Mapping[str, str | None], chunk: int = 500) -> None:
        """Set (task id) or clear (None) assignments; each one atomic, sent in pipelined chunks (a new task for a
        whole pool is thousands of them)."""
        items = sorted(changes.items())
        for start in range(0, len(items), chunk):
            async with self.redis.pipeline(transaction=False) as pipe:
                for address, task_id in items[start : start + chunk]:
                    await self._assign(keys=[], args=[self.prefix, address.lower(), task_id or ""], client=pipe)
                await pipe.execute()

    async def task_nodes(self, task_id: str) -> set[str]:
        return cast(set[str], await self.redis.smembers(f"{self.prefix}:task_nodes:{task_id}"))

    async def task_view(self, task: StoredTask) -> TaskView:
        """The task with what each assigned node last reported about it (pending until it reports this task)."""
        assignments: dict[str, AssignmentView] = {}
        for node in await self.nodes(await self.task_nodes(task.id)):
            if node.task_id == task.id and node.task_state:
                assignments[node.address] = AssignmentView(
                    state=node.task_state,
                    details=node.task_details,
                    message=node.task_message,
                    updated_at=node.task_updated_at or 0.0,
                )
            else:
                assignments[node.address] = AssignmentView(state="pending", updated_at=node.last_heartbeat or 0.0)
        return TaskView(**task.model_dump(), assignments=assignments)

    # --- feed cursor ------------------------------------------------------------------------------------

    async def cursor(self) -> str | None:
        return cast(str | None, await self.redis.get(f"{self.prefix}:cursor"))

    async def set_cursor(self, cursor: str) -> None:
        await self.redis.set(f"{self.prefix}:cursor", cursor)

    # --- chain watch cursor -----------------------------------------------------------------------------

    async def chain_block(self) -> int | None:
        raw = cast(str | None, await self.redis.get(f"{self.prefix}:chain_block"))
        return int(raw) if raw else None

    async def set_chain_block(self, block: int) -> None:
        await self.redis.set(f"{self.prefix}:chain_block", str(block))

    # --- the store marker (`orchestrator.guard`) -------------------------------------------------------

    async def marker(self) -> dict[str, str] | None:
        """The store marker's fields, or None when it is absent (a new store, or one that lost its data)."""
        fields = cast(dict[str, str], await self.redis.hgetall(self.marker_key))
        return fields or None

    async def has_marker(self) -> bool:
        return bool(await self.redis.exists(self.marker_key))

    async def write_marker(self, *, pool_id: int, now: float, how: str) -> None:
        """Mark this store as the pool's record and end any hold, in one step."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.marker_key, mapping={"pool_id": str(pool_id), "created_at": repr(now), "how": how})
            pipe.delete(f"{self.prefix}:store_hold")
            await pipe.execute()

    async def hold_since(self) -> float | None:
        """When the store-lost hold began, or None when none was recorded."""
        return _float(cast(str | None, await self.redis.get(f"{self.prefix}:store_hold")))

    async def start_hold(self, now: float) -> float:
        """Record that the hold began (kept if it began earlier); returns when it began."""
        await self.redis.set(f"{self.prefix}:store_hold", repr(now), nx=True)
        return await self.hold_since() or now

    async def holds_records(self) -> bool:
        """Whether the store knows any node or task (a store kept from before the marker existed)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.scard(f"{self.prefix}:nodes")
            pipe.scard(f"{self.prefix}:tasks")
            nodes, tasks = cast(list[int], await pipe.execute())
        return bool(nodes or tasks)


def heartbeat_fields(now: float, version: str, task: Mapping[str, Any]) -> dict[str, str]:
    """The node hash fields a heartbeat writes; absent task fields are cleared (stored as empty strings)."""
    details = task.get("task_details")
    return {
        "last_heartbeat": repr(now),
        "version": version,
        "task_id": task.get("task_id") or "",
        "task_state": task.get("task_state") or "",
        "task_details": json.dumps(details) if details else "",
        "task_message": task.get("task_message") or "",
        "task_updated_at": repr(now),
    }
