"""What does checking a proof-of-compute answer cost the validator, compared with the work it checks?

For each n, in one run on this machine (numpy on the CPU for both sides, unless the miner finds torch/cupy + GPU):
  miner      derive A and B; C = A.B; the Merkle commitment (leaf hashing + tree); round 2 (C.r, proofs)
  validator  derive A and B (reported apart: it does not depend on the answer, so a validator does it while
             the miner computes; it costs O(n^2) like the checks); verify (Freivalds over all rows, the k opened
             rows' proofs and projections, m rows recomputed exactly)
  ratios     verify time / miner's (matmul + commit) time, measured; and verify flops / 2 n^3, counted
             ((8 + 2m) n^2 + 4 k n against recomputing C).
Target: at n = 4096, verification under 2% of the flops of recomputing C. Prints a table; exits 0.
"""

from __future__ import annotations

import argparse
import time

from primenet.core.challenge.derive import derive_matrices
from primenet.core.challenge.wire import MatrixDtype
from primenet.miner.solver import select_backend, solve_round1, solve_round2
from primenet.validator.verifier import new_challenge, reveal, verify
from results import record

TARGET_N = 4096
TARGET_PERCENT = 2.0


def bench(n: int, dtype: MatrixDtype, backend: str) -> dict[str, float | str]:
    issued = new_challenge(n, dtype, deadline_s=3600)
    commitment, state = solve_round1(issued.challenge, select_backend(backend))
    committed_at = time.time()
    message = reveal(issued)
    start = time.perf_counter()
    opening = solve_round2(state, message)
    round2 = time.perf_counter() - start
    del state

    start = time.perf_counter()
    matrices = derive_matrices(issued.challenge.seed, n, dtype)
    derive = time.perf_counter() - start
    start = time.perf_counter()
    verdict = verify(issued, commitment, opening, "cpu", committed_at=committed_at, now=time.time(), matrices=matrices)
    check = time.perf_counter() - start

    k, m = issued.rows_to_open, issued.recompute_rows
    timings = commitment.timings
    work = timings.matmul_s + timings.commit_s
    return {
        "n": n,
        "miner derive s": timings.derive_s,
        "matmul s": timings.matmul_s,
        "commit s": timings.commit_s,
        "round 2 s": round2,
        "val. derive s": derive,
        "verify s": check,
        "verify/work": check / work,
        "(+derive)/work": (check + derive) / work,
        "verify flops %": 100 * ((8 + 2 * m) * n * n + 4 * k * n) / (2 * n**3),
        "verdict": verdict.reason.value,
        "worst ratio": max(value for key, value in verdict.figures.items() if key.endswith("_ratio")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--dtype", choices=[d.value for d in MatrixDtype], default=MatrixDtype.FLOAT32.value)
    parser.add_argument("--backend", choices=["auto", "numpy", "torch", "cupy"], default="auto")
    args = parser.parse_args()
    dtype = MatrixDtype(args.dtype)

    print(f"proof-of-compute challenge, {dtype}, miner backend: {select_backend(args.backend).name}")
    rows = [bench(n, dtype, args.backend) for n in args.n]
    columns = list(rows[0])
    print(" | ".join(f"{c:>14}" for c in columns))
    for row in rows:
        cells = [f"{v:>14.4f}" if isinstance(v, float) else f"{v:>14}" for v in row.values()]
        print(" | ".join(cells))
    print(
        "verify/work: the validator's check over the miner's matmul + commitment, same machine, same run; "
        "(+derive) adds the validator's derivation of A and B.\n"
        "verify flops %: (8 + 2m) n^2 + 4 k n over 2 n^3 (k = rows opened, m = rows recomputed exactly). "
        "worst ratio: largest error/tolerance over the checks (an honest answer stays well under 1)."
    )
    at_target = [row for row in rows if row["n"] == TARGET_N]
    if at_target:
        percent = float(at_target[0]["verify flops %"])
        status = "met" if percent < TARGET_PERCENT else "NOT met"
        print(f"target (n = {TARGET_N}: verification < {TARGET_PERCENT}% of recomputing C): {status}, {percent:.2f}%")
    backend = select_backend(args.backend).name
    for row in rows[-1:]:  # the largest n (4096 by default): the one the target is set for
        n = row["n"]
        record(
            "challenge.py",
            f"verification FLOPs against recomputing C, n = {n}, {dtype.value}",
            f"{float(row['verify flops %']):.2f}%",
            f"under {TARGET_PERCENT:g}%" if n == TARGET_N else "none",
        )
        record(
            "challenge.py",
            f"verification time against the miner's work, n = {n}, {backend} (with the validator's derivation)",
            f"{100 * float(row['verify/work']):.1f}% ({100 * float(row['(+derive)/work']):.0f}%)",
        )


if __name__ == "__main__":
    main()
