"""The validator's route dependencies: typed `Annotated` aliases over what `create_app` put on `app.state`.

app.state.loop          ValidatorLoop (its stats, candidates, in-flight challenges)
app.state.loop_task     the task running the loop; None until the lifespan starts it
app.state.store         ValidatorStore (recent rejections)
app.state.admin_token   the operator's bearer token, for `primenet.core.admin.AdminOnly`
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends

from primenet.core.app import from_state
from primenet.validator.loop import ValidatorLoop
from primenet.validator.store import ValidatorStore

LoopDep = Annotated[ValidatorLoop, Depends(from_state("loop"))]
LoopTaskDep = Annotated[asyncio.Task[None] | None, Depends(from_state("loop_task"))]
StoreDep = Annotated[ValidatorStore, Depends(from_state("store"))]
