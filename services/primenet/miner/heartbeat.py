"""Heartbeats to the pool's orchestrator; each reply's assignment is applied to Docker through the runner.

Signed by the node key for the orchestrator of the pool the node joined (`audience_of(pool_id)`, i.e.
`core.auth.orchestrator_audience`, so that no other pool's orchestrator accepts the beat) and sent every
`interval_s` while the node has an orchestrator endpoint (set by an accepted invite, restored from the state file
after a restart). A failure of any kind is
logged and retried with exponential backoff up to `max_backoff_s`: the loop never ends on its own.

A reply is acted on only once `core.replies.ReplyVerifier` has proven it: signed by the pool's orchestrator key (the
compute manager on chain, see `miner.app`), over these exact body bytes, for this node and this beat's nonce, this
pool's audience and chain. A refused reply changes nothing (the current task and its container stay as they are);
it is counted (`replies_refused`, shown by /health, and the `primenet_miner_heartbeats{outcome="refused"}` metric)
and the beat is retried like any failed one.

A proven reply with `hold: true` (the orchestrator's store-lost hold, `orchestrator.guard`) changes nothing either:
the current assignment and its container stay as they are, whatever the reply's `assignment` says, until a reply
without `hold` arrives. The hold is logged once when it begins and once when it ends, and shown by /health.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import httpx
import structlog
from eth_account.signers.local import LocalAccount
from prometheus_client import Counter

from primenet import __version__
from primenet.core.auth import AUTH_HEADER, new_nonce, sign_request
from primenet.core.models import Heartbeat, HeartbeatReply, TaskSpec
from primenet.core.replies import REPLY_AUTH_HEADER, ExpectedReply, ReplyRefusedError, ReplyVerifier
from primenet.miner.runner import DockerRunner
from primenet.miner.state import MinerMemory

log = structlog.get_logger(__name__)
HEARTBEATS = Counter("primenet_miner_heartbeats", "Heartbeats sent, by outcome", ["outcome"])


class HeartbeatLoop:
    def __init__(
        self,
        *,
        node: LocalAccount,
        chain_id: int,
        audience_of: Callable[[int], str],
        runner: DockerRunner,
        memory: MinerMemory,
        interval_s: float = 10.0,
        timeout_s: float = 20.0,
        replies: ReplyVerifier,
        max_backoff_s: float = 20.0,
    ) -> None:
        """`replies` proves each reply before it is acted on (and so decides whose work orders are obeyed)."""
        self.node = node
        self.replies = replies
        self.replies_refused = 0
        self.runner = runner
        self.memory = memory
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.max_backoff_s = max_backoff_s
        self.chain_id = chain_id
        self.audience_of = audience_of
        self.last_reply_at: float | None = None
        self.held = False  # the last proven reply said `hold`: nothing is applied until one does not
        self.unsaved: str | None = None  # why the last state change is not on disk (None: it is)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Beat now (a new endpoint, or a stop): called after an invite or when membership ends."""
        self._wake.set()

    async def resume(self) -> None:
        """After a restart: re-attach to the saved assignment's container (found by name, not restarted), so the
        first heartbeat already reports it."""
        saved = self.memory.state.assignment
        if saved is not None:
            status = await self.runner.reconcile(saved)
            log.info("re-attached to the saved assignment", task_id=saved.task_id, state=status.state)

    async def run(self) -> None:
        failures = 0
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            while True:
                url = self.memory.state.orchestrator_url
                delay = self.interval_s
                if url is not None:
                    try:
                        await self.beat(client, url)
                        failures = 0
                    except asyncio.CancelledError:
                        raise
                    except ReplyRefusedError as exc:  # counted in beat(); nothing was applied
                        failures += 1
                        delay = min(self.interval_s * 2**failures, self.max_backoff_s)
                        log.warning("heartbeat reply refused", url=url, code=exc.code, error=str(exc), retry_in_s=delay)
                    except Exception as exc:  # never end the loop: report, back off, try again
                        failures += 1
                        delay = min(self.interval_s * 2**failures, self.max_backoff_s)
                        HEARTBEATS.labels("failed").inc()
                        log.warning("heartbeat failed", url=url, error=str(exc), retry_in_s=delay)
                # Without an endpoint, sleep until an invite wakes the loop.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay if url is not None else None)
                self._wake.clear()

    def audience(self) -> str:
        """The audience of the orchestrator of the pool in the state (set together with its endpoint)."""
        pool_id = self.memory.state.pool_id
        if pool_id is None:
            raise RuntimeError("an orchestrator endpoint but no pool in the miner state: no audience to sign for")
        return self.audience_of(pool_id)

    async def beat(self, client: httpx.AsyncClient, url: str) -> HeartbeatReply:
        if self.unsaved is not None:
            self.save()  # the disk may have room again: what is only in memory is written as soon as it can be
        status = await self.runner.status()
        message = "; ".join(m for m in (status.message, self.unsaved and f"state not saved: {self.unsaved}") if m)
        body = Heartbeat(
            address=self.node.address,
            task_id=status.task_id,
            task_state=status.state,
            task_details=status.details,
            task_message=message[:4096] or None,
            version=__version__,
            timestamp=time.time(),
        )
        content = body.model_dump_json().encode()
        audience, nonce = self.audience(), new_nonce()  # the nonce is kept: the reply must answer this request
        auth = sign_request(
            self.node,
            method="POST",
            path=httpx.URL(f"{url}/heartbeat").raw_path.decode("ascii"),
            body=content,
            audience=audience,
            chain_id=self.chain_id,
            nonce=nonce,
        )
        response = await client.post(f"{url}/heartbeat", content=content, headers={**_JSON, AUTH_HEADER: auth})
        if response.status_code >= 400:
            raise RuntimeError(f"orchestrator answered {response.status_code}: {response.text[:300]}")
        expected = ExpectedReply(node=self.node.address, request_nonce=nonce, audience=audience, chain_id=self.chain_id)
        try:
            await self.replies.verify(response.headers.get(REPLY_AUTH_HEADER), response.content, expected)
        except ReplyRefusedError:
            self.replies_refused += 1
            HEARTBEATS.labels("refused").inc()
            raise
        reply = HeartbeatReply.model_validate_json(response.content)
        self.last_reply_at = time.time()
        if reply.hold:
            HEARTBEATS.labels("held").inc()
            if not self.held:
                log.warning(
                    "the orchestrator holds (its store was found empty): keeping the current task as it is",
                    task_id=self.memory.state.assignment.task_id if self.memory.state.assignment else None,
                )
            self.held = True
            return reply
        if self.held:
            log.info("the orchestrator's hold ended: its assignments apply again")
            self.held = False
        HEARTBEATS.labels("ok").inc()
        await self.apply(reply.assignment)
        return reply

    async def apply(self, assignment: TaskSpec | None) -> None:
        """Remember the assignment, then make Docker match it. A state file that cannot be written (a full disk)
        does not stop the work: the assignment is kept in memory, applied, reported with the error on every beat
        (`state not saved: ...`) and written as soon as the disk takes it."""
        if assignment != self.memory.state.assignment:
            log.info("assignment changed", task_id=assignment.task_id if assignment else None)
            self.memory.state = self.memory.state.model_copy(update={"assignment": assignment})
            self.save()
        await self.runner.reconcile(assignment)

    def save(self) -> None:
        """Write the in-memory state to its file; on an OS error (ENOSPC, EIO, ...) keep it and say why."""
        try:
            self.memory.file.save(self.memory.state)
        except OSError as exc:
            if self.unsaved is None:
                log.error("miner state not saved; kept in memory, retried every beat", error=str(exc))
            self.unsaved = f"{exc.strerror or exc} ({exc.filename or self.memory.file.path})"
            return
        if self.unsaved is not None:
            log.info("miner state saved again")
        self.unsaved = None


_JSON = {"content-type": "application/json"}
