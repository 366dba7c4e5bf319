"""The task container, for the pool owner: its last log lines, a restart."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from primenet.core.errors import ApiError
from primenet.core.params import LogTail
from primenet.miner.deps import MinerDep, PoolOwner
from primenet.miner.runner import NoTaskContainerError, TaskStatus

router = APIRouter(prefix="/task", tags=["task"])


@router.get("/logs")
async def task_logs(miner: MinerDep, _: PoolOwner, tail: LogTail = 300) -> dict[str, Any]:
    """The last `tail` lines of the task container's stdout and stderr."""
    try:
        logs = await miner.runner.logs(tail)
    except NoTaskContainerError as exc:
        raise ApiError(404, "no_task", str(exc)) from None
    status = await miner.runner.status()
    return {"task_id": status.task_id, "logs": logs}


@router.post("/restart")
async def task_restart(miner: MinerDep, _: PoolOwner) -> TaskStatus:
    """Restart the task's container (e.g. after it failed)."""
    try:
        return await miner.runner.restart()
    except NoTaskContainerError as exc:
        raise ApiError(404, "no_task", str(exc)) from None
