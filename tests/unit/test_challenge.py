"""The challenge end to end (miner + validator functions, no transport): honest answers pass, each cheat or fault
fails with its own reason."""

from __future__ import annotations

import importlib.util
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from primenet.core.challenge.derive import derive_matrices, derive_vector, matvec64, round_to_bfloat16, to_float32
from primenet.core.challenge.wire import (
    Challenge,
    ChallengeError,
    Commitment,
    Matrix,
    MatrixDtype,
    Opening,
    Reveal,
    Vector,
    opening_size_bytes,
)
from primenet.miner.solver import (
    NUMPY_BACKEND,
    Backend,
    CommittedProduct,
    MatmulFn,
    numpy_matmul,
    select_backend,
    solve_round1,
    solve_round2,
)
from primenet.validator.verifier import (
    DEFAULT_ROWS_TO_OPEN,
    DEFAULT_TABLE,
    IssuedChallenge,
    MemoryLedger,
    Reason,
    ThroughputTable,
    TimingPolicy,
    Verdict,
    load_throughput_table,
    new_challenge,
    reveal,
    rows_for,
    verify,
)

pytestmark = pytest.mark.unit

ISSUED_AT = 1_000_000.0


def issue(n: int = 128, dtype: MatrixDtype = MatrixDtype.FLOAT32, seed: int = 1) -> IssuedChallenge:
    return new_challenge(n, dtype, deadline_s=60, rng=random.Random(seed).randbytes, now=ISSUED_AT)


@dataclass
class Round:
    issued: IssuedChallenge
    commitment: Commitment
    state: CommittedProduct
    reveal: Reveal
    opening: Opening

    def verify(
        self,
        claimed: str = "cpu",
        elapsed: float = 1.0,
        after_reveal: float = 1.0,
        ledger: MemoryLedger | None = None,
        table: ThroughputTable = DEFAULT_TABLE,
    ) -> Verdict:
        committed_at = ISSUED_AT + elapsed
        return verify(
            self.issued,
            self.commitment,
            self.opening,
            claimed,
            committed_at=committed_at,
            now=committed_at + after_reveal,
            ledger=ledger,
            table=table,
        )

    def with_cr(self, cr: np.ndarray) -> Opening:
        return self.opening.model_copy(update={"cr": Vector.of(cr, MatrixDtype.FLOAT64)})

    def abr(self) -> np.ndarray:
        """A.(B.r): what a miner can compute in O(n^2) without ever forming C."""
        challenge = self.issued.challenge
        a, b = derive_matrices(challenge.seed, challenge.n, challenge.dtype)
        r = derive_vector(self.reveal.secret, challenge.n)
        return matvec64(a, challenge.dtype, matvec64(b, challenge.dtype, r))


def play(issued: IssuedChallenge, backend: Backend = NUMPY_BACKEND) -> Round:
    commitment, state = solve_round1(issued.challenge, backend)
    message = reveal(issued)
    return Round(issued, commitment, state, message, solve_round2(state, message))


def tampered(change: Callable[[Matrix], None]) -> Backend:
    """A backend whose product goes through `change(C)`: the miner then commits to it and answers honestly."""

    def matmul(a: Matrix, b: Matrix, dtype: MatrixDtype) -> Matrix:
        product = numpy_matmul(a, b, dtype).copy()
        change(product)
        return product

    return Backend("tampered", matmul)


# ---------------------------------------------------------------------------------------------- honest


@pytest.mark.parametrize("dtype", list(MatrixDtype))
@pytest.mark.parametrize("n", [1, 5, 64, 200])
def test_honest_answer_verifies(dtype: MatrixDtype, n: int) -> None:
    verdict = play(issue(n, dtype)).verify()
    assert verdict.ok, verdict
    assert verdict.reason is Reason.OK
    ratios = [value for key, value in verdict.figures.items() if key.endswith("_ratio")]
    assert len(ratios) == 4
    assert max(ratios) < 0.6  # half precision rounds by up to 0.5 of its element tolerance


def recursive_float32(a: Matrix, b: Matrix, dtype: MatrixDtype) -> Matrix:
    """The worst common summation order: one rank-1 update at a time, each product rounded, no FMA."""
    product = np.zeros((a.shape[0], b.shape[1]), dtype=np.float32)
    for k in range(a.shape[1]):
        product += np.multiply.outer(a[:, k], b[k])
    return product


@pytest.mark.parametrize("backend", [NUMPY_BACKEND, Backend("recursive", recursive_float32)])
def test_tolerance_keeps_a_wide_margin_for_honest_float32_at_512(backend: Backend) -> None:
    verdict = play(issue(512), backend).verify()
    assert verdict.ok, verdict
    assert max(value for key, value in verdict.figures.items() if key.endswith("_ratio")) < 0.25


@pytest.mark.parametrize(
    ("n", "dtype"), [(1, MatrixDtype.FLOAT64), (300, MatrixDtype.FLOAT32), (64, MatrixDtype.BFLOAT16)]
)
def test_opening_size_bound_is_tight_and_safe(n: int, dtype: MatrixDtype) -> None:
    played = play(issue(n, dtype))
    size = len(played.opening.model_dump_json())
    assert size <= opening_size_bytes(n, dtype, played.issued.rows_to_open) <= 1.2 * size + 1024


def test_messages_survive_json() -> None:
    played = play(issue(64, MatrixDtype.BFLOAT16))
    played.commitment = Commitment.model_validate_json(played.commitment.model_dump_json())
    played.opening = Opening.model_validate_json(played.opening.model_dump_json())
    assert Challenge.model_validate_json(played.issued.challenge.model_dump_json()) == played.issued.challenge
    assert Reveal.model_validate_json(played.reveal.model_dump_json()) == played.reveal
    assert played.verify().ok


# ---------------------------------------------------------------------------------------------- wrong products


@pytest.mark.parametrize("row", [0, 77, 127])
def test_one_changed_element_fails_freivalds(row: int) -> None:
    def change(c: Matrix) -> None:
        c[row, 5] += np.float32(0.01)  # ~0.1% of a typical |C_ij| at n = 128

    verdict = play(issue(), tampered(change)).verify()
    assert verdict.reason is Reason.WRONG_PRODUCT
    assert f"row {row}" in verdict.detail


def tf32_inputs(a: Matrix, b: Matrix, dtype: MatrixDtype) -> Matrix:
    """Tensor-core TF32: inputs rounded to 10 explicit mantissa bits, float32 sums (8x faster on an A100)."""

    def tf32(x: Matrix) -> Matrix:
        bits = x.view(np.uint32).astype(np.uint64)
        rounded = (bits + np.uint64(0xFFF) + ((bits >> np.uint64(13)) & np.uint64(1))) >> np.uint64(13)
        return (rounded << np.uint64(13)).astype(np.uint32).view(np.float32)

    return np.asarray(np.matmul(tf32(a), tf32(b)))


def bf16_inputs(a: Matrix, b: Matrix, dtype: MatrixDtype) -> Matrix:
    def bf16(x: Matrix) -> Matrix:
        return to_float32(round_to_bfloat16(x), MatrixDtype.BFLOAT16)

    return np.asarray(np.matmul(bf16(a), bf16(b)))


@pytest.mark.parametrize("cheap", [tf32_inputs, bf16_inputs])
def test_reduced_precision_for_a_float32_challenge_fails(cheap: MatmulFn) -> None:
    played = play(issue(256), Backend("cheap", cheap))
    assert played.verify().reason is Reason.WRONG_PRODUCT
    # Strategic: y = A.(B.r) computed honestly, except on the opened rows, where it matches what they show.
    cr = played.abr()
    rows = [row.index for row in played.opening.rows]
    cr[rows] = matvec64(played.state.product[rows], MatrixDtype.FLOAT32, derive_vector(played.reveal.secret, 256))
    played.opening = played.with_cr(cr)
    verdict = played.verify()
    assert verdict.reason is Reason.WRONG_PRODUCT
    assert "opened row" in verdict.detail


def skip_half_the_rows(c: Matrix) -> None:
    c[1::2] = 0


def test_lazy_miner_answering_c_r_from_a_and_b_fails_cr_mismatch() -> None:
    """Commits to half a product, then computes y = A.(B.r) in O(n^2): Freivalds alone would pass."""
    played = play(issue(256), tampered(skip_half_the_rows))
    played.opening = played.with_cr(played.abr())
    assert played.verify().reason is Reason.CR_MISMATCH


def test_lazy_miner_matching_its_opened_rows_fails_wrong_product() -> None:
    played = play(issue(256), tampered(skip_half_the_rows))
    cr = played.abr()
    rows = [row.index for row in played.opening.rows]
    cr[rows] = matvec64(played.state.product[rows], MatrixDtype.FLOAT32, derive_vector(played.reveal.secret, 256))
    played.opening = played.with_cr(cr)
    verdict = played.verify()
    assert verdict.reason is Reason.WRONG_PRODUCT
    assert "opened row" in verdict.detail


def test_row_opening_alone_catches_a_tenth_skipped_with_default_k() -> None:
    """The sampling half of the argument: with k = 136 of n = 1000 rows, some opened row is a skipped one."""
    issued = issue(1000)
    skipped = set(range(0, 1000, 10))
    assert skipped & set(reveal(issued).rows)
    assert rows_for() == DEFAULT_ROWS_TO_OPEN == 136
    assert 0.903**136 < 1e-6 < 0.903**135


def test_product_for_another_seed_fails() -> None:
    issued = issue()
    other = issued.challenge.model_copy(update={"seed": random.Random(9).randbytes(32).hex()})
    commitment, state = solve_round1(other, NUMPY_BACKEND)
    message = reveal(issued)
    played = Round(issued, commitment, state, message, solve_round2(state, message))
    assert played.verify().reason is Reason.WRONG_SEED
    played.commitment = commitment.model_copy(update={"seed": issued.challenge.seed})
    assert played.verify().reason is Reason.WRONG_PRODUCT


# ---------------------------------------------------------------------------------------------- commitment, C.r


def test_opened_row_that_is_not_the_committed_one_fails_commitment_mismatch() -> None:
    played = play(issue())
    first = played.opening.rows[0]
    values = first.values.decode(128).copy()
    values[3] += np.float32(1)
    rows = [first.model_copy(update={"values": Vector.of(values, MatrixDtype.FLOAT32)}), *played.opening.rows[1:]]
    played.opening = played.opening.model_copy(update={"rows": rows})
    assert played.verify().reason is Reason.COMMITMENT_MISMATCH


def test_altered_proof_or_root_fails_commitment_mismatch() -> None:
    played = play(issue())
    last = played.opening.rows[-1]
    proof = [("0" if last.proof[0][0] != "0" else "1") + last.proof[0][1:], *last.proof[1:]]
    rows = [*played.opening.rows[:-1], last.model_copy(update={"proof": proof})]
    altered = played.opening.model_copy(update={"rows": rows})
    assert Round(played.issued, played.commitment, played.state, played.reveal, altered).verify().reason is (
        Reason.COMMITMENT_MISMATCH
    )
    played.commitment = played.commitment.model_copy(update={"root": "ab" * 32})
    assert played.verify().reason is Reason.COMMITMENT_MISMATCH


def test_c_r_that_does_not_match_the_opened_rows_fails_cr_mismatch() -> None:
    played = play(issue())
    cr = played.opening.cr.decode(128).copy()
    cr[played.opening.rows[0].index] += 1e-6
    played.opening = played.with_cr(cr)
    assert played.verify().reason is Reason.CR_MISMATCH


def test_c_r_wrong_on_an_unopened_row_fails_freivalds() -> None:
    played = play(issue(256))
    unopened = sorted(set(range(256)) - {row.index for row in played.opening.rows})[0]
    cr = played.opening.cr.decode(256).copy()
    cr[unopened] += 0.01
    played.opening = played.with_cr(cr)
    verdict = played.verify()
    assert verdict.reason is Reason.WRONG_PRODUCT
    assert f"at row {unopened}" in verdict.detail


def test_nan_in_c_r_fails() -> None:
    played = play(issue())
    cr = played.opening.cr.decode(128).copy()
    cr[cr.size // 2] = np.nan
    played.opening = played.with_cr(cr)
    assert not played.verify().ok


# ---------------------------------------------------------------------------------------------- time, replay


def test_late_commitment_or_opening_fails() -> None:
    played = play(issue())
    lenient = ThroughputTable(models=DEFAULT_TABLE.models, policy=TimingPolicy(slack_s=3600))
    assert played.verify(elapsed=60.0, after_reveal=30.0, table=lenient).ok
    assert played.verify(elapsed=60.001, table=lenient).reason is Reason.LATE_ANSWER
    assert played.verify(after_reveal=30.001, table=lenient).reason is Reason.LATE_ANSWER


def test_second_answer_to_the_same_challenge_is_a_replay() -> None:
    played = play(issue())
    ledger = MemoryLedger()
    assert played.verify(ledger=ledger).ok
    verdict = played.verify(ledger=ledger)
    assert verdict.reason is Reason.REPLAYED_ANSWER
    assert "already answered" in verdict.detail


def test_answer_to_an_older_challenge_is_a_replay() -> None:
    old = play(issue(seed=1))
    new = issue(seed=2)
    replayed = Round(new, old.commitment, old.state, reveal(new), old.opening)
    assert replayed.verify(ledger=MemoryLedger()).reason is Reason.REPLAYED_ANSWER


def test_memory_ledger_forgets_only_expired_ids() -> None:
    clock = [0.0]
    ledger = MemoryLedger(clock=lambda: clock[0])
    assert ledger.claim("kept", expires_at=100.0)
    for i in range(1100):
        assert ledger.claim(f"old {i}", expires_at=10.0)
    clock[0] = 50.0
    assert ledger.claim("trigger", expires_at=100.0)
    assert not ledger.claim("kept", expires_at=100.0)
    assert ledger.claim("old 3", expires_at=100.0)  # forgotten: an answer to it would be late anyway


NO_SLACK = ThroughputTable(
    models=DEFAULT_TABLE.models, policy=TimingPolicy(efficiency=0.5, host_ns_per_element=0, slack_s=0)
)


def test_too_slow_for_the_claimed_gpu_fails() -> None:
    played = play(issue(256))  # 2 n^3 = 33.5 MFLOP: 6.7 ms at the table's CPU floor, 1 us on an H100
    assert played.verify("cpu", elapsed=0.005, table=NO_SLACK).ok
    verdict = played.verify("NVIDIA H100 80GB HBM3", elapsed=0.005, table=NO_SLACK)
    assert verdict.reason is Reason.TOO_SLOW
    assert "h100 hbm3" in verdict.detail
    assert played.verify("cpu", elapsed=0.010, table=NO_SLACK).reason is Reason.TOO_SLOW
    assert played.verify("NVIDIA H100 80GB HBM3", elapsed=2.5).reason is Reason.TOO_SLOW  # default 2 s slack


def test_unknown_gpu_fails() -> None:
    assert play(issue(16)).verify("AMD Instinct MI300X").reason is Reason.UNKNOWN_GPU


# ---------------------------------------------------------------------------------------------- malformed


def test_malformed_answers_fail() -> None:
    played = play(issue())
    bad_n = played.commitment.model_copy(update={"n": 64})
    assert Round(played.issued, bad_n, played.state, played.reveal, played.opening).verify().reason is (
        Reason.MALFORMED
    )
    fewer = played.opening.model_copy(update={"rows": played.opening.rows[1:]})
    assert Round(played.issued, played.commitment, played.state, played.reveal, fewer).verify().reason is (
        Reason.MALFORMED
    )
    short = played.with_cr(np.zeros(127))
    assert Round(played.issued, played.commitment, played.state, played.reveal, short).verify().reason is (
        Reason.MALFORMED
    )
    first = played.opening.rows[0]
    as_f64 = first.model_copy(update={"values": Vector.of(first.values.decode(128), MatrixDtype.FLOAT64)})
    retyped = played.opening.model_copy(update={"rows": [as_f64, *played.opening.rows[1:]]})
    assert Round(played.issued, played.commitment, played.state, played.reveal, retyped).verify().reason is (
        Reason.MALFORMED
    )


def test_miner_refuses_a_reveal_it_cannot_answer() -> None:
    played = play(issue(16))
    with pytest.raises(ChallengeError):
        solve_round2(played.state, played.reveal.model_copy(update={"challenge_id": "0" * 64}))
    with pytest.raises(ChallengeError):
        solve_round2(played.state, played.reveal.model_copy(update={"rows": [0, 16]}))


# ---------------------------------------------------------------------------------------------- table, backend


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("NVIDIA H100 80GB HBM3", "h100 hbm3"),
        ("NVIDIA H100 PCIe", "h100 pcie"),
        ("NVIDIA H100", "h100"),
        ("NVIDIA A100-SXM4-80GB", "a100"),
        ("NVIDIA L40S", "l40s"),
        ("NVIDIA L4", "l4"),
        ("NVIDIA GeForce RTX 4090", "rtx 4090"),
        ("Tesla V100-SXM2-16GB", "v100"),
        ("cpu", "cpu"),
    ],
)
def test_lookup_picks_the_most_specific_entry(name: str, key: str) -> None:
    found = DEFAULT_TABLE.lookup(name)
    assert found is not None
    assert found[0] == key


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_table_overrides_from_a_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"gpus{suffix}"
    entry = {"float64": 81.7, "float32": 163.4, "float16": 1307, "bfloat16": 1307}
    if suffix == ".json":
        path.write_text(json.dumps({"models": {"mi300x": entry}, "policy": {"slack_s": 5}}))
    else:
        lines = "\n".join(f"{key} = {value}" for key, value in entry.items())
        path.write_text(f"[policy]\nslack_s = 5\n\n[models.mi300x]\n{lines}\n")
    table = load_throughput_table(path)
    assert table.policy.slack_s == 5
    assert table.policy.efficiency == DEFAULT_TABLE.policy.efficiency
    found = table.lookup("AMD Instinct MI300X")
    assert found is not None
    assert found[1].float32 == 163.4
    assert table.lookup("NVIDIA H100 PCIe") == DEFAULT_TABLE.lookup("NVIDIA H100 PCIe")
    assert play(issue(16)).verify("AMD Instinct MI300X", table=table).ok


def test_table_file_with_unknown_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gpus.json"
    path.write_text(json.dumps({"model": {}}))
    with pytest.raises(ValueError, match="unknown keys"):
        load_throughput_table(path)


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed")
def test_backend_selection_without_a_gpu_library() -> None:
    assert select_backend("numpy") is NUMPY_BACKEND
    with pytest.raises(ChallengeError):
        select_backend("torch")
    with pytest.raises(ChallengeError):
        select_backend("tpu")
