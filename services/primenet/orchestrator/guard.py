"""The store-lost guard: an orchestrator that finds its store empty where it had state withdraws nothing.

A lost store (Redis flushed, a new empty volume, the orchestrator moved without its data) holds no tasks and no
assignments, so an orchestrator that trusted it would answer every node that beats again with "no assignment", and
every miner would remove its running task container. Instead the store carries a marker (`{prefix}:store_marker`:
pool id, time, how it was written), written when the store is first initialised; while it is absent the
orchestrator holds:

- every heartbeat is answered `hold: true` with no assignment (`core.models.HeartbeatReply`; signed like any
  reply): the miner keeps what it runs, untouched;
- the scheduler places and withdraws nothing, the inviter invites nobody (a re-learned node may be in the pool
  already), and no Dead node is ejected (its record is only as old as the hold);
- `/health` shows `store: hold` (status `degraded`), `primenet_orchestrator_store_hold` is 1, and an error line
  says what the operator must do. Heartbeats, the monitor and the chain watch go on, so the nodes are re-learned
  (Healthy as they beat) and tasks may be created: they are placed once the hold ends.

The hold ends when an operator confirms (`POST /store/confirm`, `primenet orchestrator confirm-store`), which writes
the marker: from then on the orchestrator behaves as usual, and a node with no assignment in this store gets none.

`judge` decides, when the marker is absent, whether the store may simply be marked: a new deployment (no node in
the pool on chain) or, at start only, a store that holds records written before the marker existed. It is checked
at start and every `GUARD_INTERVAL_S` after, so a store wiped under a running orchestrator holds too (its beats
already do: the heartbeat reads the marker in the same Redis step, `store.OrchestratorStore.beat`).
"""

from __future__ import annotations

import asyncio
import enum

import structlog
from prometheus_client import Gauge

from primenet.orchestrator.models import StoreMarker, StoreState
from primenet.orchestrator.orchestrator import Orchestrator

log = structlog.get_logger(__name__)

GUARD_INTERVAL_S = 2.0  # one EXISTS per pass while the marker is there; a chain read only while it is not
HOLD = Gauge("primenet_orchestrator_store_hold", "1 while the store-lost hold withdraws nothing (operator to confirm)")


class Verdict(enum.StrEnum):
    TRUSTED = "trusted"  # the marker is there: run as usual
    FRESH = "fresh"  # no marker, no node in the pool on chain: a new deployment; write the marker
    ADOPTED = "adopted"  # no marker, at start, but the store holds records (kept from before markers): write it
    HOLD = "hold"  # no marker where the pool had state: withdraw nothing until an operator confirms


def judge(*, marker: bool, held: bool, starting: bool, stored_records: bool, pool_nodes: int | None) -> Verdict:
    """What an orchestrator does with its store.

    `marker`: the store marker is present. `held`: a hold was recorded and not yet confirmed (so records learned
    during it never make the store look adopted after a restart). `starting`: the first check of this process.
    `stored_records`: the store knows nodes or tasks. `pool_nodes`: the pool's node count on chain, None when the
    chain could not be read (then nothing proves the pool empty: hold, and ask again next pass).
    """
    if marker:
        return Verdict.TRUSTED
    if held:
        return Verdict.HOLD
    if starting and stored_records:
        return Verdict.ADOPTED
    if pool_nodes == 0:
        return Verdict.FRESH
    return Verdict.HOLD


class StoreGuard:
    """Keeps the store marker: `check` (at start, then every `GUARD_INTERVAL_S` from `run`) and `confirm`."""

    def __init__(self, orchestrator: Orchestrator, *, interval_s: float = GUARD_INTERVAL_S) -> None:
        self.orchestrator = orchestrator
        self.interval_s = interval_s
        self.pool_nodes: int | None = None
        self._announced = False  # the hold's error line was logged (once per hold)
        self._started = False  # a check read the store: later ones are not the start
        HOLD.set(1)  # until the first check proves otherwise

    async def first_check(self, timeout_s: float = 10.0) -> None:
        """The start check, before the app serves (so a trusted or fresh store answers its first beat as usual);
        one that fails or takes too long (Redis or the chain down) leaves the hold on and `run` tries again."""
        try:
            await asyncio.wait_for(self.check(), timeout_s)
        except Exception as exc:  # reported; the loop retries
            log.warning("store guard: start check failed; holding until it succeeds", error=str(exc)[:300])

    async def run(self) -> None:
        """A check every `interval_s` (a failed one, Redis down, is retried and reported in /health)."""
        await self.orchestrator.every("store_guard", self.interval_s, self.check)

    async def check(self) -> Verdict:
        """Judge the store now; write the marker when it may be (fresh, adopted), record and report a hold.

        Only the first check that read the store counts as the start: records learned after it (during a hold
        whose chain read failed, say) never make the store look adopted."""
        orchestrator = self.orchestrator
        store, settings = orchestrator.store, orchestrator.settings
        if await store.marker() is not None:
            self._started = True
            self._trusted()
            return Verdict.TRUSTED
        held = await store.hold_since() is not None
        stored = await store.holds_records()
        starting, self._started = not self._started, True
        if not held and not (starting and stored):  # only then does the chain's word matter
            try:
                self.pool_nodes = len(await orchestrator.network.pool_nodes(settings.pool_id))
            except Exception as exc:  # the chain cannot say the pool is empty: hold, and ask again next pass
                self.pool_nodes = None
                log.warning("store guard: pool membership unreadable; holding", error=str(exc)[:300])
        verdict = judge(marker=False, held=held, starting=starting, stored_records=stored, pool_nodes=self.pool_nodes)
        if not settings.store_guard and verdict is Verdict.HOLD:
            verdict = Verdict.ADOPTED  # the operator turned the guard off: every store is taken as it is
        if verdict is not Verdict.HOLD:
            await store.write_marker(pool_id=settings.pool_id, now=orchestrator.clock(), how=verdict.value)
            self._trusted()
            log.info("store marked as this pool's record", pool_id=settings.pool_id, how=verdict.value)
            orchestrator.changed.set()
            return verdict
        orchestrator.hold = True
        HOLD.set(1)
        if not held and self.pool_nodes is None:
            return verdict  # not recorded: an unreadable chain proves nothing, the next pass asks again
        since = await store.start_hold(orchestrator.clock())
        if not self._announced:
            self._announced = True
            log.error(
                "the orchestrator's store is empty but its pool had state: holding every node's task (no assignment"
                " is withdrawn, nothing is placed, invited or ejected) until an operator confirms with `primenet"
                " orchestrator confirm-store` (POST /store/confirm); then nodes without an assignment in this store"
                " lose their task",
                pool_id=settings.pool_id,
                pool_nodes_on_chain=self.pool_nodes,
                hold_since=since,
            )
        return verdict

    def _trusted(self) -> None:
        self.orchestrator.hold = False
        self._announced = False
        HOLD.set(0)

    async def confirm(self) -> bool:
        """The operator's word: this store is the pool's record now. Writes the marker; True when a hold ended."""
        orchestrator = self.orchestrator
        store = orchestrator.store
        was_holding = await store.marker() is None
        if was_holding:
            await store.write_marker(pool_id=orchestrator.settings.pool_id, now=orchestrator.clock(), how="confirmed")
            log.warning(
                "store-lost hold confirmed by the operator: nodes without an assignment in this store lose their task",
                pool_id=orchestrator.settings.pool_id,
            )
        self._trusted()
        orchestrator.changed.set()  # the scheduler places what was created during the hold at once
        return was_holding

    async def state(self) -> StoreState:
        """What `GET /store` shows: the marker, or since when the hold lasts and the pool's node count it saw."""
        store = self.orchestrator.store
        marker = await store.marker()
        if marker is not None:
            try:
                parsed = StoreMarker(
                    pool_id=int(marker["pool_id"]), created_at=float(marker["created_at"]), how=marker["how"]
                )
            except (KeyError, ValueError):  # written by hand: it is there, which is all the guard asks
                parsed = StoreMarker(pool_id=self.orchestrator.settings.pool_id, created_at=0.0, how="unreadable")
            return StoreState(hold=False, marker=parsed)
        return StoreState(hold=True, hold_since=await store.hold_since(), pool_nodes_on_chain=self.pool_nodes)
