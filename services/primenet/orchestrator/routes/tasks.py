"""The buyer's tasks (admin): create, list, show, withdraw."""

from __future__ import annotations

import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Path

from primenet.core.admin import AdminOnly
from primenet.core.errors import ApiError
from primenet.core.requirements import RequirementsError, parse
from primenet.orchestrator.deps import OrchestratorDep, StoreDep
from primenet.orchestrator.models import StoredTask, TaskRequest, TaskView
from primenet.orchestrator.views import task_view

router = APIRouter(prefix="/tasks", tags=["tasks"])

TaskId = Annotated[str, Path(max_length=64)]


@router.post("", status_code=201)
async def create_task(_: AdminOnly, body: TaskRequest, store: StoreDep, orchestrator: OrchestratorDep) -> TaskView:
    try:
        parse(body.requirements)
    except RequirementsError as exc:
        raise ApiError(422, "requirements_invalid", str(exc)) from None
    task = StoredTask(**body.model_dump(), id=uuid.uuid4().hex, created_at=time.time())
    if not await store.create_task(task):
        raise ApiError(409, "task_name_taken", f"a task named {body.name!r} exists")
    orchestrator.changed.set()
    return TaskView(**task.model_dump(), reason="to be placed by the scheduler's next pass")


@router.get("")
async def list_tasks(_: AdminOnly, store: StoreDep) -> dict[str, list[TaskView]]:
    return {"tasks": [await task_view(store, task) for task in await store.tasks()]}


@router.get("/{task_id}")
async def get_task(_: AdminOnly, task_id: TaskId, store: StoreDep) -> TaskView:
    task = await store.task(task_id)
    if task is None:
        raise ApiError(404, "task_not_found", f"no task {task_id}")
    return await task_view(store, task)


@router.delete("/{task_id}")
async def delete_task(_: AdminOnly, task_id: TaskId, store: StoreDep, orchestrator: OrchestratorDep) -> dict[str, str]:
    """Withdraws the task: its nodes are nudged, get no assignment in their next beat and remove the container."""
    withdrawn = await store.delete_task(task_id)
    if withdrawn is None:
        raise ApiError(404, "task_not_found", f"no task {task_id}")
    orchestrator.nudge(withdrawn)
    orchestrator.changed.set()
    return {"deleted": task_id}
