"""The orchestrator's routes, one `APIRouter` per group; `router` assembles them for `create_app`.

heartbeat   POST /heartbeat (signed by a node key)
tasks       the buyer's tasks (admin)
nodes       the pool's nodes, their logs, restart and ban (admin)
store       GET /store, POST /store/confirm: the store-lost hold (admin)
health      GET /health
"""

from __future__ import annotations

from fastapi import APIRouter

from primenet.orchestrator.routes import health, heartbeat, nodes, store, tasks

router = APIRouter()
router.include_router(heartbeat.router)
router.include_router(tasks.router)
router.include_router(nodes.router)
router.include_router(store.router)
router.include_router(health.router)
