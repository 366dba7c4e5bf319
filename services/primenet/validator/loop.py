"""The validator loop: unvalidated nodes from discovery -> challenge -> validateNode + binding (or give up), and
validated nodes -> re-challenge, periodically and at random.

Two tasks share the candidates (nodes discovery serves unvalidated) and the validated nodes, with their records:
  follow_feed   lists `GET /api/validator` (every node and a cursor), then long-polls `GET /api/events` from that
                cursor; `reset: true`, a node that lost its validation, and every `resync_interval_s` lead to a
                fresh listing, so a missed event costs at most one interval.
  dispatch      starts a challenge for each candidate that is due and each validated node whose re-challenge is
                due, at most `concurrency` at once; it wakes on a new candidate, a finished challenge, the
                soonest retry falling due, and at least every `tick_s`.
One challenge (`process`): skip a node that has left the registry, or that the chain says is validated while
discovery (asked again) serves it validated too (its feed lags); a node validated on chain whose uploaded specs no
longer match the binding is invalidated on chain first, then challenged like a new one. Refuse (`units_above_specs`)
a node whose on-chain compute units exceed what its specs justify; check that the provider's stake covers its
nodes (validateNode would revert otherwise); run the challenge; on acceptance validate on chain and bind the
validation to the challenged specs in discovery (`PUT /api/validator/nodes/{node}/specs`), else back off
(`policy`). A re-challenge that passes renews the binding; one that is rejected invalidates the node on chain at
once (it becomes a candidate again); one that cannot run is retried with the usual backoff. The next re-challenge
is `rechallenge_interval_s` plus a random part of `rechallenge_jitter_s` after a pass. All transactions go through
one `Transactor`, which orders nonces itself, so concurrent validations never collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from prometheus_client import Counter, Gauge

from primenet.chain.contracts import Network
from primenet.chain.errors import ChainError
from primenet.chain.tx import Transactor
from primenet.core.discovery_client import DiscoveryError, DiscoveryReader, ListedNode
from primenet.core.models import FeedEvent, NodeRecord, specs_hash
from primenet.core.nodeaddr import AddressRefusedError
from primenet.validator.challenger import ChallengeClient, ChallengeResult, Outcome, RunFailure, claimed_gpu
from primenet.validator.policy import (
    UNITS_ABOVE_SPECS,
    NodeState,
    RetryPolicy,
    Step,
    decide,
    failed_again,
    first_rechallenge,
    max_compute_units,
    next_rechallenge,
)
from primenet.validator.settings import FailureAction
from primenet.validator.store import ValidatorStore

log = structlog.get_logger(__name__)

CHALLENGES = Counter("primenet_validator_challenges", "Challenges run, by outcome and reason", ["outcome", "reason"])
VALIDATIONS = Counter("primenet_validator_validations", "validateNode transactions, by result", ["result"])
INVALIDATIONS = Counter("primenet_validator_invalidations", "invalidateNode transactions, by result", ["result"])
QUEUE = Gauge("primenet_validator_queue_size", "Candidates due for a challenge and waiting for a free slot")
IN_FLIGHT = Gauge("primenet_validator_in_flight", "Challenges running now")
CANDIDATES = Gauge("primenet_validator_candidates", "Unvalidated nodes known from discovery")
BINDINGS = Counter("primenet_validator_bindings", "Specs bindings sent to discovery, by result", ["result"])


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
        rechallenge_interval_s: float = 21600.0,
        rechallenge_jitter_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
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
        self.rechallenge_interval_s = rechallenge_interval_s
        self.rechallenge_jitter_s = rechallenge_jitter_s
        self.rng = rng or random.SystemRandom()
        self.candidates: dict[str, NodeRecord] = {}
        self.validated: dict[str, NodeRecord] = {}  # nodes discovery serves validated, to be re-challenged
        self.rechallenge_at: dict[str, float] = {}
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
        """Replace the candidates and validated nodes with discovery's listing; returns the feed cursor."""
        self._resync_requested = False
        nodes, cursor = await self.discovery.listing()
        self.candidates = {listed.record.node: listed.record for listed in nodes if not listed.is_validated}
        self.validated = {listed.record.node: listed.record for listed in nodes if listed.is_validated}
        now = self.clock()
        self.rechallenge_at = {
            node: self.rechallenge_at.get(node) or self._first_rechallenge(now) for node in self.validated
        }
        self.stats.last_resync_at, self.stats.cursor = now, cursor
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
                self.validated[node] = listed.record
                self.rechallenge_at.setdefault(node, self._first_rechallenge(self.clock()))
            else:
                self._unvalidated(node)
                self.candidates[node] = listed.record
                self._wake.set()
        elif event.type == "flags_changed" and "validated" in event.data:
            if event.data["validated"]:
                self._drop(node)
            else:  # a node lost its validation; the event has no record, the listing has
                self._unvalidated(node)
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

    def _unvalidated(self, node: str) -> None:
        self.validated.pop(node, None)
        self.rechallenge_at.pop(node, None)

    def _first_rechallenge(self, now: float) -> float:
        return first_rechallenge(now, self.rechallenge_interval_s, self.rechallenge_jitter_s, self.rng)

    # --- challenging --------------------------------------------------------------------------------

    def _due(self, now: float) -> list[str]:
        fresh = [
            node for node in self.candidates if node not in self.in_flight and self.not_before.get(node, 0.0) <= now
        ]
        again = [
            node
            for node in self.validated
            if node not in self.candidates and node not in self.in_flight and self.rechallenge_at.get(node, 0.0) <= now
        ]
        return fresh + again

    async def dispatch(self) -> None:
        while True:
            self._wake.clear()
            now = self.clock()
            due = self._due(now)
            start = due[: max(0, self.concurrency - len(self.in_flight))]
            for node in start:
                recheck = node not in self.candidates
                record = self.validated[node] if recheck else self.candidates[node]
                task = asyncio.create_task(self.process(node, record, recheck=recheck), name=f"challenge-{node}")
                self.in_flight[node] = task
            self.queued = len(due) - len(start)
            QUEUE.set(self.queued)
            IN_FLIGHT.set(len(self.in_flight))
            self.stats.last_run_at = now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._idle_s(now))

    def _idle_s(self, now: float) -> float:
        """How long the dispatcher may sleep: until the soonest candidate's retry is due (a short `unreachable`
        backoff is kept to the fraction of a second it says), at most `tick_s`; events wake it sooner."""
        waits = [
            at - now for node, at in self.not_before.items() if node in self.candidates and node not in self.in_flight
        ]
        return max(0.01, min([self.tick_s, *(wait for wait in waits if wait > 0)]))

    async def process(self, node: str, record: NodeRecord, *, recheck: bool = False) -> None:
        """One attempt at one node (`recheck`: a re-challenge of a validated one); never raises (a failure here
        must not stop the loop)."""
        try:
            await self._attempt(node, record, recheck=recheck)
        except Exception:  # e.g. the chain RPC is down: try this node again later
            log.exception("challenge attempt failed", node=node)
            self.stats.count("errors")
            if recheck:
                self.rechallenge_at[node] = self.clock() + self.policy.base_s
            else:
                self.not_before[node] = self.clock() + self.policy.base_s
        finally:
            self.in_flight.pop(node, None)
            IN_FLIGHT.set(len(self.in_flight))
            self._wake.set()

    async def _attempt(self, node: str, record: NodeRecord, *, recheck: bool = False) -> None:
        state = await self.store.state(node)
        now = self.clock()
        if state.given_up and not recheck:
            self._drop(node)
            return
        if state.next_at > now and not recheck:  # a wait set before a restart
            self.not_before[node] = state.next_at
            return
        info = await self.network.node(node)
        if info is None:  # left the registry
            self._drop(node)
            self._unvalidated(node)
            return
        if recheck and not info.is_validated:  # invalidated meanwhile: a candidate (the feed will say so too)
            self._unvalidated(node)
            self.candidates[node] = record
            return
        if info.is_validated and not recheck:
            listed = await self.discovery.node(node)  # asked again: the feed may lag a binding just made
            if listed is None or listed.specs_validated:  # bound to these specs: discovery's chain flag lags
                self._drop(node)
                return
            # Validated on chain for other specs than the record's: withdraw it, then challenge what is claimed now.
            log.warning("specs changed after validation", node=node, bound=listed.specs_hash)
            record = listed.record
            await self._invalidate(node, info.provider)
        if info.compute_units > max_compute_units(record.specs):
            result = ChallengeResult(
                node=node,
                url=f"{record.ip}:{record.port}",
                claimed_gpu=claimed_gpu(record.specs),
                outcome=Outcome.REJECTED,
                reason=UNITS_ABOVE_SPECS,
                detail=f"{info.compute_units} compute units on chain; its specs justify at most "
                f"{max_compute_units(record.specs)}",
                at=now,
            )
            await self._conclude(node, info.provider, state, result, record=record, recheck=recheck)
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
            await self._conclude(node, info.provider, state, result, record=record, recheck=recheck)
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
        await self._conclude(node, info.provider, state, result, record=record, recheck=recheck)

    async def _conclude(
        self,
        node: str,
        provider: str,
        state: NodeState,
        result: ChallengeResult,
        *,
        record: NodeRecord,
        recheck: bool = False,
    ) -> None:
        CHALLENGES.labels(result.outcome.value, result.reason).inc()
        self.stats.count(result.outcome.value)
        log.info("challenge done", node=node, outcome=result.outcome.value, reason=result.reason, detail=result.detail)
        if result.outcome is not Outcome.ACCEPTED:
            await self.store.record_rejection(result)
        now = self.clock()
        decision = decide(state, result.outcome, result.reason, now, self.policy)
        final = decision.state
        if recheck:
            await self._conclude_recheck(node, provider, record, decision.step, final)
        elif decision.step is Step.VALIDATE:
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
                await self._bind(node, record)
        elif decision.step is Step.GIVE_UP:
            log.warning("giving up on node", node=node, rejections=final.rejections, action=decision.action)
            if decision.action is FailureAction.INVALIDATE:
                await self._invalidate(node, provider)
            self._drop(node)
        else:
            self.not_before[node] = final.next_at
        await self.store.save(node, final)

    async def _conclude_recheck(
        self, node: str, provider: str, record: NodeRecord, step: Step, state: NodeState
    ) -> None:
        if step is Step.VALIDATE:  # passed again: renew the binding, challenge again later
            self.stats.count("rechallenges_passed")
            await self._bind(node, record)
            return
        if state.failures:  # could not run: nothing is known, retry with the usual backoff
            self.rechallenge_at[node] = state.next_at
            return
        # Rejected: the validation is withdrawn now; the node is a candidate like a new one.
        log.warning("re-challenge rejected", node=node, reason=state.last_reason)
        await self._invalidate(node, provider)
        self._unvalidated(node)
        if not state.given_up:
            self.candidates[node] = record
            self.not_before[node] = state.next_at

    async def _bind(self, node: str, record: NodeRecord) -> None:
        """Bind the validation to the challenged specs; a refusal (the node uploaded other specs meanwhile, or
        discovery is down) leaves it served unvalidated, so it comes back to be challenged."""
        self.rechallenge_at[node] = next_rechallenge(
            self.clock(), self.rechallenge_interval_s, self.rechallenge_jitter_s, self.rng
        )
        try:
            await self.discovery.bind_specs(node, record.specs)
        except DiscoveryError as exc:
            BINDINGS.labels("failed").inc()
            log.warning("binding the specs failed", node=node, specs_hash=specs_hash(record.specs), error=str(exc))
        else:
            BINDINGS.labels("sent").inc()
            self.stats.count("bindings")

    async def _invalidate(self, node: str, provider: str) -> None:
        try:
            await self.network.invalidate_node(self.transactor, provider, node)
        except ChainError as exc:
            INVALIDATIONS.labels("failed").inc()
            log.warning("invalidateNode failed", node=node, error=str(exc))
        else:
            INVALIDATIONS.labels("sent").inc()
            self.stats.count("invalidations")
