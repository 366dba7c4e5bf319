"""The validator's route dependencies: typed `Annotated` aliases over what `create_app` put on `app.state`.

app.state.loop          ValidatorLoop (its stats, candidates, in-flight challenges)
app.state.loop_task     the task running the loop; None until the lifespan starts it
app.state.store         ValidatorStore (recent rejections)
app.state.admin_token   the operator's bearer token, for `primenet.core.admin.AdminOnly`
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request

from primenet.validator.loop import ValidatorLoop
from primenet.validator.store import ValidatorStore


async def get_loop(request: Request) -> ValidatorLoop:
    loop: ValidatorLoop = request.app.state.loop
    return loop


async def get_loop_task(request: Request) -> asyncio.Task[None] | None:
    task: asyncio.Task[None] | None = request.app.state.loop_task
    return task


async def get_store(request: Request) -> ValidatorStore:
    store: ValidatorStore = request.app.state.store
    return store


LoopDep = Annotated[ValidatorLoop, Depends(get_loop)]
LoopTaskDep = Annotated[asyncio.Task[None] | None, Depends(get_loop_task)]
StoreDep = Annotated[ValidatorStore, Depends(get_store)]
