"""What every service's `GET /health` shows to whom: the state to anyone, the error strings only to the operator.

A loop's error text can name internal hosts, ports, keys' addresses or a stack of causes; anonymous callers (load
balancers, the public) get only state names: `ok`, `failing` (its last pass failed) or `starting` (no pass yet).
A caller with the admin token (`Authorization: Bearer <token>`, `core.admin`) gets the same body plus `details`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request

from primenet.core.admin import is_admin

OK, FAILING, STARTING = "ok", "failing", "starting"


def loop_state(*, last_run_at: float | None, last_error_at: float | None) -> str:
    """`failing` when the latest pass failed, `ok` when it succeeded, `starting` before any pass ended."""
    if last_error_at is not None and (last_run_at is None or last_error_at >= last_run_at):
        return FAILING
    return OK if last_run_at is not None else STARTING


def overall(states: Mapping[str, str]) -> str:
    """`degraded` when any part fails, else `ok`."""
    return "degraded" if FAILING in states.values() else "ok"


def shown(request: Request, public: Mapping[str, Any], details: Mapping[str, Any]) -> dict[str, Any]:
    """The public body, with `details` added for the operator only."""
    return {**public, "details": dict(details)} if is_admin(request) else dict(public)
