"""The orchestrator's own API models: a task as the buyer asks for it and as it is stored, a node's view.

Only the orchestrator and its clients speak these (the miner sees `core.models.TaskSpec`), so they live here.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from primenet.core.models import ComputeSpecs, TaskDetails, TaskSpec, UnixTime, Wire


class NodeStatus(enum.StrEnum):
    DISCOVERED = "discovered"  # validated and listed for our pool; to be invited
    WAITING = "waiting_for_heartbeat"  # invited; its first heartbeat is due
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"  # heartbeats stopped for a while
    DEAD = "dead"  # stopped for long; ejected on chain next
    EJECTED = "ejected"  # removed from the pool on chain; comes back when it beats or is re-listed
    BANNED = "banned"  # blacklisted by the operator; never invited again


TASK_NAME = r"^[A-Za-z0-9_.-]{1,64}$"
MAX_TASK_NODES = 1_000_000


class TaskRequest(Wire):
    name: str = Field(pattern=TASK_NAME, description="unique among this orchestrator's tasks")
    image: str = Field(min_length=1, max_length=512)
    command: list[str] | None = Field(None, max_length=256)
    entrypoint: list[str] | None = Field(None, max_length=64)
    env: dict[str, str] = Field(default_factory=dict, max_length=256)
    gpus: int = Field(0, ge=0, le=64, description="GPUs per node")
    nodes: Annotated[int, Field(ge=1, le=MAX_TASK_NODES)] | Literal["all"] = Field(
        1, description="how many nodes run it, or every node that fits"
    )
    requirements: str = Field("", max_length=1024, description="core.requirements language; empty: none")
    # What the task's container may use; each miner caps them by its provider's maxima (miner.isolation).
    shm_size_mib: int = Field(64, ge=1, le=1 << 20, description="shared memory (shm) in MiB")
    cpu_limit: float | None = Field(None, gt=0, le=4096, allow_inf_nan=False, description="CPUs; None: the cap")
    memory_limit_mib: int | None = Field(None, ge=16, le=1 << 30, description="MiB; None: the provider's cap")
    max_restarts: int = Field(3, ge=0, le=1000, description="restarts after failure before the task is failed")
    run_as_root: bool = Field(False, description="run as root; only providers that allow it run the task")


class StoredTask(TaskRequest):
    id: str = Field(pattern=r"^[0-9a-f]{32}$")
    created_at: UnixTime

    def spec(self) -> TaskSpec:
        return TaskSpec(
            task_id=self.id,
            image=self.image,
            command=self.command,
            entrypoint=self.entrypoint,
            env=self.env,
            gpus=self.gpus,
            shm_size_mib=self.shm_size_mib,
            cpu_limit=self.cpu_limit,
            memory_limit_mib=self.memory_limit_mib,
            max_restarts=self.max_restarts,
            run_as_root=self.run_as_root,
        )


class AssignmentView(BaseModel):
    state: str
    details: TaskDetails | None = None
    message: str | None = Field(None, description="what the miner said about it (why it failed or waits)")
    updated_at: UnixTime


class TaskView(StoredTask):
    assignments: dict[str, AssignmentView] = Field(default_factory=dict)
    state: Literal["assigned", "waiting"] = Field(
        "waiting", description="assigned: it has every node it asked for ('all': at least one); waiting: not yet"
    )
    reason: str | None = Field(None, description="why it waits (no Healthy node, none fits, none free)")


class NodeView(BaseModel):
    address: str
    status: NodeStatus
    status_since: float
    ip: str
    port: int
    task_id: str | None = None
    task_state: str | None = None
    last_heartbeat: float | None = None
    version: str | None = None
    specs: ComputeSpecs | None = None


# --- the answers of the admin API as a whole, as its clients read them ---------------------------------------


class NodeList(BaseModel):
    """`GET /nodes`: how many nodes are in each status, and every node."""

    counts: dict[str, int] = Field(default_factory=dict, description="status -> number of nodes")
    nodes: list[NodeView] = Field(default_factory=list)


class TaskList(BaseModel):
    """`GET /tasks`."""

    tasks: list[TaskView] = Field(default_factory=list)


class TaskDeleted(BaseModel):
    """`DELETE /tasks/{id}`: the id of the task withdrawn."""

    deleted: str


class NodeLogs(BaseModel):
    """`GET /nodes/{address}/logs`: the tail of the node's task container output, fetched from its miner."""

    node: str
    task_id: str | None = None
    logs: str | list[str] = Field("", description="the output as one text, or as a list of lines")


class StoreMarker(BaseModel):
    """The store marker (`orchestrator.guard`): which pool this store records, since when, and how it was written
    (`fresh`: a new deployment, `adopted`: a store from before markers, `confirmed`: by an operator)."""

    pool_id: int
    created_at: float
    how: str


class StoreState(BaseModel):
    """`GET /store`: whether the store-lost hold lasts, and what it was judged on."""

    hold: bool
    marker: StoreMarker | None = None
    hold_since: float | None = None
    pool_nodes_on_chain: int | None = Field(None, description="read only while there is no marker")


class StoreConfirmed(BaseModel):
    """`POST /store/confirm`: `ended` is true when a hold ended (false: the store was trusted already)."""

    ended: bool
    store: StoreState
