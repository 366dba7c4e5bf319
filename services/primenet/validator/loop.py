"""The validator loop: unvalidated nodes from discovery -> challenge -> validateNode (or, in the end, give up).

Two tasks share the set of candidates (unvalidated nodes and their records):
  follow_feed   lists `GET /api/validator?validated=false` (the candidates and a cursor), then long-polls
                `GET /api/events` from that cursor; `reset: true`, a node that lost its validation, and every
                `resync_interval_s` lead to a fresh listing, so a missed event costs at most one interval.
  dispatch      starts a challenge for each candidate that is due, at most `concurrency` at once.
One challenge (`process`): skip a node the chain says is validated (discovery's flags lag the chain) or that has
left the registry; check that the provider's stake covers its nodes (validateNode would revert otherwise); run the
challenge; validate on acceptance, else back off (`policy`). All transactions go through one `Transactor`, which
orders nonces itself, so concurrent validations never collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from prometheus_client import Counter, Gauge

from primenet.chain.contracts import Network
from primenet.chain.errors import ChainError
from primenet.chain.tx import Transactor
from primenet.core.discovery_client import DiscoveryReader, ListedNode
from primenet.core.models import FeedEvent, NodeRecord
from primenet.core.nodeaddr import AddressRefusedError
from primenet.validator.challenger import ChallengeClient, ChallengeResult, Outcome, RunFailure, claimed_gpu
from primenet.validator.policy import NodeState, RetryPolicy, Step, decide, failed_again
from primenet.validator.settings import FailureAction
from primenet.validator.store import ValidatorStore

log = structlog.get_logger(__name__)

CHALLENGES = Counter("primenet_validator_challenges", "Challenges run, by outcome and reason", ["outcome", "reason"])
VALIDATIONS = Counter("primenet_validator_validations", "validateNode transactions, by result", ["result"])
INVALIDATIONS = Counter("primenet_validator_invalidations", "invalidateNode transactions, by result", ["result"])
QUEUE = Gauge("primenet_validator_queue_size", "Candidates due for a challenge and waiting for a free slot")
IN_FLIGHT = Gauge("primenet_validator_in_flight", "Challenges running now")
CANDIDATES = Gauge("primenet_validator_candidates", "Unvalidated nodes known from discovery")


@dataclass
class LoopStats:
    started_at: float = 0.0
    last_run_at: float | None = None  # the dispatcher's last pass
    last_feed_at: float | None = None  # last successful reply from discovery
    last_resync_at: float | None = None
    cursor: str | None = None
    feed_error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1


class ValidatorLoop:
    def __init__(
        self,
        *,
        network: Network,
        transactor: Transactor,
        discovery: DiscoveryReader,
        client: ChallengeClient,
        store: ValidatorStore,
        policy: RetryPolicy,
        concurrency: int = 4,
        feed_timeout_s: float = 25.0,
        resync_interval_s: float = 300.0,
        tick_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.network = network
        self.transactor = transactor
        self.discovery = discovery
        self.client = client
        self.store = store
        self.policy = policy
        self.concurrency = concurrency
        self.feed_timeout_s = feed_timeout_s
        self.resync_interval_s = resync_interval_s
        self.tick_s = tick_s
        self.clock = clock
        self.candidates: dict[str, NodeRecord] = {}
        self.not_before: dict[str, float] = {}  # in-memory copy of each node's next_at, so ticks skip Redis
        self.in_flight: dict[str, asyncio.Task[None]] = {}
        self.stats = LoopStats()
        self.queued = 0  # due candidates waiting for a free slot at the last dispatch
        self._wake = asyncio.Event()
        self._resync_requested = False

    # --- running ------------------------------------------------------------------------------------

    async def run(self) -> None:
        self.stats.started_at = self.clock()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.follow_feed(), name="validator-feed")
                group.create_task(self.dispatch(), name="validator-dispatch")
        finally:
            for task in list(self.in_flight.values()):
                task.cancel()
            await asyncio.gather(*self.in_flight.values(), return_exceptions=True)

    # --- learning of nodes --------------------------------------------------------------------------

    async def follow_feed(self) -> None:
        cursor: str | None = None
        errors = 0
        while True:
            try:
                if cursor is None or self._resync_due():
                    cursor = await self.resync()
                page = await self.discovery.events(cursor, self.feed_timeout_s)
            except Exception as exc:  # DiscoveryError, or anything unforeseen: keep following, never die silently
                errors += 1
                self.stats.feed_error = f"{type(exc).__name__}: {exc}"
                log.warning("discovery read failed", error=self.stats.feed_error, attempt=errors)
                await asyncio.sleep(min(30.0, 0.5 * 2**errors))
                continue  # the cursor stays valid: discovery keeps its feed in Redis
            errors = 0
            self.stats.last_feed_at, self.stats.feed_error = self.clock(), None
            if page.reset:
                cursor = None
                continue
            for event in page.events:
                self.apply(event)
            cursor = self.stats.cursor = page.cursor

    async def resync(self) -> str:
        """Replace the candidates with discovery's listing of unvalidated nodes; returns the feed cursor."""
        self._resync_requested = False
        nodes, cursor = await self.discovery.listing(validated=False)
        self.candidates = {listed.record.node: listed.record for listed in nodes if not listed.is_validated}
        self.stats.last_resync_at, self.stats.cursor = self.clock(), cursor
        CANDIDATES.set(len(self.candidates))
        self._wake.set()
        log.info("listed unvalidated nodes", count=len(self.candidates))
        return cursor

    def apply(self, event: FeedEvent) -> None:
        node = event.node.lower()
        if event.type in ("registered", "updated"):
            try:
                listed = ListedNode.parse(event.data)
            except (KeyError, TypeError, ValueError):
                self._resync_requested = True  # an event we cannot read: the listing will tell
                return
            if listed.is_validated:
                self._drop(node)
            else:
                self.candidates[node] = listed.record
                self._wake.set()
        elif event.type == "flags_changed" and "validated" in event.data:
            if event.data["validated"]:
                self._drop(node)
            else:  # a node lost its validation; the event has no record, the listing has
                self._resync_requested = True
        elif event.type == "removed":  # discovery dropped it: the chain no longer backs the node
            self._drop(node)
        CANDIDATES.set(len(self.candidates))

    def _resync_due(self) -> bool:
        last = self.stats.last_resync_at
        return self._resync_requested or last is None or self.clock() - last >= self.resync_interval_s

    def _drop(self, node: str) -> None:
        self.candidates.pop(node, None)
        self.not_before.pop(node, None)

    # --- challenging --------------------------------------------------------------------------------

    def _due(self, now: float) -> list[str]:
        return [
            node for node in self.candidates if node not in self.in_flight and self.not_before.get(node, 0.0) <= now
        ]

    async def dispatch(self) -> None:
        while True:
            self._wake.clear()
            now = self.clock()
            due = self._due(now)
            start = due[: max(0, self.concurrency - len(self.in_flight))]
            for node in start:
                task = asyncio.create_task(self.process(node, self.candidates[node]), name=f"challenge-{node}")
                self.in_flight[node] = task
            self.queued = len(due) - len(start)
            QUEUE.set(self.queued)
            IN_FLIGHT.set(len(self.in_flight))
            self.stats.last_run_at = now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick_s)

    async def process(self, node: str, record: NodeRecord) -> None:
        """One attempt at one node; never raises (a failure here must not stop the loop)."""
        try:
            await self._attempt(node, record)
        except Exception:  # e.g. the chain RPC is down: try this node again later
            log.exception("challenge attempt failed", node=node)
            self.stats.count("errors")
            self.not_before[node] = self.clock() + self.policy.base_s
        finally:
            self.in_flight.pop(node, None)
            IN_FLIGHT.set(len(self.in_flight))
            self._wake.set()

    async def _attempt(self, node: str, record: NodeRecord) -> None:
        state = await self.store.state(node)
        now = self.clock()
        if state.given_up:
            self._drop(node)
            return
        if state.next_at > now:  # a wait set before a restart
            self.not_before[node] = state.next_at
            return
        info = await self.network.node(node)
        if info is None or info.is_validated:  # left the registry, or validated already (discovery lags)
            self._drop(node)
            return
        try:
            target = self.client.target_of(record)
        except AddressRefusedError as exc:  # discovery should have refused it; never connect to it regardless
            result = ChallengeResult(
                node=node,
                url=f"{record.ip}:{record.port}",
                claimed_gpu=claimed_gpu(record.specs),
                outcome=Outcome.FAILED,
                reason=RunFailure.ADDRESS_REFUSED,
                detail=str(exc),
                at=now,
            )
            await self._conclude(node, info.provider, state, result)
            return
        required = await self.network.minimum_stake(info.provider, 0)
        stake = await self.network.stake_of(info.provider)
        if stake < required:
            result = ChallengeResult(
                node=node,
                url=target.url,
                claimed_gpu=target.claimed_gpu,
                outcome=Outcome.FAILED,
                reason=RunFailure.STAKE_BELOW_MINIMUM,
                detail=f"provider {info.provider} stakes {stake}, its nodes need {required}",
                at=now,
            )
        else:
            result = await self.client.run(target)
        await self._conclude(node, info.provider, state, result)

    async def _conclude(self, node: str, provider: str, state: NodeState, result: ChallengeResult) -> None:
        CHALLENGES.labels(result.outcome.value, result.reason).inc()
        self.stats.count(result.outcome.value)
        log.info("challenge done", node=node, outcome=result.outcome.value, reason=result.reason, detail=result.detail)
        if result.outcome is not Outcome.ACCEPTED:
            await self.store.record_rejection(result)
        now = self.clock()
        decision = decide(state, result.outcome, result.reason, now, self.policy)
        final = decision.state
        if decision.step is Step.VALIDATE:
            try:
                await self.network.validate_node(self.transactor, provider, node)
            except ChainError as exc:
                VALIDATIONS.labels("failed").inc()
                log.warning("validateNode failed", node=node, error=str(exc))
                final = failed_again(final, RunFailure.CHAIN_ERROR, now, self.policy)
                self.not_before[node] = final.next_at
            else:
                VALIDATIONS.labels("sent").inc()
                self.stats.count("validations")
                self._drop(node)
        elif decision.step is Step.GIVE_UP:
            log.warning("giving up on node", node=node, rejections=final.rejections, action=decision.action)
            if decision.action is FailureAction.INVALIDATE:
                await self._invalidate(node, provider)
            self._drop(node)
        else:
            self.not_before[node] = final.next_at
        await self.store.save(node, final)

    async def _invalidate(self, node: str, provider: str) -> None:
        try:
            await self.network.invalidate_node(self.transactor, provider, node)
        except ChainError as exc:
            INVALIDATIONS.labels("failed").inc()
            log.warning("invalidateNode failed", node=node, error=str(exc))
        else:
            INVALIDATIONS.labels("sent").inc()
            self.stats.count("invalidations")
