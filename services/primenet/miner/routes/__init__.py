"""The miner's HTTP API. Every route but /health and /metrics is a signed request addressed to this node:
audience = the node's address in lower case, so a request signed for one miner cannot be replayed on another.

    POST /invite             pool creator or compute manager (read from chain)   join the pool, start heartbeats
    GET  /task/logs?tail=N   pool creator or compute manager                    the task container's last lines
    POST /task/restart       pool creator or compute manager                    restart the task container
    POST /heartbeat/now      pool creator or compute manager                    beat now (the assignment changed)
    POST /challenge/commit   VALIDATOR_ROLE holder (on chain, cached)           round 1: Challenge -> Commitment
    POST /challenge/open     VALIDATOR_ROLE holder                              round 2: Reveal -> Opening
    GET  /health, GET /metrics

`router` assembles the route modules; `primenet.miner.app.create_app` includes it.
"""

from __future__ import annotations

from fastapi import APIRouter

from primenet.miner.routes import challenge, health, heartbeat, invite, task

router = APIRouter()
for module in (invite, task, heartbeat, challenge, health):
    router.include_router(module.router)
