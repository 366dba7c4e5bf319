"""The orchestrator's HTTP API; its lifespan runs the loops (`primenet.orchestrator.orchestrator`).

POST   /heartbeat                 signed by the node key (audience "orchestrator"): Heartbeat -> HeartbeatReply
POST   /tasks, GET /tasks, GET /tasks/{id}, DELETE /tasks/{id}                        admin (Bearer)
GET    /nodes, GET /nodes/{address}                                                    admin
GET    /nodes/{address}/logs?tail=N, POST /nodes/{address}/restart, POST /nodes/{address}/ban   admin
GET    /health (each loop's last run and error, Redis), GET /metrics (Prometheus)
"""

# No `from __future__ import annotations`: FastAPI must see the dependency objects as values.
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from eth_account.signers.local import LocalAccount
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from primenet.chain.contracts import Network
from primenet.chain.deployment import Deployment
from primenet.chain.errors import ChainError, ContractRevertError
from primenet.core.admin import bearer, require_admin
from primenet.core.app import background, service_app
from primenet.core.auth import RequestAuthenticator, Signer
from primenet.core.discovery_client import DiscoveryReader
from primenet.core.errors import ApiError
from primenet.core.models import ADDRESS_PATTERN, Heartbeat, HeartbeatReply
from primenet.core.redisdb import connect
from primenet.core.requirements import RequirementsError, parse
from primenet.orchestrator.models import NodeStatus, NodeView, StoredTask, TaskRequest, TaskView
from primenet.orchestrator.orchestrator import HeartbeatRefusedError, Orchestrator
from primenet.orchestrator.peers import MinerClient, PeerError
from primenet.orchestrator.settings import OrchestratorSettings
from primenet.orchestrator.store import NodeRow, OrchestratorStore

Address = Annotated[str, Path(pattern=ADDRESS_PATTERN)]
MAX_LOG_LINES = 10_000


def create_app(settings: OrchestratorSettings, manager: LocalAccount) -> FastAPI:
    """`manager` is the pool's compute manager key: it signs invites, discovery reads, miner calls, ejections."""
    deployment = Deployment.load(settings.deployment_file)
    redis = connect(settings.redis_url)
    network = Network.connect(settings.rpc_url, deployment)
    store = OrchestratorStore(redis, prefix=settings.key_prefix)
    discovery = DiscoveryReader(
        settings.discovery_url, manager, chain_id=deployment.chain_id, audience=settings.discovery_audience
    )
    miners = MinerClient(manager, chain_id=deployment.chain_id, timeout_s=settings.miner_timeout_s)
    orchestrator = Orchestrator(
        settings=settings, store=store, network=network, manager=manager, discovery=discovery, miners=miners
    )
    nodes_auth = RequestAuthenticator(
        redis=redis,
        audience="orchestrator",
        chain_id=deployment.chain_id,
        policy=settings.auth,
        key_prefix=f"{settings.key_prefix}:auth",
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            async with background(
                orchestrator_monitor=orchestrator.run_monitor(),
                orchestrator_inviter=orchestrator.run_inviter(),
                orchestrator_health=orchestrator.run_health(),
                orchestrator_scheduler=orchestrator.run_scheduler(),
            ):
                yield
        finally:
            await discovery.aclose()
            await miners.aclose()
            await network.aclose()
            await redis.aclose()

    app = service_app(title="primenet orchestrator", max_body_bytes=settings.auth.max_body_bytes, lifespan=lifespan)
    app.state.orchestrator = orchestrator

    def admin(request: Request) -> None:
        require_admin(bearer(request), settings.admin_token)

    async def known_node(address: str) -> NodeRow:
        node = await store.node(address.lower())
        if node is None:
            raise ApiError(404, "node_not_found", f"no node {address} in this orchestrator")
        return node

    # --- heartbeat ----------------------------------------------------------------------------------------

    @app.post("/heartbeat", tags=["nodes"], response_model=HeartbeatReply)
    async def heartbeat(body: Heartbeat, signer: Annotated[Signer, Depends(nodes_auth)]) -> Response:
        """A node's beat: its task state in, its assignment out (none unless the node is Healthy)."""
        try:
            assignment = await orchestrator.heartbeat(signer.address, body)
        except HeartbeatRefusedError as exc:
            raise ApiError(403, exc.code, str(exc)) from None
        # Serialized here, once: FastAPI would dump, validate and dump the reply again (the hottest route).
        return Response(HeartbeatReply(assignment=assignment).model_dump_json(), media_type="application/json")

    # --- tasks --------------------------------------------------------------------------------------------

    @app.post("/tasks", tags=["tasks"], status_code=201, dependencies=[Depends(admin)])
    async def create_task(body: TaskRequest) -> TaskView:
        try:
            parse(body.requirements)
        except RequirementsError as exc:
            raise ApiError(422, "requirements_invalid", str(exc)) from None
        task = StoredTask(**body.model_dump(), id=uuid.uuid4().hex, created_at=time.time())
        if not await store.create_task(task):
            raise ApiError(409, "task_name_taken", f"a task named {body.name!r} exists")
        orchestrator.changed.set()
        return TaskView(**task.model_dump())

    @app.get("/tasks", tags=["tasks"], dependencies=[Depends(admin)])
    async def list_tasks() -> dict[str, list[TaskView]]:
        return {"tasks": [await store.task_view(task) for task in await store.tasks()]}

    @app.get("/tasks/{task_id}", tags=["tasks"], dependencies=[Depends(admin)])
    async def get_task(task_id: Annotated[str, Path(max_length=64)]) -> TaskView:
        task = await store.task(task_id)
        if task is None:
            raise ApiError(404, "task_not_found", f"no task {task_id}")
        return await store.task_view(task)

    @app.delete("/tasks/{task_id}", tags=["tasks"], dependencies=[Depends(admin)])
    async def delete_task(task_id: Annotated[str, Path(max_length=64)]) -> dict[str, str]:
        """Withdraws the task: its nodes are nudged, get no assignment in their next beat and remove the container."""
        withdrawn = await store.delete_task(task_id)
        if withdrawn is None:
            raise ApiError(404, "task_not_found", f"no task {task_id}")
        orchestrator.nudge(withdrawn)
        orchestrator.changed.set()
        return {"deleted": task_id}

    # --- nodes --------------------------------------------------------------------------------------------

    @app.get("/nodes", tags=["nodes"], dependencies=[Depends(admin)])
    async def list_nodes() -> dict[str, Any]:
        views = [node.view() for node in await store.nodes()]
        return {"counts": await store.counts(), "nodes": [view.model_dump(mode="json") for view in views]}

    @app.get("/nodes/{address}", tags=["nodes"], dependencies=[Depends(admin)])
    async def get_node(address: Address) -> NodeView:
        return (await known_node(address)).view()

    @app.get("/nodes/{address}/logs", tags=["nodes"], dependencies=[Depends(admin)])
    async def node_logs(address: Address, tail: Annotated[int, Query(ge=1, le=MAX_LOG_LINES)] = 300) -> dict[str, Any]:
        """The node's task container output, fetched from the miner on demand (signed by the manager key)."""
        node = await known_node(address)
        try:
            reply = await miners.logs(node.ip, node.port, node.address, tail)
        except PeerError as exc:
            raise _miner_failure(exc) from None
        return {"node": node.address, "task_id": reply.get("task_id"), "logs": reply.get("logs", "")}

    @app.post("/nodes/{address}/restart", tags=["nodes"], dependencies=[Depends(admin)])
    async def node_restart(address: Address) -> dict[str, Any]:
        node = await known_node(address)
        try:
            return await miners.restart(node.ip, node.port, node.address)
        except PeerError as exc:
            raise _miner_failure(exc) from None

    @app.post("/nodes/{address}/ban", tags=["nodes"], dependencies=[Depends(admin)])
    async def node_ban(address: Address) -> dict[str, Any]:
        """blacklistNode on chain (ejects it when in the pool and keeps it out), then Banned: never invited again."""
        node = await known_node(address)
        try:
            receipt = await network.blacklist_node(orchestrator.transactor, settings.pool_id, node.address)
        except ContractRevertError as exc:
            raise ApiError(409, "chain_refused", f"the pool contract refused blacklistNode: {exc}") from None
        except ChainError as exc:
            raise ApiError(502, "chain_error", f"blacklistNode failed: {exc}") from None
        previous = await store.transition(node.address, NodeStatus.BANNED, now=time.time())
        await store.assign(node.address, None)
        await orchestrator.moved(node.address, NodeStatus.BANNED, previous)
        return {"node": node.address, "status": "banned", "tx": "0x" + bytes(receipt["transactionHash"]).hex()}

    # --- ops ----------------------------------------------------------------------------------------------

    @app.get("/health", tags=["ops"])
    async def health() -> JSONResponse:
        try:
            await redis.ping()
            redis_status = "ok"
        except Exception as exc:  # report, do not raise: /health must answer while Redis is down
            redis_status = f"{type(exc).__name__}: {exc}"
        loops = {
            name: {"last_run_at": stat.last_run_at, "last_error": stat.last_error, "last_error_at": stat.last_error_at}
            for name, stat in orchestrator.stats.loops.items()
        }
        ok = redis_status == "ok"
        body = {
            "status": "ok" if ok else "degraded",
            "redis": redis_status,
            "pool_id": settings.pool_id,
            "loops": loops,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    return app


def _miner_failure(exc: PeerError) -> ApiError:
    """The miner's answer as ours: "no task there" is a plain 404 for the caller; a miner that cannot be reached or
    refuses our signed request is a gateway failure (502), the caller's request was fine."""
    if exc.status is None:
        return ApiError(502, "miner_unreachable", str(exc))
    if exc.status == 404 and exc.code == "no_task":
        return ApiError(404, "no_task", f"the node runs no task container: {exc}")
    return ApiError(502, "miner_error", f"the miner answered {exc.status}: {exc}")
