"""The `Orchestrator` class: one pool's heartbeat handling and the four loops that the app's lifespan starts.

    monitor     lists the pool's nodes at discovery (signed GET /api/pool/{id}), then long-polls the change feed
                (GET /api/events?pool_id=); `reset`, a flags change and every `resync_interval_s` re-list
    inviter     every Discovered node validated on chain gets a signed EIP-712 invite, up to `invite_concurrency`
                at once, each in its own task: a round only starts them, so a slow miner (its call is bounded by
                `miner_timeout_s`) delays only its own invite, never the next round; a failure only backs that
                node off (doubling); a round runs as soon as a node becomes Discovered, and every
                `invite_interval_s`
    health      silence -> Unhealthy -> Dead; Waiting too long -> Discovered; Dead and still in the pool -> ejectNode
    scheduler   recomputes assignments (`decide.schedule`) on every change, when a lost node's grace ends, and at
                least every `schedule_interval_s`; nodes whose assignment changed are nudged to beat at once

While the store-lost hold lasts (`hold`, kept by `guard.StoreGuard`) beats are answered `hold: true` and the
scheduler, the inviter and the ejections do nothing: what a lost store lacks must not withdraw anyone's task.

All state is in Redis (`store`), so a restarted orchestrator resumes where the last one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

import structlog
from eth_account.signers.local import LocalAccount
from prometheus_client import Counter, Gauge

from primenet.chain.contracts import Network
from primenet.chain.eip712 import PoolInvite
from primenet.chain.rpc import checksum
from primenet.chain.tx import Transactor
from primenet.core.discovery_client import DiscoveryReader, ListedNode
from primenet.core.errors import PrimenetError
from primenet.core.models import FeedPage, Heartbeat, HeartbeatReply, InviteRequest
from primenet.core.requirements import parse
from primenet.orchestrator.decide import (
    OnHeartbeat,
    TaskNeed,
    Thresholds,
    after_pool_check,
    next_release,
    on_heartbeat,
    on_listing,
    on_silence,
    schedule,
)
from primenet.orchestrator.models import NodeStatus
from primenet.orchestrator.peers import MinerClient, PeerError
from primenet.orchestrator.settings import OrchestratorSettings
from primenet.orchestrator.store import NodeRow, OrchestratorStore, heartbeat_fields

log = structlog.get_logger(__name__)

NODES = Gauge("primenet_orchestrator_nodes", "Nodes by status", ["status"])
TASKS = Gauge("primenet_orchestrator_tasks", "Tasks stored")
ASSIGNMENTS = Gauge("primenet_orchestrator_assignments", "Nodes with an assigned task")
HEARTBEATS = Counter("primenet_orchestrator_heartbeats", "Heartbeats received, by outcome", ["outcome"])
INVITES = Counter("primenet_orchestrator_invites", "Invites sent, by result", ["result"])
EJECTIONS = Counter("primenet_orchestrator_ejections", "ejectNode transactions, by result", ["result"])
NUDGES = Counter("primenet_orchestrator_nudges", "Miners told to beat now, by result", ["result"])
TRANSITIONS = Counter("primenet_orchestrator_transitions", "Node status changes, by new status", ["status"])

BEAT_MAKES_HEALTHY = frozenset(s for s in NodeStatus if on_heartbeat(s) is OnHeartbeat.HEALTHY)
BEAT_REFUSED = frozenset(s for s in NodeStatus if on_heartbeat(s) is OnHeartbeat.REFUSE)


class HeartbeatRefusedError(PrimenetError):
    """A beat the orchestrator will not take (`code`: address_mismatch, unknown_node, node_banned); a 403."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class EjectionError(PrimenetError):
    """Some Dead nodes could not be ejected this pass (the others were); the next pass tries them again."""


@dataclass
class LoopStat:
    last_run_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None


@dataclass
class Stats:
    loops: dict[str, LoopStat] = field(default_factory=dict)

    def ok(self, name: str) -> None:
        self.loops.setdefault(name, LoopStat()).last_run_at = time.time()

    def failed(self, name: str, error: BaseException) -> None:
        stat = self.loops.setdefault(name, LoopStat())
        stat.last_error, stat.last_error_at = f"{type(error).__name__}: {error}", time.time()
        log.warning("orchestrator loop pass failed", loop=name, error=stat.last_error)


class Orchestrator:
    """One pool's coordinator: `heartbeat` for the API, `run_monitor`/`run_inviter`/`run_health`/`run_scheduler`
    for the lifespan, and `moved`/`nudge` for the admin routes that change a node or a task."""

    def __init__(
        self,
        *,
        settings: OrchestratorSettings,
        store: OrchestratorStore,
        network: Network,
        manager: LocalAccount,
        discovery: DiscoveryReader,
        miners: MinerClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.network = network
        self.manager = manager
        self.transactor: Transactor = network.transactor(manager)
        self.discovery = discovery
        self.miners = miners
        self.clock = clock
        self.stats = Stats()
        self.limits = Thresholds(
            unhealthy_after_s=settings.unhealthy_after_s,
            dead_after_s=settings.dead_after_s,
            waiting_timeout_s=settings.waiting_timeout_s,
        )
        self.changed = asyncio.Event()  # set on anything the scheduler should react to at once
        self.discovered = asyncio.Event()  # set when a node becomes Discovered: the inviter runs a round at once
        self.invites = asyncio.Semaphore(settings.invite_concurrency)
        self.inviting: dict[str, asyncio.Task[None]] = {}  # invites in flight, by node: one at a time per node
        self._nudges: set[asyncio.Task[None]] = set()
        # The store-lost hold (`guard`): on until the guard's first check found the store marker (or wrote it).
        self.hold = settings.store_guard

    async def holding(self) -> bool:
        """Whether the loops must withdraw, place, invite and eject nothing: the guard's word, or the marker gone
        since its last pass (a store wiped under a running orchestrator); never with `store_guard` off."""
        if not self.settings.store_guard:
            return False
        return self.hold or not await self.store.has_marker()

    async def moved(self, address: str, to: NodeStatus, previous: NodeStatus | None) -> None:
        if previous is not None and previous is not to:
            TRANSITIONS.labels(to.value).inc()
            log.info("node status changed", node=address, old=previous.value, new=to.value)
            self.changed.set()
            if to is NodeStatus.DISCOVERED and self.settings.invite_on_discovery:
                self.discovered.set()

    # --- heartbeat ----------------------------------------------------------------------------------------

    async def heartbeat(self, signer: str, beat: Heartbeat) -> HeartbeatReply:
        """Record a beat, move the node's status, and answer with its assignment (only while Healthy), or with
        `hold` (and no assignment) while the store marker is absent: the node keeps what it runs."""
        if signer != beat.address:
            raise HeartbeatRefusedError("address_mismatch", f"signed by {signer}, the body claims {beat.address}")
        now = self.clock()
        fields = heartbeat_fields(now, beat.version, beat.model_dump(mode="json"))
        outcome = await self.store.beat(
            beat.address,
            fields,
            now=now,
            healthy_from=BEAT_MAKES_HEALTHY,
            refused=BEAT_REFUSED,
            guarded=self.settings.store_guard,
        )
        status = outcome.previous
        if status is None:
            HEARTBEATS.labels("unknown").inc()
            raise HeartbeatRefusedError("unknown_node", f"{beat.address} is not a node of this orchestrator's pool")
        if status in BEAT_REFUSED:
            HEARTBEATS.labels("banned").inc()
            raise HeartbeatRefusedError("node_banned", f"{beat.address} is banned from this pool")
        HEARTBEATS.labels("ok").inc()
        if outcome.held:
            HEARTBEATS.labels("held").inc()
        if status in BEAT_MAKES_HEALTHY:  # the store moved it already, in the same step
            await self.moved(beat.address, NodeStatus.HEALTHY, status)
            return HeartbeatReply(assignment=outcome.task, hold=outcome.held)
        # The rare path: the node is not (yet, or any more) in the pool's running set; the chain decides where it
        # goes. A Waiting node's invite reply proved nothing: only the chain showing it in the pool makes it Healthy.
        step = on_heartbeat(status)
        in_pool = step is not OnHeartbeat.REINVITE and await self.network.is_node_in_pool(
            self.settings.pool_id, beat.address
        )
        to = after_pool_check(step, in_pool=in_pool)
        if to is None:  # invited, not joined on chain (yet): it stays Waiting, and gets no task
            HEARTBEATS.labels("not_in_pool").inc()
            return HeartbeatReply(hold=outcome.held)
        reset = {"invite_failures": "0", "next_invite_at": "0"} if to is NodeStatus.DISCOVERED else None
        previous = await self.store.transition(beat.address, to, now=now, expected=[status], fields=reset)
        await self.moved(beat.address, to, previous)
        # Its assignment (if any) comes with its next beat, once it is Healthy.
        return HeartbeatReply(hold=outcome.held)

    def nudge(self, addresses: list[str]) -> None:
        """Tell the miners of these nodes (whose assignment changed) to beat now rather than at their next interval;
        in the background, at most `nudge_max` in flight. Those left out, or whose nudge fails, see the change at
        their next regular beat: the heartbeat reply stays the only carrier of assignments."""
        room = self.settings.nudge_max - len(self._nudges)
        for address in addresses[: max(room, 0)]:
            task = asyncio.create_task(self._nudge(address))
            self._nudges.add(task)  # the loop holds tasks weakly
            task.add_done_callback(self._nudges.discard)

    async def _nudge(self, address: str) -> None:
        try:
            node = await self.store.node(address)
            if node is None or node.status is not NodeStatus.HEALTHY:
                return
            await self.miners.nudge(node.ip, node.port, node.address, self.settings.nudge_timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a hint only: never worth more than a metric and a debug line
            NUDGES.labels("failed").inc()
            log.debug("nudge failed", node=address, error=str(exc))
        else:
            NUDGES.labels("sent").inc()

    # --- loops --------------------------------------------------------------------------------------------

    async def every(self, name: str, interval_s: float, body: Callable[[], Awaitable[object]]) -> None:
        while True:
            try:
                await body()
                self.stats.ok(name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a pass failing (Redis, chain, discovery down) never ends the loop
                self.stats.failed(name, exc)
            await asyncio.sleep(interval_s)

    async def run_health(self) -> None:
        await self.every("health", self.settings.heartbeat_interval_s / 2, self.health_pass)

    async def run_inviter(self) -> None:
        """A round when a node becomes Discovered (`invite_on_discovery`: a new node is invited as soon as the
        monitor sees it) and at least every `invite_interval_s` (for invites whose backoff ended)."""
        try:
            while True:
                self.discovered.clear()
                try:
                    await self.invite_round()
                    self.stats.ok("inviter")
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a pass failing (Redis, chain down) never ends the loop
                    self.stats.failed("inviter", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.discovered.wait(), self.settings.invite_interval_s)
        finally:
            for task in list(self.inviting.values()):
                task.cancel()

    async def run_scheduler(self) -> None:
        try:
            while True:
                # Placement only changes with an event (status moves, tasks created or deleted: `changed`) or when a
                # lost node's grace ends; the periodic pass is a safety net, so a big idle pool costs nothing.
                wait_s = self.settings.schedule_interval_s
                try:
                    self.changed.clear()
                    release_at = await self.schedule_pass()
                    if release_at is not None:
                        wait_s = min(wait_s, max(release_at - self.clock(), 0.05))
                    self.stats.ok("scheduler")
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.stats.failed("scheduler", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), wait_s)
        finally:
            for nudge in self._nudges:
                nudge.cancel()

    async def run_monitor(self) -> None:
        cursor: str | None = None
        listed_at = 0.0
        failures = 0
        while True:
            try:
                if cursor is None or self.clock() - listed_at > self.settings.resync_interval_s:
                    cursor = await self.relist()
                    listed_at = self.clock()
                page = await self.discovery.events(cursor, self.settings.feed_timeout_s, pool_id=self.settings.pool_id)
                cursor = None if await self.apply_feed(page) else page.cursor
                if cursor is not None:
                    await self.store.set_cursor(cursor)
                self.stats.ok("monitor")
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.failed("monitor", exc)
                failures += 1
                cursor = None  # list again once discovery answers: events may have been missed
                await asyncio.sleep(min(0.5 * 2**failures, 30.0))

    # --- monitor ------------------------------------------------------------------------------------------

    async def relist(self) -> str:
        nodes, cursor = await self.discovery.pool_listing(self.settings.pool_id)
        for listed in nodes:
            await self.apply_listed(listed, revive=False)
        await self.store.set_cursor(cursor)
        return cursor

    async def apply_feed(self, page: FeedPage) -> bool:
        """Apply the page's events; True when a full re-listing is needed (reset, or flags we only see in part)."""
        relist = page.reset
        for event in page.events:
            if event.type in ("registered", "updated") and event.data:
                try:
                    listed = ListedNode.parse(event.data)
                except ValueError:
                    relist = True
                    continue
                await self.apply_listed(listed, revive=True)
            elif event.type == "removed":  # discovery dropped it: the chain no longer backs the node
                await self.forget(event.node)
            else:
                relist = True
        return relist

    async def forget(self, address: str) -> None:
        """A node discovery no longer lists because the chain no longer backs it: Dead (ejected if still in the pool;
        the chain watch has usually moved it already), its task gone with it."""
        node = await self.store.node(address)
        if node is None or node.status in (NodeStatus.BANNED, NodeStatus.DEAD, NodeStatus.EJECTED):
            return
        previous = await self.store.transition(address, NodeStatus.DEAD, now=self.clock(), expected=[node.status])
        if previous is not None:
            await self.store.assign(address, None)
            await self.moved(address, NodeStatus.DEAD, previous)

    async def apply_listed(self, listed: ListedNode, *, revive: bool) -> None:
        """A validated node of our pool is stored (new ones as Discovered); one that lost its validation or left the
        pool is Dead (then ejected if the chain still lists it). `revive`: the miner published a changed record,
        so a Dead or Ejected node is worth inviting again."""
        record, now = listed.record, self.clock()
        if not listed.is_validated or record.pool_id != self.settings.pool_id:
            node = await self.store.node(record.node)
            if node is not None and record.pool_id == self.settings.pool_id:
                # Kept as it claims now (specs and binding), so the scheduler sees specs no validator vouched for,
                # whatever its status becomes (a heartbeat may bring it back before it is ejected).
                await self.store.upsert_listed(
                    record, listed_at=listed.updated_at, now=now, bound_specs_hash=listed.specs_hash
                )
            keep = (NodeStatus.BANNED, NodeStatus.DEAD, NodeStatus.EJECTED)
            if node is not None and node.status not in keep:
                await self.moved(
                    record.node,
                    NodeStatus.DEAD,
                    await self.store.transition(record.node, NodeStatus.DEAD, now=now, expected=[node.status]),
                )
            return
        previous = await self.store.upsert_listed(
            record, listed_at=listed.updated_at, now=now, bound_specs_hash=listed.specs_hash
        )
        if previous is None:
            log.info("node discovered", node=record.node, ip=record.ip, port=record.port)
            self.changed.set()
            if self.settings.invite_on_discovery:
                self.discovered.set()
            return
        node = await self.store.node(record.node)
        if revive and node is not None:
            to = on_listing(node.status, listed_at=listed.updated_at, status_since=node.status_since)
            if to is not None:
                fields = {"invite_failures": "0", "next_invite_at": "0"}
                result = await self.store.transition(record.node, to, now=now, expected=[node.status], fields=fields)
                await self.moved(record.node, to, result)

    # --- inviter ------------------------------------------------------------------------------------------

    async def invite_round(self) -> list[asyncio.Task[None]]:
        """Start an invite for each due Discovered node that has none in flight; returns the tasks started.

        It does not wait for them: each invite is its own task (see `invite`), so one miner that answers slowly
        holds only its own invite (and one of `invite_concurrency` slots, for at most `miner_timeout_s`).
        """
        # Taken before the store is read: an invite that ends after this point is skipped even though the row
        # read below may predate its outcome, so no node is invited twice on a stale row.
        busy = set(self.inviting)
        if await self.holding():  # a node re-learned during the hold may be in the pool already
            return []
        now = self.clock()
        due = [
            node
            for node in await self.store.with_status(NodeStatus.DISCOVERED)
            if node.next_invite_at <= now and node.address not in busy and node.address not in self.inviting
        ]
        if not due:
            return []
        domain_id = (await self.network.pool(self.settings.pool_id)).domain_id
        started = []
        for node in due:
            task = asyncio.create_task(self.invite(node, domain_id), name=f"invite-{node.address}")
            self.inviting[node.address] = task
            task.add_done_callback(functools.partial(self._invite_done, node.address))
            started.append(task)
        return started

    def _invite_done(self, address: str, task: asyncio.Task[None]) -> None:
        if self.inviting.get(address) is task:
            del self.inviting[address]
        if not task.cancelled() and task.exception() is not None:  # e.g. Redis down while recording the outcome
            self.stats.failed("inviter", cast(BaseException, task.exception()))

    async def invite(self, node: NodeRow, domain_id: int) -> None:
        async with self.invites:
            try:
                info = await self.network.node(node.address)
                if info is None or not info.is_validated:
                    raise PeerError("the node is not validated on chain")
                invite = PoolInvite(
                    domain_id=domain_id,
                    pool_id=self.settings.pool_id,
                    node=checksum(node.address),
                    nonce=secrets.randbits(256),  # random: no counter to keep consistent across restarts
                    expiry=await self.network.chain_time() + self.settings.invite_expiry_s,
                )
                body = InviteRequest(
                    domain_id=invite.domain_id,
                    pool_id=invite.pool_id,
                    node=node.address,
                    nonce=invite.nonce,
                    expiry=invite.expiry,
                    signature=self.network.sign_invite(self.manager, invite).hex(),
                    orchestrator_url=self.settings.public_url,
                )
                reply = await self.miners.invite(node.ip, node.port, body)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # this node backs off; the round goes on
                await self.invite_failed(node, exc)
                return
            INVITES.labels("accepted").inc()
            fields = {"invite_failures": "0", "next_invite_at": "0"}
            previous = await self.store.transition(
                node.address, NodeStatus.WAITING, now=self.clock(), expected=[NodeStatus.DISCOVERED], fields=fields
            )
            log.info("node invited", node=node.address, result=reply.get("result"))
            await self.moved(node.address, NodeStatus.WAITING, previous)

    async def invite_failed(self, node: NodeRow, exc: Exception) -> None:
        INVITES.labels("failed").inc()
        failures = node.invite_failures + 1
        wait_s = min(self.settings.invite_retry_base_s * 2 ** (failures - 1), self.settings.invite_retry_max_s)
        await self.store.set_fields(
            node.address, {"invite_failures": str(failures), "next_invite_at": repr(self.clock() + wait_s)}
        )
        log.warning("invite failed", node=node.address, error=str(exc), failures=failures, retry_in_s=wait_s)

    # --- health -------------------------------------------------------------------------------------------

    async def health_pass(self) -> None:
        now = self.clock()
        # Only nodes that can move: the Waiting ones (few: invites in flight) and those silent long enough to be
        # Unhealthy, found through the beats index instead of reading every node.
        silent = await self.store.silent(now - self.limits.unhealthy_after_s)
        candidates = await self.store.nodes(set(silent) | await self.store.members(NodeStatus.WAITING))
        for node in candidates:
            to = on_silence(
                node.status,
                last_heartbeat=node.last_heartbeat,
                status_since=node.status_since,
                now=now,
                limits=self.limits,
            )
            if to is not None:
                previous = await self.store.transition(node.address, to, now=now, expected=[node.status])
                await self.moved(node.address, to, previous)
        failed: list[str] = []
        if self.settings.eject_dead and not await self.holding():
            for node in await self.store.with_status(NodeStatus.DEAD):
                try:
                    await self.eject(node)
                except Exception as exc:  # one failed ejection must not hold back the others: next pass retries
                    failed.append(node.address)
                    log.warning("ejection failed; retried next pass", node=node.address, error=str(exc)[:300])
        counts = await self.store.counts()
        for name, count in counts.items():
            NODES.labels(name).set(count)
        if failed:  # the pass as a whole failed: /health and the loop's backoff say so
            raise EjectionError(f"{len(failed)} ejection(s) failed, first {failed[0]}")

    async def eject(self, node: NodeRow) -> None:
        """Dead and still in the pool: eject on chain. Ejected means out of the pool either way, so a Dead node the
        chain no longer lists is marked Ejected too (and is not looked up again each pass)."""
        try:
            if await self.network.is_node_in_pool(self.settings.pool_id, node.address):
                await self.network.eject_node(self.transactor, self.settings.pool_id, node.address)
                EJECTIONS.labels("sent").inc()
                log.info("dead node ejected on chain", node=node.address)
        except Exception:
            EJECTIONS.labels("failed").inc()
            raise
        previous = await self.store.transition(
            node.address, NodeStatus.EJECTED, now=self.clock(), expected=[NodeStatus.DEAD]
        )
        await self.moved(node.address, NodeStatus.EJECTED, previous)

    # --- scheduler ----------------------------------------------------------------------------------------

    async def schedule_pass(self) -> float | None:
        """Place tasks; returns when the next pass is due for want of a change (see `decide.next_release`).
        Nothing at all during the store-lost hold: the guard's confirmation wakes the scheduler."""
        if await self.holding():
            return None
        tasks = await self.store.tasks()
        current = await self.store.assignments()
        if not tasks and not current:  # nothing to place or withdraw: no need to read any node
            TASKS.set(0)
            ASSIGNMENTS.set(0)
            return None
        needs = [
            TaskNeed(
                task_id=task.id,
                created_at=task.created_at,
                nodes=None if task.nodes == "all" else int(task.nodes),
                requirements=parse(task.requirements),
            )
            for task in tasks
        ]
        # Free Healthy nodes may get a task; assigned ones (of any status) may keep or lose theirs; no other matters.
        facts = await self.store.facts(await self.store.members(NodeStatus.HEALTHY) | set(current))
        now = self.clock()
        wanted = schedule(needs, facts, current, now=now, grace_s=self.settings.reassign_grace_s)
        changed = [
            address for address in sorted(set(current) | set(wanted)) if current.get(address) != wanted.get(address)
        ]
        for address in changed[:100]:  # a task for a whole pool would otherwise log thousands of lines
            log.info("assignment changed", node=address, old=current.get(address), new=wanted.get(address))
        if len(changed) > 100:
            log.info("assignments changed", nodes=len(changed))
        await self.store.assign_many({address: wanted.get(address) for address in changed})
        self.nudge(changed)
        TASKS.set(len(tasks))
        ASSIGNMENTS.set(len(wanted))
        return next_release(facts, wanted, grace_s=self.settings.reassign_grace_s)
