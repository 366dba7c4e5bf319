"""The seeded derivation of A, B, r and the opened rows (the stream is specified in the package docstring)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import NDArray

from primenet.core.challenge.wire import DTYPES, PROTOCOL, ChallengeError, Float64Array, Matrix, MatrixDtype

# Philox blocks per parallel generation chunk: 2^15 blocks = 1 MiB of words, enough to amortise the thread hop.
_CHUNK_BLOCKS = 1 << 15
# Rows of a matrix converted to float64 at a time: bounds the temporary to about 32 MiB.
_BLOCK_ELEMENTS = 1 << 22


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
