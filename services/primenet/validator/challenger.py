"""The challenger: `ChallengeClient` runs one proof-of-compute challenge against one miner and judges the answer.

Also here: `Target` (the miner to challenge, from its discovery record) and `ChallengeResult` with its `Outcome`.

Two signed rounds (`POST /challenge/commit`, then `POST /challenge/open`), timed on the validator's clock: the
commitment's arrival time is taken the moment its response is read, and the reveal (which discloses r and the
rows to open) is sent only after that. The answer is judged by `primenet.validator.verifier.verify`.

The miner is not trusted to answer politely: its address must pass the validator's address policy before anything
is sent (`ChallengeClient.target_of`), each round has one deadline for the whole call, reply included (a miner
trickling bytes is `late_answer` at the deadline, not whenever it stops), and each reply is read up to a cap sized
for its message (a larger one is `malformed`, cut off without being held).

Three outcomes, kept apart because they lead to different actions:
  accepted   the verdict is ok
  rejected   the verdict names a cheating or failing node (its `Reason`); a timeout is `late_answer`, and a body
             that is not the expected message is `malformed`: both are the miner's doing
  failed     the challenge could not run: `unreachable` (no connection), `refused` (the miner answered with an
             HTTP error, e.g. our signature was not accepted or it was busy), `address_refused` (its record names
             an address the policy forbids: nothing was sent); the loop adds its own (`RunFailure`). Nothing is
             known about the node; it is retried without counting a rejection.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import structlog
from eth_account.signers.local import LocalAccount
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from primenet.core.auth import RequestSigner
from primenet.core.challenge.derive import derive_matrices
from primenet.core.challenge.wire import Commitment, Matrix, MatrixDtype, Opening, opening_size_bytes
from primenet.core.errors import PrimenetError
from primenet.core.models import ComputeSpecs, NodeRecord
from primenet.core.nodeaddr import AddressPolicy, node_url
from primenet.core.peerhttp import (
    DeadlineExceededError,
    PeerReply,
    ReplyEncodingError,
    ReplyTooLargeError,
    bounded_call,
)
from primenet.validator.settings import ValidatorSettings
from primenet.validator.verifier import (
    DEFAULT_TABLE,
    ChallengeLedger,
    IssuedChallenge,
    Reason,
    ThroughputTable,
    Verdict,
    load_throughput_table,
    new_challenge,
    reveal,
    verify,
)

log = structlog.get_logger(__name__)

COMMIT_PATH = "/challenge/commit"
OPEN_PATH = "/challenge/open"
CPU_MODEL = "cpu"
_MARGIN_S = 1.0  # read timeouts run this much past a deadline, so a late answer is judged rather than guessed
COMMITMENT_MAX_BYTES = 64 << 10  # a Commitment is a few hundred bytes (its longest field, `backend`, is 256 chars)

ModelT = TypeVar("ModelT", bound=BaseModel)


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FAILED = "failed"


class RunFailure(enum.StrEnum):
    """Why a challenge could not run (not a judgement of the node)."""

    UNREACHABLE = "unreachable"  # no connection, or it broke
    REFUSED = "refused"  # the miner answered with an HTTP error
    ADDRESS_REFUSED = "address_refused"  # its record's IP is one the address policy forbids; nothing was sent
    STAKE_BELOW_MINIMUM = "stake_below_minimum"  # the loop does not challenge nodes validateNode would refuse
    CHAIN_ERROR = "chain_error"  # reading the chain or sending validateNode failed


class ChallengeResult(BaseModel):
    # A figure may be infinite (a ratio over a zero tolerance, a NaN the miner sent): stored as "Infinity"/"NaN"
    # strings, which read back, where the default (null) would make the stored result unreadable.
    model_config = ConfigDict(ser_json_inf_nan="strings")

    node: str
    url: str
    claimed_gpu: str
    outcome: Outcome
    reason: str = Field(description="a verdict `Reason` (accepted/rejected) or a `RunFailure` (failed)")
    detail: str
    figures: dict[str, float] = Field(default_factory=dict)
    backend: str | None = Field(None, description="what the miner says computed C")
    at: float = Field(description="when the challenge was issued, unix seconds")

    @property
    def exit_code(self) -> int:
        return {Outcome.ACCEPTED: 0, Outcome.REJECTED: 1, Outcome.FAILED: 2}[self.outcome]


@dataclass(frozen=True)
class Target:
    """A miner to challenge: where its API is, which node it is, what GPU it claims."""

    node: str
    url: str
    claimed_gpu: str

    @classmethod
    def of(cls, record: NodeRecord, addresses: AddressPolicy, scheme: str = "http") -> Target:
        """The target `record` names; `AddressRefusedError` when `addresses` forbids its IP."""
        addresses.check(record.ip)
        # A base URL: the rounds' paths are joined to it.
        url = node_url(record.ip, record.port, scheme=scheme).rstrip("/")
        return cls(node=record.node, url=url, claimed_gpu=claimed_gpu(record.specs))


def claimed_gpu(specs: ComputeSpecs) -> str:
    """The model the node is timed against: its first GPU's name as NVML reports it, "cpu" without a GPU.

    The name is matched against the throughput table by words (`ThroughputTable.lookup`): "NVIDIA H100 80GB HBM3"
    hits the "h100 hbm3" entry; "cpu" hits the "cpu" entry. The miner multiplies on its first visible device, so
    a node with several GPUs is timed as one of them.
    """
    return specs.gpus[0].model if specs.gpus else CPU_MODEL


class _Stop(PrimenetError):  # noqa: N818 - control flow inside `ChallengeClient.run`, never escapes it
    def __init__(self, outcome: Outcome, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome, self.reason, self.detail = outcome, reason, detail


class ChallengeClient:
    """Challenges miners on behalf of one validator key. One instance serves many concurrent challenges."""

    @classmethod
    def from_settings(
        cls, account: LocalAccount, settings: ValidatorSettings, *, chain_id: int, ledger: ChallengeLedger | None = None
    ) -> ChallengeClient:
        """The client the validator's settings describe (challenge size, deadlines, audience, throughput table)."""
        table = load_throughput_table(settings.throughput_file) if settings.throughput_file else DEFAULT_TABLE
        return cls(
            account,
            chain_id=chain_id,
            n=settings.challenge_n,
            gpu_n=settings.gpu_challenge_n,
            dtype=settings.challenge_dtype,
            deadline_s=settings.challenge_deadline_s,
            reveal_deadline_s=settings.reveal_deadline_s,
            connect_timeout_s=settings.connect_timeout_s,
            audience=settings.miner_audience,
            table=table,
            ledger=ledger,
            addresses=settings.node_addresses(),
            scheme=settings.node_scheme,
        )

    def __init__(
        self,
        account: LocalAccount,
        *,
        chain_id: int,
        n: int,
        gpu_n: int | None = None,
        dtype: MatrixDtype = MatrixDtype.FLOAT32,
        deadline_s: float = 60.0,
        reveal_deadline_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        audience: str | None = None,
        table: ThroughputTable = DEFAULT_TABLE,
        ledger: ChallengeLedger | None = None,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
        addresses: AddressPolicy | None = None,
        scheme: str = "http",
    ) -> None:
        """`audience`: what signed requests are addressed to; None: each miner's node address. `addresses`: which
        node IPs `target_of` accepts (default: global ones only). `scheme`: http, or https where miners serve TLS.
        `gpu_n`: the size for targets that claim a GPU (None: `n`)."""
        self.account = account
        self.chain_id = chain_id
        self.n, self.dtype = n, dtype
        self.gpu_n = gpu_n
        self.deadline_s, self.reveal_deadline_s = deadline_s, reveal_deadline_s
        self.connect_timeout_s = connect_timeout_s
        self.audience = audience
        self.table = table
        self.ledger = ledger
        self.clock = clock
        self.transport = transport
        self.addresses = addresses or AddressPolicy()
        self.scheme = scheme

    def target_of(self, record: NodeRecord) -> Target:
        """The target a discovery record names, if this client's address policy allows its IP (else
        `AddressRefusedError`, before any connection)."""
        return Target.of(record, self.addresses, self.scheme)

    def size_for(self, claimed: str) -> int:
        """The matrix size a target claiming this model gets: `gpu_n` for a GPU claim, when set."""
        return self.gpu_n if self.gpu_n is not None and claimed != CPU_MODEL else self.n

    def issue(self, n: int | None = None) -> IssuedChallenge:
        return new_challenge(
            self.n if n is None else n,
            self.dtype,
            self.deadline_s,
            now=self.clock(),
            reveal_deadline_s=self.reveal_deadline_s,
        )

    async def run(self, target: Target) -> ChallengeResult:
        issued = self.issue(self.size_for(target.claimed_gpu))
        challenge = issued.challenge
        figures: dict[str, float] = {"n": challenge.n}
        backend: str | None = None
        signer = RequestSigner(self.account, audience=self.audience or target.node.lower(), chain_id=self.chain_id)
        timeout = httpx.Timeout(self.deadline_s + _MARGIN_S, connect=self.connect_timeout_s)
        # A and B are derived here while the miner computes, so verify does not wait for them.
        matrices = asyncio.create_task(asyncio.to_thread(derive_matrices, challenge.seed, challenge.n, challenge.dtype))
        try:
            async with httpx.AsyncClient(
                base_url=target.url, auth=signer, timeout=timeout, transport=self.transport
            ) as http:
                commitment = await self._post(
                    http,
                    COMMIT_PATH,
                    challenge.model_dump(mode="json"),
                    Commitment,
                    deadline_s=self.deadline_s + _MARGIN_S,
                    max_bytes=COMMITMENT_MAX_BYTES,
                )
                committed_at = self.clock()
                backend = commitment.backend
                # Round 2's deadline counts from the commitment's arrival, so its timeout does too.
                round2 = httpx.Timeout(self.reveal_deadline_s + _MARGIN_S, connect=self.connect_timeout_s)
                opened = reveal(issued)
                bound = opening_size_bytes(challenge.n, challenge.dtype, len(opened.rows))
                opening = await self._post(
                    http,
                    OPEN_PATH,
                    opened.model_dump(mode="json"),
                    Opening,
                    deadline_s=self.reveal_deadline_s + _MARGIN_S,
                    max_bytes=bound + bound // 4 + (64 << 10),  # room for another JSON encoder's spacing
                    limits=round2,
                )
                opened_at = self.clock()
            verdict = await asyncio.to_thread(
                self._judge, issued, commitment, opening, target, committed_at, opened_at, await matrices
            )
        except _Stop as stop:
            figures["elapsed_s"] = self.clock() - challenge.issued_at
            return self._result(target, challenge.issued_at, stop.outcome, stop.reason, stop.detail, figures, backend)
        finally:
            if not matrices.done():
                matrices.cancel()
        outcome = Outcome.ACCEPTED if verdict.ok else Outcome.REJECTED
        return self._result(
            target, challenge.issued_at, outcome, verdict.reason.value, verdict.detail, verdict.figures, backend
        )

    def _judge(
        self,
        issued: IssuedChallenge,
        commitment: Commitment,
        opening: Opening,
        target: Target,
        committed_at: float,
        opened_at: float,
        matrices: tuple[Matrix, Matrix],
    ) -> Verdict:
        return verify(
            issued,
            commitment,
            opening,
            target.claimed_gpu,
            committed_at=committed_at,
            now=opened_at,
            ledger=self.ledger,
            table=self.table,
            matrices=matrices,
        )

    async def _post(
        self,
        http: httpx.AsyncClient,
        path: str,
        body: object,
        model: type[ModelT],
        *,
        deadline_s: float,
        max_bytes: int,
        limits: httpx.Timeout | None = None,
    ) -> ModelT:
        """One round: the whole call (reply read to its end) within `deadline_s`, the reply at most `max_bytes`."""
        timeout: dict[str, Any] = {} if limits is None else {"timeout": limits}
        try:
            response = await bounded_call(
                http, "POST", path, deadline_s=deadline_s, max_bytes=max_bytes, json=body, **timeout
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _Stop(Outcome.FAILED, RunFailure.UNREACHABLE, f"{path}: cannot connect: {_describe(exc)}") from None
        except (httpx.TimeoutException, DeadlineExceededError):
            raise _Stop(Outcome.REJECTED, Reason.LATE_ANSWER, f"{path}: no answer before the deadline") from None
        except (ReplyTooLargeError, ReplyEncodingError) as exc:
            raise _Stop(Outcome.REJECTED, Reason.MALFORMED, f"{path}: {exc}") from None
        except httpx.HTTPError as exc:
            raise _Stop(Outcome.FAILED, RunFailure.UNREACHABLE, f"{path}: {_describe(exc)}") from None
        if response.status_code >= 400:
            raise _Stop(Outcome.FAILED, RunFailure.REFUSED, f"{path}: HTTP {response.status_code}: {_error(response)}")
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            raise _Stop(
                Outcome.REJECTED, Reason.MALFORMED, f"{path}: not a {model.__name__}: {where}: {first['msg']}"
            ) from None

    @staticmethod
    def _result(
        target: Target,
        at: float,
        outcome: Outcome,
        reason: str,
        detail: str,
        figures: dict[str, float],
        backend: str | None,
    ) -> ChallengeResult:
        return ChallengeResult(
            node=target.node.lower(),
            url=target.url,
            claimed_gpu=target.claimed_gpu,
            outcome=outcome,
            reason=str(reason),
            detail=detail,
            figures=figures,
            backend=backend,
            at=at,
        )


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _error(response: PeerReply) -> str:
    """The miner's `{"error": {"code", "message"}}`, else the start of the body."""
    try:
        error = response.json()["error"]
        return f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or "(empty body)"
