"""The buyer's view of a task: what each assigned node reported and, while the task has fewer nodes than it asked
for, why (`decide.waiting_reason`)."""

from __future__ import annotations

from primenet.core.requirements import parse
from primenet.orchestrator.decide import TaskNeed, waiting_reason
from primenet.orchestrator.models import NodeStatus, StoredTask, TaskView
from primenet.orchestrator.store import OrchestratorStore


async def task_view(store: OrchestratorStore, task: StoredTask) -> TaskView:
    """`store.task_view` (each assignment with its miner's last message) plus the task's state and its reason."""
    view = await store.task_view(task)
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
