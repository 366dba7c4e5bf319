"""The verifier: the validator's side of the proof-of-compute challenge (pure checks; the challenger does the HTTP).

Here: `new_challenge`, `reveal` and `verify` (the `Verdict` and its `Reason`), the replay ledger protocol
(`ChallengeLedger`, `MemoryLedger`) and the GPU throughput table (`ThroughputTable`, `DEFAULT_TABLE`). The protocol,
derivation and commitment are defined in `primenet.core.challenge`; below: what the validator checks, how tight,
and what a pass is worth.

Checks, in order (cheap ones first; the first failure is the verdict's reason):
  replayed_answer      the answer names another challenge id, or this challenge id was already answered
                       (`ChallengeLedger`: one verdict per challenge, whatever the outcome)
  malformed            n or dtype differs from the challenge, the opened rows are not exactly the revealed ones in
                       order, a vector has the wrong length or type
  wrong_seed           the commitment echoes another seed (a product for another seed that echoes this one fails
                       as wrong_product: its rows do not match A.B)
  late_answer          the commitment reached the validator after the challenge's deadline, or the opening more
                       than the reveal's deadline after the commitment (validator clock, both)
  unknown_gpu          the claimed model is not in the throughput table (add it: `load_throughput_table`)
  too_slow             round 1 (issue -> commitment received) took longer than the claimed model allows:
                       device_seconds + min(host_ns_per_element * n^2, host_cap_s) + slack_s, where
                       device_seconds = 2 n^3 / (TFLOPS(dtype) * 1e12 * efficiency) (`ThroughputTable`)
  commitment_mismatch  an opened row does not verify against the Merkle root
  cr_mismatch          y_i differs from opened_row_i . r (float64 rounding bound) for an opened row i
  wrong_product        Freivalds: y != A.(B.r) beyond tolerance on some row; or an opened row's projection
                       row_i . r != (A.(B.r))_i; or one of the first m opened rows (in draw order; the miner
                       cannot tell which) differs from row_i(A).B, recomputed exactly, in some element

Tolerance (float64 on the validator; a_i = row i of A, b_j = column j of B, alpha_i = |a_i|_2,
beta_j = |b_j|_2, s_ij = alpha_i beta_j >= |C_ij| by Cauchy-Schwarz, u = unit roundoff, g_n = n u64 / (1 - n u64)):
  element      |C_ij - ref_ij| <= (16 u_acc + 4 g_n) s_ij + 2 u_out |ref_ij|
  projection   |y_i - z_i|     <= alpha_i (16 u_acc |beta o r|_2 + 4 g_n |beta o r|_1) + 8 u_out rho_i
  consistency  |y_i - C_i . r| <= 4 g_n sum_j |C_ij r_j|
  with u_acc the accumulation's roundoff (float32, or float64 for float64), u_out the output rounding of float16
  and bfloat16 (0 for float32/float64, whose last rounding is part of the accumulation), rho_i = |C_i o r|_2 for
  opened rows; for the others, which the validator never sees, min(1, 4 / sqrt(n)) alpha_i |beta o r|_2 (the
  Cauchy-Schwarz bound, or 4x the expected size for iid B, whichever is smaller).
  Why not the textbook worst case g_n(u32) |A||B| for float32: at n = 4096, elementwise it is ~0.33 (s_ij ~ n/3),
  40x the error TF32 inputs leave (~0.0085 = 0.27 sqrt(n) 2^-11); for Freivalds, g_n |A|(|B||r|) with r on
  [-1, 1) is ~500, while a product that skips a third of the inner dimension moves y_i by only ~450.
  A and B are ours (iid uniform on [-1, 1)), so the honest error is known: with independent mean-zero rounding
  errors (Higham & Mary 2019), recursive float32 summation, the worst common order, leaves about 0.41 u s_ij per
  element; 16 u s_ij is ~39 standard deviations of it, and blocked/pairwise/split-K sums (BLAS, cuBLAS) err less.
  TF32 inputs err by ~6700 u s_ij / sqrt(n), 6.5x the tolerance at n = 4096 and still 3x at 16384, so nearly
  every element of an exactly recomputed row fails. The 4 g_n terms are the rigorous float64 bounds (validator's
  and miner's float64 sums); they dominate only for float64, where they still sit 10^3-10^4x below what float32
  arithmetic would leave. Output rounding is rigorous elementwise (|fl(x) - x| <= u|x|) and bounded across a row
  by Hoeffding (8 sigma: 2e-14 per row).

False acceptance (what a pass proves; f = fraction of C's rows the miner computed correctly):
  - Honest but faulty (bad memory, a broken kernel; y computed from its own C): any row with a wrong element e_ij
    fails Freivalds unless |e_i . r| <= tol_i. |r_j| >= 1, so one wrong element above tol_i is always caught;
    several in a row slip through with probability <= tol_i / max_j |e_ij| (r_j's density is at most 1/2).
    One error anywhere in C is enough: the check covers all n rows.
  - A cheater who commits to a wrong C and answers y = C.r honestly: the same as the previous case.
  - A cheater who commits garbage (zeros, a partial or low-precision product) to save time and then answers
    y = A.(B.r) (cheap, O(n^2)): Freivalds passes, by construction; y only constrains the committed C where rows
    are opened. An opened garbage row must satisfy both y_i = C_i . r (consistency) and y_i ~ (A.B.r)_i
    (Freivalds), i.e. its error e satisfies |e . r| <= tol_i with e fixed before r was revealed: probability
    p <= tol_i / max_j |e_j| (float32, n = 4096, a zero row: <= 2e-3 as a bound, ~5e-5 in fact). For bfloat16
    and float16 the tolerance grows with the opened row itself (rounding), so a dense wrong row passes with
    p ~ 0.8 * 8 u_out: 0.025 and 0.003. The first m opened rows are also recomputed exactly and fail for any
    element error above tolerance, whatever r.
    A row the miner did compute is right, so false acceptance is at most (f + (1 - f) p)^k; sampling without
    replacement only lowers it. Defaults: k = 136 rows so that a miner skipping 10% of the rows passes with
    probability < 1e-6 (0.9^136 = 6e-7; with p = 0.03, 0.903^136 = 9e-7); skipping half: 0.5^136 ~ 1e-41.
    Skipping 1% of the rows passes with probability 0.25 per challenge (0.99^136); after t independent
    challenges the chance falls as (f + (1 - f) p)^(k t). A 1% saving is inside the timing slack anyway.
  - Merkle binding: a proof for row i opens only the row committed at i (SHA-256 collision resistance), and the
    row was fixed before r and the indices existed (they come from a secret revealed after the commitment).
  - Replay: the id is single-use (ledger) and every answer echoes it; a product for another seed fails
    wrong_seed (echo) or wrong_product (rows). Lateness uses the validator's clock only.
  What it does not prove: that a GPU did the work, or which one; only that C was right and arrived within the time
  the claimed model allows. The miner's O(n^2) host work (deriving A and B, copies, leaf hashing: ~15 ns per
  element of C on this project's 2-core CI machine, 0.25 s at n = 4096, 4 s at 16384) outweighs an H100's
  2-130 ms of float32 multiplication at those sizes, so the allowance for a GPU is mostly host time: a fast
  many-core CPU can pass a GPU claim at n = 4096, and the check only separates slow nodes from the claimed class
  for large n, never one GPU generation from the next. The host allowance is therefore capped (`TimingPolicy`:
  30 ns per element, at most 4 s) and GPU pools use n = GPU_POOL_N = 16384: an H100 (hbm3 entry) is allowed
  0.26 s of multiply + 4 s host + 2 s slack = 6.3 s, where a CPU needs 2 n^3 = 8.8 TFLOP of work (8.8 s at a
  sustained 1 TFLOPS) plus its own host time. A CPU sustaining well over 2 TFLOPS in float32 still passes;
  sharper needs device-side derivation and hashing, or several products per challenge (X = A.B^T costs T 2n^3
  and still verifies in O(T n^2)).
  The miner could also proxy the work to a faster machine; binding the answer to the node's key is the signed
  transport's job.

Verifier cost (multiply-adds counted as 2 flops): one pass over B (B.r, column norms, the m exact rows) and one
over A (A.(B.r), row norms): (8 + 2m) n^2 flops, plus 4 k n for the opened rows and k log2 n hashes; against
2 n^3 for recomputing C, that is (4 + m) / n: 0.49% at n = 4096 with m = 16. Deriving A and B (2 n^2 values)
is extra and independent of the answer, so the validator can do it while the miner computes.
"""

from __future__ import annotations

import enum
import json
import math
import re
import secrets
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, Field

from primenet.core.challenge.derive import derive_indices, derive_matrices, derive_vector, to_float64
from primenet.core.challenge.merkle import verify_proof
from primenet.core.challenge.wire import (
    DTYPES,
    Challenge,
    ChallengeError,
    Commitment,
    Float64Array,
    Matrix,
    MatrixDtype,
    Opening,
    Reveal,
)
from primenet.core.models import Wire

RandomBytes = Callable[[int], bytes]

ACCUMULATE_FACTOR = 16.0  # tolerance in units of u_acc * s_ij: ~39 sigma of honest recursive float32 summation
ROUND_ELEMENT_FACTOR = 2.0  # output rounding of one element: |fl(x) - x| <= u |x|, plus the slack of x vs ref
ROUND_ROW_FACTOR = 8.0  # output rounding summed over a row: Hoeffding at 8 sigma
ESTIMATE_FACTOR = 4.0  # headroom on the estimated size of an unopened row of C
_BLOCK_ELEMENTS = 1 << 21  # rows of A or B converted to float64 at a time (16 MiB)


def rows_for(false_accept: float = 1e-6, skipped: float = 0.1, row_miss: float = 0.03) -> int:
    """Rows to open so that a miner who skipped `skipped` of the rows passes with probability <= false_accept."""
    return math.ceil(math.log(false_accept) / math.log(1.0 - skipped + skipped * row_miss))


DEFAULT_ROWS_TO_OPEN = rows_for()  # 136
DEFAULT_RECOMPUTE_ROWS = 16


class Reason(enum.StrEnum):
    OK = "ok"
    REPLAYED_ANSWER = "replayed_answer"
    MALFORMED = "malformed"
    WRONG_SEED = "wrong_seed"
    LATE_ANSWER = "late_answer"
    UNKNOWN_GPU = "unknown_gpu"
    TOO_SLOW = "too_slow"
    COMMITMENT_MISMATCH = "commitment_mismatch"
    CR_MISMATCH = "cr_mismatch"
    WRONG_PRODUCT = "wrong_product"


class Verdict(BaseModel):
    ok: bool
    reason: Reason
    detail: str
    figures: dict[str, float] = Field(default_factory=dict, description="timings and worst error/tolerance ratios")


# ---------------------------------------------------------------------------------------------- throughput


MAX_TFLOPS = 1e6  # a thousand times today's fastest device: a typo in the table, not a device


class Throughput(Wire):
    """Dense peak TFLOPS of one device model per dtype (vendor datasheet figures; float32 without TF32)."""

    float64: float = Field(gt=0, le=MAX_TFLOPS)
    float32: float = Field(gt=0, le=MAX_TFLOPS)
    float16: float = Field(gt=0, le=MAX_TFLOPS)
    bfloat16: float = Field(gt=0, le=MAX_TFLOPS)

    def tflops(self, dtype: MatrixDtype) -> float:
        return float(getattr(self, dtype.value))


class TimingPolicy(Wire):
    """The allowance is about the device: its multiply at the table's throughput, plus a bounded host allowance.

    The miner's O(n^2) host work (deriving A and B, copies, leaf hashing) grows with n^2 while the device's
    multiply grows with n^3; an allowance proportional to n^2 without a cap (100 ns per element, as before) let
    the host time dominate, so any large CPU passed a GPU claim. The cap keeps it from growing past what a GPU
    host needs at the largest n."""

    efficiency: float = Field(0.5, gt=0, le=1, description="fraction of the table's peak a healthy device reaches")
    host_ns_per_element: float = Field(
        30.0, ge=0, le=1e6, description="O(n^2) host work per element of C: deriving A and B, copies, leaf hashing"
    )
    host_cap_s: float = Field(4.0, ge=0, le=3600, description="the host allowance never exceeds this")
    slack_s: float = Field(2.0, ge=0, le=3600, description="network round trip and scheduling")

    def host_seconds(self, n: int) -> float:
        return min(self.host_ns_per_element * 1e-9 * n * n, self.host_cap_s)


def _tokens(name: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9]+", name.lower()))


class ThroughputTable(Wire):
    models: dict[str, Throughput] = Field(description="key: words that must all occur in the model name")
    policy: TimingPolicy = Field(default_factory=TimingPolicy)

    def lookup(self, claimed: str) -> tuple[str, Throughput] | None:
        """The entry whose key words all occur in the claimed name; the most specific one wins."""
        words = _tokens(claimed)
        matches = [key for key in self.models if _tokens(key) and _tokens(key) <= words]
        if not matches:
            return None
        best = max(matches, key=lambda key: (len(_tokens(key)), len(key)))
        return best, self.models[best]

    def device_seconds(self, n: int, dtype: MatrixDtype, throughput: Throughput) -> float:
        """The multiply C = A.B on a healthy device of this model: 2 n^3 flops at `efficiency` of its peak."""
        return 2.0 * n**3 / (throughput.tflops(dtype) * 1e12 * self.policy.efficiency)

    def expected_seconds(self, n: int, dtype: MatrixDtype, throughput: Throughput) -> float:
        """The longest round 1 may take on a healthy device of this model, on the validator's clock: the
        device's multiply, the capped host allowance and the slack."""
        return self.device_seconds(n, dtype, throughput) + self.policy.host_seconds(n) + self.policy.slack_s


def _t(f64: float, f32: float, f16: float, bf16: float) -> Throughput:
    return Throughput(float64=f64, float32=f32, float16=f16, bfloat16=bf16)


# float64: tensor-core FP64 where the part has it (what cuBLAS DGEMM uses); float16/bfloat16: tensor cores with
# float32 accumulation, dense. Generic keys ("h100") carry the slowest variant's figures, so they are lenient.
DEFAULT_MODELS: dict[str, Throughput] = {
    "h200": _t(67, 67, 989, 989),
    "h100 hbm3": _t(67, 67, 989, 989),  # NVML's name for the SXM part
    "h100 sxm": _t(67, 67, 989, 989),
    "h100 nvl": _t(60, 60, 835, 835),
    "h100 pcie": _t(51, 51, 756, 756),
    "h100": _t(51, 51, 756, 756),
    "a100": _t(19.5, 19.5, 312, 312),
    "l40s": _t(1.4, 91.6, 362, 362),
    "l40": _t(1.4, 90.5, 181, 181),
    "l4": _t(0.47, 30.3, 121, 121),
    "a10": _t(0.98, 31.2, 125, 125),
    "rtx 4090": _t(1.29, 82.6, 165, 165),
    "rtx 3090": _t(0.56, 35.6, 71, 71),
    "v100": _t(7.8, 15.7, 125, 15.7),
    "cpu": _t(0.005, 0.01, 0.01, 0.01),  # a floor any CPU from the last decade clears (numpy, one socket)
}
DEFAULT_TABLE = ThroughputTable(models=DEFAULT_MODELS)


def load_throughput_table(path: Path) -> ThroughputTable:
    """Defaults overridden by a JSON or TOML file: {"models": {"<key>": {<dtype>: TFLOPS}}, "policy": {...}}.

    A model key given in the file replaces the default entry of that key (all four dtypes are required).
    """
    text = path.read_text()
    data: dict[str, Any] = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    unknown = set(data) - {"models", "policy"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    return ThroughputTable.model_validate(
        {
            "models": {**DEFAULT_TABLE.model_dump()["models"], **data.get("models", {})},
            "policy": {**DEFAULT_TABLE.policy.model_dump(), **data.get("policy", {})},
        }
    )


# ---------------------------------------------------------------------------------------------- replay ledger


class ChallengeLedger(Protocol):
    def claim(self, challenge_id: str, expires_at: float) -> bool:
        """True the first time an id is claimed; False ever after (until it expires: answers are late by then)."""
        ...


class MemoryLedger:
    """In-process ledger; a Redis one (SET NX with an expiry) fits the same protocol."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._expiry: dict[str, float] = {}

    def claim(self, challenge_id: str, expires_at: float) -> bool:
        now = self._clock()
        if len(self._expiry) > 1024:  # forget ids whose answers would be late anyway
            self._expiry = {key: at for key, at in self._expiry.items() if at >= now}
        if challenge_id in self._expiry:
            return False
        self._expiry[challenge_id] = expires_at
        return True


# ---------------------------------------------------------------------------------------------- issue, reveal


@dataclass(frozen=True)
class IssuedChallenge:
    """The validator's record of one challenge: the public part and the secret it reveals in round 2."""

    challenge: Challenge
    secret: bytes
    rows_to_open: int
    recompute_rows: int
    reveal_deadline_s: float

    def draw(self) -> list[int]:
        """The opened rows in draw order; the first `recompute_rows` are recomputed exactly."""
        return derive_indices(self.secret, self.challenge.n, self.rows_to_open)


def new_challenge(
    n: int,
    dtype: MatrixDtype = MatrixDtype.FLOAT32,
    deadline_s: float = 60.0,
    rng: RandomBytes = secrets.token_bytes,
    *,
    now: float | None = None,
    rows_to_open: int = DEFAULT_ROWS_TO_OPEN,
    recompute_rows: int = DEFAULT_RECOMPUTE_ROWS,
    reveal_deadline_s: float = 30.0,
) -> IssuedChallenge:
    k = min(rows_to_open, n)
    challenge = Challenge(
        challenge_id=rng(32).hex(),
        seed=rng(32).hex(),
        n=n,
        dtype=dtype,
        issued_at=time.time() if now is None else now,
        deadline_s=deadline_s,
    )
    return IssuedChallenge(challenge, rng(32), k, min(recompute_rows, k), reveal_deadline_s)


def reveal(issued: IssuedChallenge) -> Reveal:
    """Round 2's message. Send it only once the commitment is in hand: it discloses r and the rows."""
    return Reveal(
        challenge_id=issued.challenge.challenge_id,
        secret=issued.secret.hex(),
        rows=sorted(issued.draw()),
        deadline_s=issued.reveal_deadline_s,
    )


# ---------------------------------------------------------------------------------------------- verify


def _pass_b(
    b: Matrix, dtype: MatrixDtype, r: Float64Array, a_rows: Float64Array
) -> tuple[Float64Array, Float64Array, Float64Array]:
    """One pass over B: B.r, its column norms, and a_rows.B (the rows recomputed exactly)."""
    n = b.shape[0]
    step = max(1, _BLOCK_ELEMENTS // n)
    br = np.empty(n)
    squares = np.zeros(n)
    exact = np.zeros((a_rows.shape[0], n))
    for start in range(0, n, step):
        block = to_float64(b[start : start + step], dtype)
        br[start : start + step] = block @ r
        squares += np.einsum("ij,ij->j", block, block)
        exact += a_rows[:, start : start + step] @ block
    return br, np.sqrt(squares), exact


def _pass_a(a: Matrix, dtype: MatrixDtype, br: Float64Array) -> tuple[Float64Array, Float64Array]:
    """One pass over A: A.(B.r) and its row norms."""
    n = a.shape[0]
    step = max(1, _BLOCK_ELEMENTS // n)
    abr = np.empty(n)
    norms = np.empty(n)
    for start in range(0, n, step):
        block = to_float64(a[start : start + step], dtype)
        abr[start : start + step] = block @ br
        norms[start : start + step] = np.sqrt(np.einsum("ij,ij->i", block, block))
    return abr, norms


def _worst(error: Float64Array, tolerance: Float64Array) -> tuple[bool, float, int]:
    """(all within, worst |error| / tolerance, where). NaN and infinity fail."""
    if error.size == 0:
        return True, 0.0, 0
    within = np.abs(error) <= tolerance
    with np.errstate(over="ignore", invalid="ignore"):
        ratio = np.abs(error) / np.maximum(tolerance, np.finfo(np.float64).tiny)
    ratio = np.where(np.isnan(ratio), np.inf, ratio)
    where = int(np.argmax(ratio))
    return bool(np.all(within)), float(ratio.flat[where]), where


def verify(
    issued: IssuedChallenge,
    commitment: Commitment,
    opening: Opening,
    claimed_gpu: str,
    *,
    committed_at: float,
    now: float,
    ledger: ChallengeLedger | None = None,
    table: ThroughputTable = DEFAULT_TABLE,
    matrices: tuple[Matrix, Matrix] | None = None,
) -> Verdict:
    """Judge one answer. `committed_at` and `now`: when the commitment and the opening reached the validator (its
    clock). `matrices`: A and B if already derived (e.g. while the miner computed)."""
    challenge = issued.challenge
    n, dtype = challenge.n, challenge.dtype
    figures: dict[str, float] = {"n": n, "elapsed_s": committed_at - challenge.issued_at}
    figures.update({f"miner_{key}": value for key, value in commitment.timings.model_dump().items()})

    def verdict(reason: Reason, detail: str) -> Verdict:
        return Verdict(ok=reason is Reason.OK, reason=reason, detail=detail, figures=figures)

    if commitment.challenge_id != challenge.challenge_id or opening.challenge_id != challenge.challenge_id:
        return verdict(Reason.REPLAYED_ANSWER, "the answer is bound to another challenge")
    expires_at = challenge.deadline + issued.reveal_deadline_s
    if ledger is not None and not ledger.claim(challenge.challenge_id, expires_at):
        return verdict(Reason.REPLAYED_ANSWER, "this challenge was already answered")

    if commitment.n != n or commitment.dtype != dtype:
        return verdict(Reason.MALFORMED, f"commitment is for n={commitment.n} {commitment.dtype}")
    drawn = issued.draw()
    opened = sorted(drawn)
    if [row.index for row in opening.rows] != opened:
        return verdict(Reason.MALFORMED, "the opened rows are not the revealed ones, in order")
    try:
        if opening.cr.dtype is not MatrixDtype.FLOAT64 or any(row.values.dtype != dtype for row in opening.rows):
            raise ChallengeError("C.r must be float64 and rows in the challenge's dtype")
        y = opening.cr.decode(n)
        rows = [row.values.decode(n) for row in opening.rows]
    except ChallengeError as error:
        return verdict(Reason.MALFORMED, str(error))

    if commitment.seed != challenge.seed:
        return verdict(Reason.WRONG_SEED, "the commitment is for another seed")
    if committed_at > challenge.deadline:
        return verdict(Reason.LATE_ANSWER, f"commitment {committed_at - challenge.deadline:.3f}s after the deadline")
    if now > committed_at + issued.reveal_deadline_s:
        return verdict(Reason.LATE_ANSWER, "opening arrived after the reveal's deadline")

    found = table.lookup(claimed_gpu)
    if found is None:
        return verdict(Reason.UNKNOWN_GPU, f"no throughput entry matches {claimed_gpu!r}")
    model, throughput = found
    figures["expected_s"] = table.expected_seconds(n, dtype, throughput)
    figures["device_s"] = table.device_seconds(n, dtype, throughput)
    if figures["elapsed_s"] > figures["expected_s"]:
        return verdict(
            Reason.TOO_SLOW,
            f"round 1 took {figures['elapsed_s']:.3f}s; a {model} is allowed {figures['expected_s']:.3f}s",
        )

    root = bytes.fromhex(commitment.root)
    for index, row, opened_row in zip(opened, rows, opening.rows, strict=True):
        proof = [bytes.fromhex(sibling) for sibling in opened_row.proof]
        if not verify_proof(root, index, row, proof, n):
            return verdict(Reason.COMMITMENT_MISMATCH, f"row {index} does not verify against the root")

    return _check_numbers(issued, y, rows, opened, drawn, matrices, verdict, figures)


def _check_numbers(
    issued: IssuedChallenge,
    y: Float64Array,
    rows: list[Matrix],
    opened: list[int],
    drawn: list[int],
    matrices: tuple[Matrix, Matrix] | None,
    verdict: Callable[[Reason, str], Verdict],
    figures: dict[str, float],
) -> Verdict:
    challenge = issued.challenge
    n, dtype = challenge.n, challenge.dtype
    info = DTYPES[dtype]
    u_acc = info.accumulate_roundoff
    u_out = 0.0 if dtype in (MatrixDtype.FLOAT32, MatrixDtype.FLOAT64) else info.unit_roundoff
    g_n = n * DTYPES[MatrixDtype.FLOAT64].unit_roundoff
    g_n /= 1.0 - g_n

    a, b = matrices if matrices is not None else derive_matrices(challenge.seed, n, dtype)
    r = derive_vector(issued.secret, n)
    recomputed = drawn[: issued.recompute_rows]
    br, beta, exact = _pass_b(b, dtype, r, to_float64(a[recomputed], dtype))
    abr, alpha = _pass_a(a, dtype, br)

    # (c) y agrees with the committed rows that were opened: both sides sum in float64.
    opened_rows = np.stack([to_float64(row, dtype) for row in rows])
    projection = opened_rows @ r
    within, figures["cr_ratio"], at = _worst(y[opened] - projection, 4 * g_n * (np.abs(opened_rows) @ np.abs(r)))
    if not within:
        return verdict(Reason.CR_MISMATCH, f"C.r at row {opened[at]} does not match the opened row")

    # (a) Freivalds on every row.
    position = {index: p for p, index in enumerate(opened)}
    beta_r = beta * np.abs(r)
    base = alpha * (ACCUMULATE_FACTOR * u_acc * np.linalg.norm(beta_r) + 4 * g_n * beta_r.sum())
    # Unopened rows: |C_i o r|_2 estimated as alpha_i |beta o r|_2 / sqrt(n) (E C_ij^2 for iid B), x4 for its
    # fluctuation, capped by the Cauchy-Schwarz bound it estimates. Matters only for float16/bfloat16.
    bound = ROUND_ROW_FACTOR * u_out * min(1.0, ESTIMATE_FACTOR / math.sqrt(n)) * alpha * np.linalg.norm(beta_r)
    within, figures["freivalds_ratio"], at = _worst(y - abr, base + bound)
    if not within:
        kind = "opened row" if at in position else "row"  # opened: the committed row itself is wrong
        return verdict(Reason.WRONG_PRODUCT, f"Freivalds: C.r != A.(B.r) at {kind} {at}")

    # (b) the opened rows: projected onto r (tight rounding term from the row itself), and a prefix recomputed.
    rho = np.linalg.norm(opened_rows * r, axis=1)
    tolerance = base[opened] + ROUND_ROW_FACTOR * u_out * rho
    within, figures["projection_ratio"], at = _worst(projection - abr[opened], tolerance)
    if not within:
        return verdict(Reason.WRONG_PRODUCT, f"opened row {opened[at]} . r != (A.B.r)_{opened[at]}")
    got = opened_rows[[position[i] for i in recomputed]]
    scale = (ACCUMULATE_FACTOR * u_acc + 4 * g_n) * np.outer(alpha[recomputed], beta)
    within, figures["row_ratio"], at = _worst(got - exact, scale + ROUND_ELEMENT_FACTOR * u_out * np.abs(exact))
    if not within:
        row, column = divmod(at, n)
        return verdict(Reason.WRONG_PRODUCT, f"C[{recomputed[row]}, {column}] differs from row_i(A).B")
    return verdict(Reason.OK, f"{len(opened)} rows opened, {len(recomputed)} recomputed")
