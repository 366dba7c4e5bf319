"""Route parameter types that several services accept the same way (FastAPI `Annotated` aliases)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from primenet.core.models import ADDRESS_PATTERN

MAX_LOG_LINES = 10_000

AddressPath = Annotated[str, Path(pattern=ADDRESS_PATTERN, description="a 0x-prefixed 20-byte address")]
LogTail = Annotated[int, Query(ge=1, le=MAX_LOG_LINES, description="how many of the last log lines")]
