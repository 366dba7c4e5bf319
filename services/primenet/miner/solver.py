"""The miner's side of the proof-of-compute challenge: compute C = A.B, commit, open.

The product runs on a GPU through torch or cupy when one is importable and sees a device, on numpy otherwise.
A and B are always derived on the CPU with numpy (the derivation is defined by numpy's Philox stream) and copied
to the device; C comes back to the host, where its rows are hashed. Round 2 needs only the host copy of C.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from primenet.core.challenge.derive import derive_matrices, derive_vector, from_float32, matvec64, to_float32
from primenet.core.challenge.merkle import MerkleTree, merkle_proof, merkle_tree
from primenet.core.challenge.wire import (
    DTYPES,
    Challenge,
    ChallengeError,
    Commitment,
    Matrix,
    MatrixDtype,
    MinerTimings,
    OpenedRow,
    Opening,
    Reveal,
    Vector,
)

MatmulFn = Callable[[Matrix, Matrix, MatrixDtype], Matrix]


@dataclass(frozen=True)
class Backend:
    name: str  # reported in the commitment, e.g. "numpy" or "torch:NVIDIA H100 80GB HBM3"
    matmul: MatmulFn  # (A, B, dtype) -> C, all in the dtype's storage format, C on the host


@dataclass(frozen=True)
class CommittedProduct:
    """What round 2 needs: the committed product and its tree. Held in memory between the two rounds."""

    challenge: Challenge
    product: Matrix
    tree: MerkleTree


def numpy_matmul(a: Matrix, b: Matrix, dtype: MatrixDtype) -> Matrix:
    if dtype in (MatrixDtype.FLOAT64, MatrixDtype.FLOAT32):
        return np.asarray(np.matmul(a, b))
    # numpy has no fast half-precision GEMM: float32 holds the inputs exactly, so this meets the contract
    # (float32 accumulation, one rounding to the dtype).
    return from_float32(np.matmul(to_float32(a, dtype), to_float32(b, dtype)), dtype)


def _torch_backend() -> Backend | None:
    try:
        torch: Any = importlib.import_module("torch")
        if not torch.cuda.is_available():
            return None
    except ImportError:
        return None
    # The accuracy contract: no TF32 for float32, float32 accumulation for half precision.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    device = torch.device("cuda")

    def upload(x: Matrix, dtype: MatrixDtype) -> Any:
        if dtype is MatrixDtype.BFLOAT16:  # numpy has no bfloat16: move the bit pattern, reinterpret on device
            return torch.from_numpy(x.view(np.int16)).to(device).view(torch.bfloat16)
        return torch.from_numpy(x).to(device)

    def matmul(a: Matrix, b: Matrix, dtype: MatrixDtype) -> Matrix:
        c = upload(a, dtype) @ upload(b, dtype)
        if dtype is MatrixDtype.BFLOAT16:
            return np.asarray(c.view(torch.int16).cpu().numpy().view(np.uint16))
        return np.asarray(c.cpu().numpy())  # .cpu() waits for the device

    return Backend(f"torch:{torch.cuda.get_device_name(0)}", matmul)


def _cupy_backend() -> Backend | None:
    try:
        cupy: Any = importlib.import_module("cupy")
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    except Exception:  # cupy raises its own error types when the CUDA runtime is absent
        return None

    def matmul(a: Matrix, b: Matrix, dtype: MatrixDtype) -> Matrix:
        if dtype is MatrixDtype.BFLOAT16:  # cupy has no bfloat16: exact float32 inputs, round once on the host
            c32 = cupy.asarray(to_float32(a, dtype)) @ cupy.asarray(to_float32(b, dtype))
            return from_float32(cupy.asnumpy(c32), dtype)
        return np.asarray(cupy.asnumpy(cupy.asarray(a) @ cupy.asarray(b)))

    return Backend(f"cupy:{name}", matmul)


NUMPY_BACKEND = Backend("numpy", numpy_matmul)


def select_backend(prefer: str = "auto") -> Backend:
    """torch, then cupy, then numpy for "auto"; a named backend that is unavailable is an error."""
    finders = {"torch": _torch_backend, "cupy": _cupy_backend}
    if prefer == "numpy":
        return NUMPY_BACKEND
    if prefer in finders:
        found = finders[prefer]()
        if found is None:
            raise ChallengeError(f"backend {prefer} is not available (not installed or no GPU)")
        return found
    if prefer != "auto":
        raise ChallengeError(f"unknown backend {prefer}")
    return _torch_backend() or _cupy_backend() or NUMPY_BACKEND


def solve_round1(challenge: Challenge, backend: Backend | None = None) -> tuple[Commitment, CommittedProduct]:
    """Derive A and B, compute C = A.B, commit to its rows."""
    chosen = backend or select_backend()
    started = time.perf_counter()
    a, b = derive_matrices(challenge.seed, challenge.n, challenge.dtype)
    derived = time.perf_counter()
    product = np.ascontiguousarray(chosen.matmul(a, b, challenge.dtype), dtype=DTYPES[challenge.dtype].storage)
    if product.shape != (challenge.n, challenge.n):
        raise ChallengeError(f"the backend returned shape {product.shape}")
    multiplied = time.perf_counter()
    tree = merkle_tree(product)
    committed = time.perf_counter()
    commitment = Commitment(
        challenge_id=challenge.challenge_id,
        seed=challenge.seed,
        n=challenge.n,
        dtype=challenge.dtype,
        root=tree.root.hex(),
        backend=chosen.name,
        timings=MinerTimings(
            derive_s=derived - started, matmul_s=multiplied - derived, commit_s=committed - multiplied
        ),
    )
    return commitment, CommittedProduct(challenge=challenge, product=product, tree=tree)


def solve_round2(committed: CommittedProduct, reveal: Reveal) -> Opening:
    """y = C.r in float64 from the committed C, and the revealed rows with their proofs."""
    challenge = committed.challenge
    if reveal.challenge_id != challenge.challenge_id:
        raise ChallengeError("the reveal is for another challenge")
    if reveal.rows[-1] >= challenge.n:
        raise ChallengeError(f"row {reveal.rows[-1]} is out of range for n = {challenge.n}")
    r = derive_vector(reveal.secret, challenge.n)
    cr = matvec64(committed.product, challenge.dtype, r)
    rows = [
        OpenedRow(
            index=i,
            values=Vector.of(committed.product[i], challenge.dtype),
            proof=[sibling.hex() for sibling in merkle_proof(committed.tree, i)],
        )
        for i in reveal.rows
    ]
    return Opening(challenge_id=challenge.challenge_id, cr=Vector.of(cr, MatrixDtype.FLOAT64), rows=rows)
