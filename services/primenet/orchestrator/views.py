"""The buyer's view of a task: what each assigned node reported (with the miner's message) and, while the task has
fewer nodes than it asked for, why (`decide.waiting_reason`)."""

from __future__ import annotations

from typing import cast

from primenet.core.requirements import parse
from primenet.orchestrator.decide import TaskNeed, waiting_reason
from primenet.orchestrator.models import NodeStatus, StoredTask, TaskView
from primenet.orchestrator.store import OrchestratorStore


async def task_view(store: OrchestratorStore, task: StoredTask) -> TaskView:
    """`store.task_view` plus each assignment's last message from its miner, the task's state and its reason."""
    view = await store.task_view(task)
    for address, assignment in view.assignments.items():
        if assignment.state == "pending":
            continue  # the node has not reported this task yet: its message is about something else
        # The heartbeat stores the message beside the state (store.heartbeat_fields); NodeRow does not carry it.
        message = cast(str | None, await store.redis.hget(store.node_key(address), "task_message"))
        assignment.message = message or None
    current = await store.assignments()
    need = TaskNeed(
        task_id=task.id,
        created_at=task.created_at,
        nodes=None if task.nodes == "all" else int(task.nodes),
        requirements=parse(task.requirements),
    )
    healthy = await store.facts(await store.members(NodeStatus.HEALTHY))
    view.reason = waiting_reason(need, healthy, current)
    view.state = "waiting" if view.reason is not None else "assigned"
    return view
