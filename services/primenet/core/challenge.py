"""Proof-of-compute challenge (validator <-> miner): the wire models and the pure functions both sides share.

The reference validator's challenge was a 3x3 matmul that any CPU answers (reference §7, §11.15). This one makes
the miner multiply two n x n matrices, commit to the product, and then prove, at a cost to the validator of
O(n^2 + m n^2) instead of O(n^3), that the committed product is right and arrived fast enough for its GPU.

Protocol (version `primenet-challenge/1`):
  1. The validator sends a `Challenge`: id, seed (32 random bytes, hex), n, dtype, issue time, deadline.
  2. The miner derives A and B from the seed (`derive_matrices`), computes C = A.B, and answers with a
     `Commitment`: the Merkle root over C's rows, echoing the id and seed, plus its own timings (informational).
  3. Only then does the validator send a `Reveal`: a fresh 32-byte secret, kept until now, from which both sides
     derive r (`derive_vector`), and the k row indices to open (`derive_indices`, listed in the reveal).
  4. The miner answers with an `Opening`: y = C.r (computed in float64 from its committed C) and the k rows with
     their Merkle proofs. The validator's checks and their reasons are in `primenet.validator.challenge`.

Derivation (portable; numpy is one implementation, any other must reproduce it bit for bit):
  - Stream S(label, seed): Philox4x64-10 (Random123) with key = the first 16 bytes of
    sha256(b"primenet-challenge/1" 0x00 label 0x00 seed) read as two little-endian uint64 (k0, k1), counter
    starting at 0 and incremented before each block; block c (c = 1, 2, ...) yields four uint64 words x0..x3
    in order. This is numpy's `Philox(key=(k0, k1))` raw stream; `Philox(key, counter=m)` starts at word 4m,
    which is how the matrices are generated in parallel chunks.
  - float64 values: one uint64 word w each, v = (w >> 11) * 2^-52 - 1, uniform on [-1, 1), exact in float64.
  - float32 values: one 32-bit word each, the stream read as little-endian uint32 (low half of each uint64
    first): v = (w >> 8) * 2^-23 - 1, uniform on [-1, 1), exact in float32.
  - float16 / bfloat16: the float32 value rounded to nearest, ties to even. Values are not a coarse integer grid
    (unlike m * 2^-7), so int8 or fp8 units cannot reproduce them exactly.
  - A = the first n^2 values of S("A", seed) in row-major order; B likewise from S("B", seed).
  - r: n float64 from S("r", secret): r_j = (-1)^(w & 1) * (1 + (w >> 12) * 2^-52), so |r_j| in [1, 2).
    Bounded away from 0 so a single wrong element of C always moves C.r by at least its own error.
  - Row indices: a partial Fisher-Yates shuffle of 0..n-1 driven by S("rows", secret): for t < k,
    j = t + (w_t mod (n - t)), swap; the first k entries (modulo bias <= n / 2^64, negligible).
  GPU miners derive on the CPU with numpy and copy A and B to the device: an O(n^2) host cost (a few ns per
  value, spread over the cores in chunks) that the validator's time model counts as host work.

Merkle commitment over the n rows of C:
  - A row's bytes: its n values in the declared dtype, little-endian (bfloat16: the upper 16 bits of the
    float32 pattern), no header. leaf = sha256(0x00 || row bytes); inner node = sha256(0x01 || left || right)
    (domain separation: an inner node can never be passed off as a leaf).
  - A level with an odd count promotes its last node unchanged (no duplication, so no CVE-2012-2459-style
    mutation); the result equals the RFC 6962 tree hash. One leaf: root = that leaf's hash.
  - A proof lists the sibling hashes from the leaf upward, skipping promoted levels; its length and every
    left/right side follow from (index, n), so a proof for row i never verifies as row j.

Accuracy contract (what the validator's tolerance assumes; see the validator module for the bound):
  C must equal A.B computed with products accumulated in at least float32 (float64 for float64), in any
  summation order, rounded once to the declared dtype. float32 must not use TF32 or bf16 tensor-core inputs
  (torch: `allow_tf32 = False`); float16/bfloat16 must accumulate in float32 (torch:
  `allow_fp16/bf16_reduced_precision_reduction = False`). y = C.r is computed in float64 from the committed C.

Wire sizes: Challenge/Commitment/Reveal < 1 KiB; the Opening carries y (8n bytes) and k rows (k n itemsize bytes),
base64 encoded (x4/3): about 3 MB for n = 4096, k = 136, float32; 12 MB at the largest n (16384).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import itertools
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, field_validator

from primenet.core.models import Wire

PROTOCOL: Literal["primenet-challenge/1"] = "primenet-challenge/1"
MAX_N = 16384
MAX_OPENED_ROWS = 1024
MAX_PROOF_LENGTH = 64
# Base64 length of the largest vector (MAX_N float64 values).
_MAX_VECTOR_CHARS = 4 * -(-MAX_N * 8 // 3)
# Philox blocks per parallel generation chunk: 2^15 blocks = 1 MiB of words, enough to amortise the thread hop.
_CHUNK_BLOCKS = 1 << 15
# Rows of a matrix converted to float64 at a time: bounds the temporary to about 32 MiB.
_BLOCK_ELEMENTS = 1 << 22

Hex32 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="32 bytes, lowercase hex")]
Matrix = NDArray[Any]
Float64Array = NDArray[np.float64]


class ChallengeError(ValueError):
    """A challenge message that cannot be answered or checked as given (wrong id, index, length, encoding)."""


class MatrixDtype(enum.StrEnum):
    FLOAT64 = "float64"
    FLOAT32 = "float32"
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"


@dataclass(frozen=True)
class DtypeInfo:
    storage: np.dtype[Any]  # little-endian wire/storage format; bfloat16 is held as its uint16 bit pattern
    unit_roundoff: float  # u of the declared format: 2^-p with p significand bits
    accumulate_roundoff: float  # u of the accumulation the contract requires


_U64 = 2.0**-53
_U32 = 2.0**-24
DTYPES: dict[MatrixDtype, DtypeInfo] = {
    MatrixDtype.FLOAT64: DtypeInfo(np.dtype("<f8"), _U64, _U64),
    MatrixDtype.FLOAT32: DtypeInfo(np.dtype("<f4"), _U32, _U32),
    MatrixDtype.FLOAT16: DtypeInfo(np.dtype("<f2"), 2.0**-11, _U32),
    MatrixDtype.BFLOAT16: DtypeInfo(np.dtype("<u2"), 2.0**-8, _U32),
}


# ---------------------------------------------------------------------------------------------- wire models


class Vector(Wire):
    """A 1-D array on the wire: base64 (RFC 4648, padded, no newlines) of its little-endian values."""

    dtype: MatrixDtype
    data: str = Field(max_length=_MAX_VECTOR_CHARS)

    @field_validator("data")
    @classmethod
    def _is_base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except ValueError as error:
            raise ValueError("data is not base64") from error
        return value

    @classmethod
    def of(cls, values: Matrix, dtype: MatrixDtype) -> Vector:
        raw = np.ascontiguousarray(values, dtype=DTYPES[dtype].storage).tobytes()
        return cls(dtype=dtype, data=base64.b64encode(raw).decode("ascii"))

    def decode(self, length: int) -> Matrix:
        """The values in storage format; ChallengeError unless there are exactly `length` of them."""
        raw = base64.b64decode(self.data, validate=True)
        storage = DTYPES[self.dtype].storage
        if len(raw) != length * storage.itemsize:
            raise ChallengeError(f"expected {length} {self.dtype} values, got {len(raw)} bytes")
        return np.frombuffer(raw, dtype=storage)


class Challenge(Wire):
    """Round 1, validator -> miner."""

    protocol: Literal["primenet-challenge/1"] = PROTOCOL
    challenge_id: Hex32 = Field(description="single-use nonce; every answer echoes it")
    seed: Hex32 = Field(description="A and B are derived from it (derive_matrices)")
    n: int = Field(ge=1, le=MAX_N)
    dtype: MatrixDtype = MatrixDtype.FLOAT32
    issued_at: float = Field(ge=0, description="validator clock, unix seconds")
    deadline_s: float = Field(gt=0, le=3600, description="the commitment must reach the validator this soon")

    @property
    def deadline(self) -> float:
        return self.issued_at + self.deadline_s


class MinerTimings(Wire):
    """The miner's own account of round 1 (informational: the validator times the round on its own clock)."""

    derive_s: float = Field(ge=0)
    matmul_s: float = Field(ge=0, description="host->device copy, C = A.B, device->host copy")
    commit_s: float = Field(ge=0, description="leaf hashing and the Merkle tree")


class Commitment(Wire):
    """Round 1 answer, miner -> validator."""

    challenge_id: Hex32
    seed: Hex32 = Field(description="echo of the challenge's seed: the product is for this one")
    n: int = Field(ge=1, le=MAX_N)
    dtype: MatrixDtype
    root: Hex32 = Field(description="Merkle root over the rows of C")
    backend: str = Field(max_length=256, description="what computed C, e.g. torch:NVIDIA H100 80GB HBM3")
    timings: MinerTimings


class Reveal(Wire):
    """Round 2, validator -> miner; sent only after the commitment arrived."""

    challenge_id: Hex32
    secret: Hex32 = Field(description="r = derive_vector(secret, n); fresh, unknown to the miner until now")
    rows: list[Annotated[int, Field(ge=0, lt=MAX_N)]] = Field(min_length=1, max_length=MAX_OPENED_ROWS)
    deadline_s: float = Field(
        gt=0, le=3600, description="the opening must reach the validator this soon after the commitment did"
    )

    @field_validator("rows")
    @classmethod
    def _increasing(cls, rows: list[int]) -> list[int]:
        if any(b <= a for a, b in itertools.pairwise(rows)):
            raise ValueError("rows must be strictly increasing")
        return rows


class OpenedRow(Wire):
    index: int = Field(ge=0, lt=MAX_N)
    values: Vector = Field(description="row `index` of C, in the challenge's dtype")
    proof: list[Hex32] = Field(max_length=MAX_PROOF_LENGTH, description="Merkle siblings, leaf upward")


class Opening(Wire):
    """Round 2 answer, miner -> validator."""

    challenge_id: Hex32
    cr: Vector = Field(description="y = C.r, n float64 values")
    rows: list[OpenedRow] = Field(max_length=MAX_OPENED_ROWS, description="the revealed rows, in their order")


def opening_size_bytes(n: int, dtype: MatrixDtype, rows: int) -> int:
    """An upper bound on an Opening's JSON size, for the body limit of the route that receives it."""

    def base64_length(raw: int) -> int:
        return 4 * -(-raw // 3)

    proof = (n - 1).bit_length() * (64 + 3)  # hex digest, quotes, comma
    per_row = base64_length(n * DTYPES[dtype].storage.itemsize) + proof + 128
    return base64_length(8 * n) + rows * per_row + 512


# ---------------------------------------------------------------------------------------------- derivation


def _seed_bytes(seed: bytes | str) -> bytes:
    return bytes.fromhex(seed) if isinstance(seed, str) else seed


def philox_key(label: bytes, seed: bytes | str) -> tuple[int, int]:
    digest = hashlib.sha256(PROTOCOL.encode() + b"\x00" + label + b"\x00" + _seed_bytes(seed)).digest()
    return int.from_bytes(digest[0:8], "little"), int.from_bytes(digest[8:16], "little")


def _raw_words(key: tuple[int, int], first_block: int, words: int, width: int) -> Matrix:
    """`words` words of `width` bits starting at block `first_block` (4 uint64 words per block)."""
    per_block = 4 * (64 // width)
    blocks = -(-words // per_block)
    raw = np.random.Philox(key=np.array(key, dtype=np.uint64), counter=first_block).random_raw(4 * blocks)
    little = np.asarray(raw, dtype="<u8")
    return (little.view("<u4") if width == 32 else little)[:words]


def _fill(out: Matrix, width: int, key: tuple[int, int], convert: Callable[[Matrix, Matrix], None]) -> None:
    """Fill `out` (flat) with converted stream words, chunk by chunk on a thread pool (numpy drops the GIL)."""
    per_chunk = _CHUNK_BLOCKS * 4 * (64 // width)
    starts = range(0, out.size, per_chunk)

    def work(start: int) -> None:
        stop = min(start + per_chunk, out.size)
        convert(_raw_words(key, start // per_chunk * _CHUNK_BLOCKS, stop - start, width), out[start:stop])

    if len(starts) == 1:
        work(0)
        return
    with ThreadPoolExecutor(max_workers=min(len(starts), os.cpu_count() or 1)) as pool:
        list(pool.map(work, starts))


def _to_f64(words: Matrix, out: Matrix) -> None:
    out[:] = words >> np.uint64(11)
    out *= 2.0**-52
    out -= 1.0


def _to_f32(words: Matrix, out: Matrix) -> None:
    np.multiply(words >> np.uint32(8), np.float32(2.0**-23), out=out, casting="unsafe")
    out -= np.float32(1.0)


def round_to_bfloat16(values: NDArray[np.float32]) -> NDArray[np.uint16]:
    """Round float32 to bfloat16 (nearest, ties to even), as the uint16 bit pattern. Finite input only."""
    bits = np.ascontiguousarray(values, dtype="<f4").view("<u4")
    rounded = bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))
    return np.asarray(rounded >> np.uint32(16), dtype="<u2")


def from_float32(values: NDArray[np.float32], dtype: MatrixDtype) -> Matrix:
    """float32 values in the storage format of `dtype`, rounded to nearest-even once."""
    if dtype is MatrixDtype.BFLOAT16:
        return round_to_bfloat16(values)
    return values.astype(DTYPES[dtype].storage)


def to_float32(values: Matrix, dtype: MatrixDtype) -> NDArray[np.float32]:
    """Exact for float32/float16/bfloat16 storage (each is a subset of float32)."""
    if dtype is MatrixDtype.BFLOAT16:
        return (values.astype("<u4") << np.uint32(16)).view("<f4")
    return values.astype(np.float32)


def to_float64(values: Matrix, dtype: MatrixDtype) -> Float64Array:
    """Exact for every dtype."""
    if dtype is MatrixDtype.BFLOAT16:
        return to_float32(values, dtype).astype(np.float64)
    return values.astype(np.float64)


def derive_values(label: bytes, seed: bytes | str, count: int, dtype: MatrixDtype) -> Matrix:
    """The first `count` values of stream S(label, seed) in `dtype` storage (see the module docstring)."""
    key = philox_key(label, seed)
    if dtype is MatrixDtype.FLOAT64:
        out64 = np.empty(count, dtype="<f8")
        _fill(out64, 64, key, _to_f64)
        return out64
    out32 = np.empty(count, dtype="<f4")
    _fill(out32, 32, key, _to_f32)
    return out32 if dtype is MatrixDtype.FLOAT32 else from_float32(out32, dtype)


def derive_matrices(seed: bytes | str, n: int, dtype: MatrixDtype = MatrixDtype.FLOAT32) -> tuple[Matrix, Matrix]:
    """A and B (n x n, C-contiguous, storage format of `dtype`) for a challenge seed."""
    a = derive_values(b"A", seed, n * n, dtype).reshape(n, n)
    b = derive_values(b"B", seed, n * n, dtype).reshape(n, n)
    return a, b


def derive_vector(secret: bytes | str, n: int) -> Float64Array:
    """r for Freivalds' check: n float64 with |r_j| in [1, 2), random signs."""
    words = _raw_words(philox_key(b"r", secret), 0, n, 64)
    magnitude = (words >> np.uint64(12)).astype(np.float64) * 2.0**-52 + 1.0
    sign = 1.0 - 2.0 * (words & np.uint64(1)).astype(np.float64)
    return np.asarray(sign * magnitude, dtype=np.float64)


def derive_indices(secret: bytes | str, n: int, k: int) -> list[int]:
    """k distinct rows in 0..n-1, in draw order (the validator re-checks a prefix of them in full)."""
    if not 1 <= k <= n:
        raise ChallengeError(f"cannot draw {k} rows out of {n}")
    words = _raw_words(philox_key(b"rows", secret), 0, k, 64).tolist()
    order = list(range(n))
    for t, word in enumerate(words):
        j = t + int(word) % (n - t)
        order[t], order[j] = order[j], order[t]
    return order[:k]


def matvec64(matrix: Matrix, dtype: MatrixDtype, vector: Float64Array) -> Float64Array:
    """matrix . vector in float64 (exact inputs, float64 sums), a block of rows at a time to bound memory."""
    rows = matrix.shape[0]
    step = max(1, _BLOCK_ELEMENTS // max(1, matrix.shape[1]))
    out = np.empty(rows, dtype=np.float64)
    for start in range(0, rows, step):
        out[start : start + step] = to_float64(matrix[start : start + step], dtype) @ vector
    return out


# ---------------------------------------------------------------------------------------------- Merkle tree

_LEAF = b"\x00"
_NODE = b"\x01"
# Rows hashed per thread task; hashlib drops the GIL for buffers over 2 KiB, so large rows hash in parallel.
_HASH_BATCH = 64


def leaf_hash(row: bytes | memoryview | Matrix) -> bytes:
    digest = hashlib.sha256(_LEAF)
    digest.update(np.ascontiguousarray(row).data if isinstance(row, np.ndarray) else row)
    return digest.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


@dataclass(frozen=True)
class MerkleTree:
    levels: tuple[tuple[bytes, ...], ...]  # levels[0]: leaf hashes; levels[-1]: (root,)

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    @property
    def leaf_count(self) -> int:
        return len(self.levels[0])


def tree_from_leaf_hashes(leaves: Sequence[bytes]) -> MerkleTree:
    if not leaves:
        raise ChallengeError("a Merkle tree needs at least one leaf")
    levels = [tuple(leaves)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        above = [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        if len(below) % 2:
            above.append(below[-1])  # promoted unchanged
        levels.append(tuple(above))
    return MerkleTree(tuple(levels))


def hash_rows(matrix: Matrix) -> list[bytes]:
    """Leaf hashes of a 2-D C-contiguous little-endian array's rows (threaded when the rows are large)."""
    rows = np.ascontiguousarray(matrix)
    if rows.shape[0] <= _HASH_BATCH or rows[0].nbytes < 4096:
        return [leaf_hash(row) for row in rows]

    def batch(start: int) -> list[bytes]:
        return [leaf_hash(row) for row in rows[start : start + _HASH_BATCH]]

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return [h for part in pool.map(batch, range(0, rows.shape[0], _HASH_BATCH)) for h in part]


def merkle_tree(rows: Matrix | Iterable[bytes]) -> MerkleTree:
    """The tree over rows given as a 2-D storage array or as their byte strings."""
    if isinstance(rows, np.ndarray):
        return tree_from_leaf_hashes(hash_rows(rows))
    return tree_from_leaf_hashes([leaf_hash(row) for row in rows])


def merkle_root(rows: Matrix | Iterable[bytes]) -> bytes:
    return merkle_tree(rows).root


def merkle_proof(tree: MerkleTree, index: int) -> list[bytes]:
    if not 0 <= index < tree.leaf_count:
        raise ChallengeError(f"leaf {index} is not in a tree of {tree.leaf_count}")
    proof = []
    for level in tree.levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):  # else: the last node of an odd level, promoted without a sibling
            proof.append(level[sibling])
        index //= 2
    return proof


def verify_proof(root: bytes, index: int, row: bytes | memoryview | Matrix, proof: Sequence[bytes], n: int) -> bool:
    """Whether `row` is leaf `index` of the n-leaf tree with this root. The shape follows from (index, n)."""
    if not 0 <= index < n:
        return False
    node = leaf_hash(row)
    used = 0
    size = n
    while size > 1:
        if index % 2 or index + 1 < size:
            if used == len(proof):
                return False
            sibling = proof[used]
            used += 1
            node = node_hash(sibling, node) if index % 2 else node_hash(node, sibling)
        index //= 2
        size = (size + 1) // 2
    return used == len(proof) and node == root
