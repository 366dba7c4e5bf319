"""The orchestrator's state in Redis: nodes, tasks and assignments, with explicit indexes (never KEYS/SCAN).

Key layout (prefix `orch` by default):
    {p}:nodes              set     every node address this orchestrator knows (lower-case 0x hex)
    {p}:node:{address}     hash    one node: status, status_since, ip, port, provider, specs (JSON), listed_at,
                                   first_seen, last_heartbeat, version, task_id/task_state/task_details/
                                   task_message/task_updated_at (what its last heartbeat reported),
                                   invite_failures, next_invite_at
    {p}:status:{status}    set     node addresses by status (moved together with the hash's status field)
    {p}:tasks              set     task ids
    {p}:task:{id}          string  the task as created (StoredTask JSON; tasks are immutable)
    {p}:task_names         hash    task name -> id (names are unique)
    {p}:assign             hash    node address -> task id (at most one task per node)
    {p}:task_nodes:{id}    set     node addresses assigned to the task (the reverse index)
    {p}:cursor             string  discovery change-feed cursor

Multi-key changes run as Lua scripts, so a crash never leaves a status set, a name or an assignment index
half-written. The scripts build key names from the prefix, which needs a single Redis (not a cluster).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from primenet.core.models import ComputeSpecs, NodeRecord, TaskDetails
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
return cur
"""

_UPSERT = """
local fields = {'ip', ARGV[4], 'port', ARGV[5], 'provider', ARGV[6], 'specs', ARGV[7], 'listed_at', ARGV[8]}
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

_DELETE_TASK = """
local raw = redis.call('GET', ARGV[1] .. ':task:' .. ARGV[2])
if not raw then return 0 end
redis.call('HDEL', ARGV[1] .. ':task_names', cjson.decode(raw)['name'])
redis.call('DEL', ARGV[1] .. ':task:' .. ARGV[2])
redis.call('SREM', ARGV[1] .. ':tasks', ARGV[2])
for _, node in ipairs(redis.call('SMEMBERS', ARGV[1] .. ':task_nodes:' .. ARGV[2])) do
  if redis.call('HGET', ARGV[1] .. ':assign', node) == ARGV[2] then redis.call('HDEL', ARGV[1] .. ':assign', node) end
end
redis.call('DEL', ARGV[1] .. ':task_nodes:' .. ARGV[2])
return 1
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


def _float(value: str | None) -> float | None:
    return float(value) if value else None


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

    @classmethod
    def parse(cls, row: Mapping[str, str]) -> NodeRow:
        return cls(
            address=row["address"],
            status=NodeStatus(row["status"]),
            status_since=float(row["status_since"]),
            ip=row.get("ip", ""),
            port=int(row.get("port", "0")),
            provider=row.get("provider", ""),
            specs=ComputeSpecs.model_validate_json(row["specs"]) if row.get("specs") else None,
            listed_at=float(row.get("listed_at", "0")),
            last_heartbeat=_float(row.get("last_heartbeat")),
            version=row.get("version") or None,
            task_id=row.get("task_id") or None,
            task_state=row.get("task_state") or None,
            task_details=TaskDetails.model_validate_json(row["task_details"]) if row.get("task_details") else None,
            task_updated_at=_float(row.get("task_updated_at")),
            invite_failures=int(row.get("invite_failures", "0")),
            next_invite_at=float(row.get("next_invite_at", "0")),
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

    def node_key(self, address: str) -> str:
        return f"{self.prefix}:node:{address.lower()}"

    # --- nodes ------------------------------------------------------------------------------------------

    async def upsert_listed(self, record: NodeRecord, *, listed_at: float, now: float) -> NodeStatus | None:
        """Store what discovery lists for a node; a new node starts Discovered. Returns the prior status."""
        previous = await self._upsert(
            keys=[self.node_key(record.node)],
            args=[
                self.prefix, record.node, repr(now), record.ip, str(record.port), record.provider,
                record.specs.model_dump_json(), repr(listed_at),
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

    async def set_fields(self, address: str, fields: Mapping[str, str]) -> None:
        await self.redis.hset(self.node_key(address), mapping=dict(fields))  # type: ignore[arg-type]

    async def node(self, address: str) -> NodeRow | None:
        row = cast(dict[str, str], await self.redis.hgetall(self.node_key(address)))
        return NodeRow.parse(row) if row.get("status") else None

    async def nodes(self, addresses: Iterable[str] | None = None) -> list[NodeRow]:
        if addresses is None:
            addresses = cast(set[str], await self.redis.smembers(f"{self.prefix}:nodes"))
        wanted = sorted(addresses)
        async with self.redis.pipeline(transaction=False) as pipe:
            for address in wanted:
                pipe.hgetall(self.node_key(address))
            rows = cast(list[dict[str, str]], await pipe.execute())
        return [NodeRow.parse(row) for row in rows if row.get("status")]

    async def with_status(self, status: NodeStatus) -> list[NodeRow]:
        members = cast(set[str], await self.redis.smembers(f"{self.prefix}:status:{status.value}"))
        return await self.nodes(members)

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
            args=[task.name, task.id, task.model_dump_json()],
        )
        return bool(created)

    async def delete_task(self, task_id: str) -> bool:
        """Removes the task and withdraws its assignments in one step."""
        return bool(await self._delete_task(keys=[], args=[self.prefix, task_id]))

    async def task(self, task_id: str) -> StoredTask | None:
        raw = cast(str | None, await self.redis.get(f"{self.prefix}:task:{task_id}"))
        return StoredTask.model_validate_json(raw) if raw else None

    async def tasks(self) -> list[StoredTask]:
        ids = sorted(cast(set[str], await self.redis.smembers(f"{self.prefix}:tasks")))
        if not ids:
            return []
        raws = cast(list[str | None], await self.redis.mget([f"{self.prefix}:task:{i}" for i in ids]))
        found = [StoredTask.model_validate_json(raw) for raw in raws if raw]
        return sorted(found, key=lambda task: (task.created_at, task.id))

    # --- assignments ------------------------------------------------------------------------------------

    async def assignments(self) -> dict[str, str]:
        return cast(dict[str, str], await self.redis.hgetall(f"{self.prefix}:assign"))

    async def assignment(self, address: str) -> str | None:
        return cast(str | None, await self.redis.hget(f"{self.prefix}:assign", address.lower()))

    async def assign(self, address: str, task_id: str | None) -> None:
        await self._assign(keys=[], args=[self.prefix, address.lower(), task_id or ""])

    async def task_nodes(self, task_id: str) -> set[str]:
        return cast(set[str], await self.redis.smembers(f"{self.prefix}:task_nodes:{task_id}"))

    async def task_view(self, task: StoredTask) -> TaskView:
        """The task with what each assigned node last reported about it (pending until it reports this task)."""
        assignments: dict[str, AssignmentView] = {}
        for node in await self.nodes(await self.task_nodes(task.id)):
            if node.task_id == task.id and node.task_state:
                assignments[node.address] = AssignmentView(
                    state=node.task_state, details=node.task_details, updated_at=node.task_updated_at or 0.0
                )
            else:
                assignments[node.address] = AssignmentView(state="pending", updated_at=node.last_heartbeat or 0.0)
        return TaskView(**task.model_dump(), assignments=assignments)

    # --- feed cursor ------------------------------------------------------------------------------------

    async def cursor(self) -> str | None:
        return cast(str | None, await self.redis.get(f"{self.prefix}:cursor"))

    async def set_cursor(self, cursor: str) -> None:
        await self.redis.set(f"{self.prefix}:cursor", cursor)


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
