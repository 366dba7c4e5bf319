"""The orchestrator's decisions as pure functions: node status transitions and task placement.

The `Orchestrator`'s loops (`primenet.orchestrator.orchestrator`) gather facts from Redis and the chain, call these,
and write the outcome back; keeping the rules here makes each of them testable without a server.

Status rules, fixing the reference's gaps (§5.1/§11: nodes stuck waiting, dead nodes never re-invited):
    heartbeat        Unhealthy|Healthy -> Healthy; Waiting -> Healthy only once the chain shows it in the pool (an
                     invite reply proves nothing: the miner may never join), else it stays Waiting; Discovered|Dead ->
                     Healthy if still in the pool on chain, else Discovered (re-invited); Ejected -> Discovered
                     (re-invited); Banned: refused
    silence          Healthy -> Unhealthy after `unhealthy_after_s`, -> Dead after `dead_after_s` (from the last beat)
    invite timeout   Waiting -> Discovered after `waiting_timeout_s`, so the node is invited again
    chain            Dead and still in the pool -> ejectNode -> Ejected
    discovery        Dead|Ejected re-listed after it went so (the miner published again) -> Discovered
    chain watch      blacklisted from the pool on chain (by anyone: our ban route or a direct call) -> Banned;
                     Healthy|Unhealthy no longer in the pool on chain (left, or ejected by another key) -> Ejected
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from primenet.core.models import ComputeSpecs
from primenet.core.requirements import Requirements
from primenet.orchestrator.models import NodeStatus


@dataclass(frozen=True)
class Thresholds:
    unhealthy_after_s: float
    dead_after_s: float
    waiting_timeout_s: float


class OnHeartbeat(enum.StrEnum):
    HEALTHY = "healthy"  # becomes (or stays) Healthy
    CHECK_POOL = "check_pool"  # Healthy if the chain still lists it in the pool, else Discovered
    AWAIT_JOIN = "await_join"  # Healthy if the chain lists it in the pool, else it stays Waiting
    REINVITE = "reinvite"  # back to Discovered: it must join the pool again
    REFUSE = "refuse"  # banned


def on_heartbeat(status: NodeStatus) -> OnHeartbeat:
    if status in (NodeStatus.UNHEALTHY, NodeStatus.HEALTHY):
        return OnHeartbeat.HEALTHY
    if status is NodeStatus.WAITING:
        return OnHeartbeat.AWAIT_JOIN
    if status in (NodeStatus.DISCOVERED, NodeStatus.DEAD):
        return OnHeartbeat.CHECK_POOL
    if status is NodeStatus.EJECTED:
        return OnHeartbeat.REINVITE
    return OnHeartbeat.REFUSE


def after_pool_check(step: OnHeartbeat, *, in_pool: bool) -> NodeStatus | None:
    """Where a beat that needed the chain (`CHECK_POOL`, `AWAIT_JOIN`, `REINVITE`) moves the node; None: it stays."""
    if step is OnHeartbeat.AWAIT_JOIN:
        return NodeStatus.HEALTHY if in_pool else None
    if step is OnHeartbeat.CHECK_POOL:
        return NodeStatus.HEALTHY if in_pool else NodeStatus.DISCOVERED
    if step is OnHeartbeat.REINVITE:
        return NodeStatus.DISCOVERED
    return None


def on_chain(status: NodeStatus, *, in_pool: bool, blacklisted: bool) -> NodeStatus | None:
    """What the chain's view of a node (its pool membership, its blacklisting) does to our status; None: nothing.

    The chain is the source of truth: a node blacklisted from the pool is Banned however it got there, and a node we
    run (Healthy or Unhealthy) that the chain no longer lists in the pool is Ejected, so it loses its task at once.
    Waiting nodes may still be joining and Discovered/Dead ones are not in the pool anyway: left to the other rules.
    """
    if blacklisted:
        return None if status is NodeStatus.BANNED else NodeStatus.BANNED
    if not in_pool and status in (NodeStatus.HEALTHY, NodeStatus.UNHEALTHY):
        return NodeStatus.EJECTED
    return None


def on_silence(
    status: NodeStatus, *, last_heartbeat: float | None, status_since: float, now: float, limits: Thresholds
) -> NodeStatus | None:
    """The status a node moves to for want of heartbeats, or None to leave it."""
    if status is NodeStatus.WAITING:
        return NodeStatus.DISCOVERED if now - status_since > limits.waiting_timeout_s else None
    if status not in (NodeStatus.HEALTHY, NodeStatus.UNHEALTHY):
        return None
    silent_s = now - (last_heartbeat if last_heartbeat is not None else status_since)
    if silent_s > limits.dead_after_s:
        return NodeStatus.DEAD
    if status is NodeStatus.HEALTHY and silent_s > limits.unhealthy_after_s:
        return NodeStatus.UNHEALTHY
    return None


def on_listing(status: NodeStatus, *, listed_at: float, status_since: float) -> NodeStatus | None:
    """A node discovery lists again: Dead or Ejected nodes that published since come back to be invited."""
    if status in (NodeStatus.DEAD, NodeStatus.EJECTED) and listed_at > status_since:
        return NodeStatus.DISCOVERED
    return None


# --- scheduling ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskNeed:
    task_id: str
    created_at: float
    nodes: int | None  # None: every node that fits
    requirements: Requirements


@dataclass(frozen=True)
class NodeFacts:
    address: str
    status: NodeStatus
    specs: ComputeSpecs | None
    last_heartbeat: float | None
    specs_validated: bool = False  # its specs hash to what a validator bound its validation to


def fits(task: TaskNeed, node: NodeFacts) -> bool:
    """Whether the node may run the task: its specs are the validated ones (a node that uploaded other hardware
    after its challenge gets no work until it is challenged again), meet the task's requirements, and include a
    GPU whenever the requirements name GPUs at all."""
    if not node.specs_validated or node.specs is None:
        return False
    if task.requirements.wants_gpu and node.specs.gpu_count == 0:
        return False
    return not task.requirements.unmet(node.specs)


def _keeps(node: NodeFacts, now: float, grace_s: float) -> bool:
    """A Healthy node keeps its task; a lost one (not banned) keeps it for `grace_s` after its last beat, so a
    short outage does not move the work."""
    if node.status is NodeStatus.HEALTHY:
        return True
    if node.status is NodeStatus.BANNED or node.last_heartbeat is None:
        return False
    return now - node.last_heartbeat <= grace_s


def schedule(
    tasks: Iterable[TaskNeed],
    nodes: Iterable[NodeFacts],
    current: Mapping[str, str],
    *,
    now: float,
    grace_s: float,
) -> dict[str, str]:
    """The whole wanted assignment map (node -> task id) given the current one.

    Each node runs at most one task. Current assignments stay while the task exists, the node keeps it (see
    `_keeps`) and still fits. Tasks over their node count shed lost nodes first. Free Healthy nodes then go to
    the oldest task that still wants nodes and whose requirements they meet ("all" always wants more).
    """
    ordered = sorted(tasks, key=lambda t: (t.created_at, t.task_id))
    by_id = {task.task_id: task for task in ordered}
    facts = sorted(nodes, key=lambda n: n.address)
    wanted: dict[str, str] = {}
    for node in facts:
        task = by_id.get(current.get(node.address, ""))
        if task is not None and _keeps(node, now, grace_s) and fits(task, node):
            wanted[node.address] = task.task_id
    healthy_first = {n.address: n.status is NodeStatus.HEALTHY for n in facts}
    for task in ordered:
        holders = sorted((a for a, t in wanted.items() if t == task.task_id), key=lambda a: (not healthy_first[a], a))
        if task.nodes is not None:
            for address in holders[task.nodes :]:
                del wanted[address]
    count = {task.task_id: 0 for task in ordered}
    for task_id in wanted.values():
        count[task_id] += 1
    for node in facts:
        if node.status is not NodeStatus.HEALTHY or node.address in wanted:
            continue
        for task in ordered:
            if (task.nodes is None or count[task.task_id] < task.nodes) and fits(task, node):
                wanted[node.address] = task.task_id
                count[task.task_id] += 1
                break
    return wanted


def next_release(nodes: Iterable[NodeFacts], wanted: Mapping[str, str], *, grace_s: float) -> float | None:
    """When the first lost node that keeps its task (within its grace) would lose it: the time the scheduler must
    look again even if nothing else changes. None when no such node."""
    return min(
        (
            node.last_heartbeat + grace_s
            for node in nodes
            if node.address in wanted and node.status is not NodeStatus.HEALTHY and node.last_heartbeat is not None
        ),
        default=None,
    )


def waiting_reason(task: TaskNeed, nodes: Iterable[NodeFacts], current: Mapping[str, str]) -> str | None:
    """Why `task` has fewer nodes than it asked for (`nodes`: the pool's Healthy ones; `current`: every assignment),
    as the buyer reads it; None when it has them all ("all": at least one). The scheduler's rules, said in words:
    only a Healthy node that fits and runs no other task can take it."""
    holders = sum(1 for task_id in current.values() if task_id == task.task_id)
    if holders >= (task.nodes if task.nodes is not None else 1):
        return None
    healthy = [node for node in nodes if node.status is NodeStatus.HEALTHY]
    if not healthy:
        return "no Healthy node in the pool"
    fitting = [node for node in healthy if fits(task, node)]
    if not fitting:
        return f"no Healthy node meets its requirements ({len(healthy)} Healthy)"
    if all(node.address in current for node in fitting):
        busy = sum(1 for node in fitting if current[node.address] != task.task_id)
        return f"no free node: {busy} node(s) that fit run other tasks"
    return "to be placed by the scheduler's next pass"
