"""Discovery's HTTP API (JSON; OpenAPI at /docs), one `APIRouter` per group, assembled in `router`.

Routes:
    PUT  /api/nodes              signed by the node key: register or update the node's record
    GET  /api/validator          signed by a VALIDATOR_ROLE holder: every node (+ feed cursor)
    PUT  /api/validator/nodes/{address}/specs   signed by a VALIDATOR_ROLE holder: bind the validation to specs
    GET  /api/pool/{pool_id}     signed by the pool's creator or compute manager: the pool's nodes (+ cursor)
    GET  /api/nodes/{address}    signed by that node, or `Authorization: Bearer <admin token>`
    GET  /api/events             change feed, long-poll: `?since=<cursor>&timeout=<s>[&pool_id=<id>]`
    GET  /health, GET /metrics
"""

from __future__ import annotations

from fastapi import APIRouter

from primenet.discovery.routes import feed, health, nodes

router = APIRouter()
router.include_router(nodes.router)
router.include_router(feed.router)
router.include_router(health.router)
