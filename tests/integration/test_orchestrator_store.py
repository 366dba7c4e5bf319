"""The orchestrator's Redis scripts on a real Redis: the one-step heartbeat, the beats index the health pass reads,
and task deletion withdrawing its assignments."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from primenet.core.models import ComputeSpecs, NodeRecord
from primenet.orchestrator.models import NodeStatus, StoredTask
from primenet.orchestrator.orchestrator import BEAT_MAKES_HEALTHY, BEAT_REFUSED
from primenet.orchestrator.store import OrchestratorStore, heartbeat_fields

pytestmark = pytest.mark.integration


def address(i: int) -> str:
    return f"0x{i:040x}"


async def known(store: OrchestratorStore, node: str, status: NodeStatus, now: float = 100.0) -> None:
    record = NodeRecord(
        node=node, provider=address(999), ip="127.0.0.1", port=1, pool_id=0, specs=ComputeSpecs(cpu_cores=1)
    )
    await store.upsert_listed(record, listed_at=now, now=now)
    if status is not NodeStatus.DISCOVERED:
        await store.transition(node, status, now=now)


async def beat(store: OrchestratorStore, node: str, now: float) -> tuple[NodeStatus | None, str | None]:
    fields = heartbeat_fields(now, "test", {"task_id": "t1", "task_state": "running"})
    outcome = await store.beat(node, fields, now=now, healthy_from=BEAT_MAKES_HEALTHY, refused=BEAT_REFUSED)
    return outcome.previous, outcome.task.task_id if outcome.task else None


@pytest.fixture
async def store(redis_client: Redis) -> OrchestratorStore:
    """A store marked as its pool's record (`orchestrator.guard`), as a running orchestrator's is."""
    store = OrchestratorStore(redis_client, prefix="st" + uuid.uuid4().hex[:8])
    await store.write_marker(pool_id=0, now=1.0, how="fresh")
    return store


async def test_without_the_store_marker_a_beat_is_held_and_brings_no_assignment(store: OrchestratorStore) -> None:
    node = address(7)
    await known(store, node, NodeStatus.HEALTHY)
    task = StoredTask(id=uuid.uuid4().hex, created_at=1.0, name="t", image="busybox")
    assert await store.create_task(task)
    await store.assign(node, task.id)
    await store.redis.delete(store.marker_key)  # the store-lost hold (a wipe that kept this much, say)

    fields = heartbeat_fields(200.0, "test", {})
    outcome = await store.beat(node, fields, now=200.0, healthy_from=BEAT_MAKES_HEALTHY, refused=BEAT_REFUSED)
    assert (outcome.previous, outcome.task, outcome.held) == (NodeStatus.HEALTHY, None, True)
    assert await store.silent(300.0) == [node]  # the beat itself was recorded
    await store.write_marker(pool_id=0, now=201.0, how="confirmed")
    outcome = await store.beat(node, fields, now=202.0, healthy_from=BEAT_MAKES_HEALTHY, refused=BEAT_REFUSED)
    assert outcome.held is False
    assert outcome.task is not None
    assert outcome.task.task_id == task.id


async def test_a_beat_makes_an_unhealthy_node_healthy_and_brings_its_assignment(store: OrchestratorStore) -> None:
    node = address(1)
    await known(store, node, NodeStatus.UNHEALTHY)
    task = StoredTask(id=uuid.uuid4().hex, created_at=1.0, name="t", image="busybox")
    assert await store.create_task(task)
    await store.assign(node, task.id)

    assert await beat(store, node, now=200.0) == (NodeStatus.UNHEALTHY, task.id)
    row = await store.node(node)
    assert row is not None
    assert (row.status, row.status_since, row.last_heartbeat, row.task_state) == (
        NodeStatus.HEALTHY,
        200.0,
        200.0,
        "running",
    )
    assert await store.members(NodeStatus.HEALTHY) == {node}
    assert await store.members(NodeStatus.UNHEALTHY) == set()
    assert await store.silent(200.5) == [node]
    assert await store.silent(199.5) == []


async def test_banned_and_unknown_nodes_get_nothing_written(store: OrchestratorStore) -> None:
    banned = address(2)
    await known(store, banned, NodeStatus.BANNED)
    assert await beat(store, banned, now=300.0) == (NodeStatus.BANNED, None)
    row = await store.node(banned)
    assert row is not None
    assert row.last_heartbeat is None
    assert await beat(store, address(3), now=300.0) == (None, None)
    assert await store.node(address(3)) is None


async def test_a_node_outside_the_running_set_is_recorded_but_left_to_the_caller(store: OrchestratorStore) -> None:
    # A Waiting node too: only the chain (the caller reads it) may make it Healthy, never the beat alone.
    statuses = ((4, NodeStatus.DISCOVERED), (5, NodeStatus.DEAD), (6, NodeStatus.EJECTED), (7, NodeStatus.WAITING))
    for i, status in statuses:
        await known(store, address(i), status)
        assert await beat(store, address(i), now=400.0) == (status, None)
        row = await store.node(address(i))
        assert row is not None
        assert (row.status, row.last_heartbeat) == (status, 400.0)
    assert await store.silent(1e9) == []  # only Healthy and Unhealthy nodes are watched for silence


async def test_the_beats_index_follows_status_changes(store: OrchestratorStore) -> None:
    node = address(7)
    await known(store, node, NodeStatus.WAITING)
    await beat(store, node, now=500.0)
    await store.transition(node, NodeStatus.UNHEALTHY, now=560.0)
    assert await store.silent(561.0) == [node]  # still watched (it may die), scored by its last beat
    await store.transition(node, NodeStatus.DEAD, now=700.0)
    assert await store.silent(1e9) == []
    # Back to Healthy by the slow path (the chain said it is still in the pool): watched again from its last beat.
    await store.transition(node, NodeStatus.HEALTHY, now=800.0, fields={"last_heartbeat": "790.0"})
    assert await store.silent(795.0) == [node]
    assert await store.silent(789.0) == []


async def test_deleting_a_task_withdraws_exactly_its_nodes(store: OrchestratorStore) -> None:
    first = StoredTask(id=uuid.uuid4().hex, created_at=1.0, name="first", image="busybox")
    second = StoredTask(id=uuid.uuid4().hex, created_at=2.0, name="second", image="busybox")
    assert await store.create_task(first)
    assert await store.create_task(second)
    await store.assign_many({address(10): first.id, address(11): first.id, address(12): second.id})

    assert await store.delete_task(first.id) == [address(10), address(11)]
    assert await store.assignments() == {address(12): second.id}
    assert await store.delete_task(first.id) is None
    assert await store.create_task(first.model_copy(update={"id": uuid.uuid4().hex}))  # the name is free again
