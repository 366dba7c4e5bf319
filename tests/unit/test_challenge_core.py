"""The challenge's shared definitions: derivation (pinned to its written spec), Merkle tree, wire vectors."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from pydantic import ValidationError

from primenet.core.challenge import derive
from primenet.core.challenge.derive import (
    derive_indices,
    derive_matrices,
    derive_values,
    derive_vector,
    philox_key,
    round_to_bfloat16,
    to_float32,
    to_float64,
)
from primenet.core.challenge.merkle import leaf_hash, merkle_proof, merkle_root, merkle_tree, node_hash, verify_proof
from primenet.core.challenge.wire import ChallengeError, MatrixDtype, Vector

pytestmark = pytest.mark.unit

SEED = bytes(range(32))
MASK = (1 << 64) - 1


def philox4x64_10(counter: int, key: tuple[int, int]) -> list[int]:
    """Random123's Philox4x64-10, written from its paper, for counter (counter, 0, 0, 0)."""
    x = [counter, 0, 0, 0]
    k0, k1 = key
    for round_ in range(10):
        if round_:
            k0, k1 = (k0 + 0x9E3779B97F4A7C15) & MASK, (k1 + 0xBB67AE8584CAA73B) & MASK
        p0, p1 = 0xD2E7470EE14C6C93 * x[0], 0xCA5A826395121157 * x[2]
        x = [(p1 >> 64) ^ x[1] ^ k0, p1 & MASK, (p0 >> 64) ^ x[3] ^ k1, p0 & MASK]
    return x


def test_stream_is_philox4x64_10_as_documented() -> None:
    """A non-numpy implementation can follow the docstring: block c (from 1) gives four words in order."""
    key = philox_key(b"A", SEED)
    digest = hashlib.sha256(b"primenet-challenge/1\x00A\x00" + SEED).digest()
    assert key == (int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:16], "little"))
    words = [w for block in (1, 2, 3) for w in philox4x64_10(block, key)]
    expected_f64 = [(w >> 11) * 2.0**-52 - 1 for w in words[:5]]
    assert derive_values(b"A", SEED, 5, MatrixDtype.FLOAT64).tolist() == expected_f64
    halves = [h for w in words for h in (w & 0xFFFFFFFF, w >> 32)]
    expected_f32 = [(h >> 8) * 2.0**-23 - 1 for h in halves[:9]]
    assert derive_values(b"A", SEED, 9, MatrixDtype.FLOAT32).tolist() == expected_f32


def test_derivation_is_deterministic_and_seed_dependent() -> None:
    a1, b1 = derive_matrices(SEED, 64)
    a2, b2 = derive_matrices(SEED.hex(), 64)
    assert np.array_equal(a1, a2)
    assert np.array_equal(b1, b2)
    assert not np.array_equal(a1, b1)
    assert not np.array_equal(a1, derive_matrices(bytes(32), 64)[0])
    assert a1.dtype == np.dtype("<f4")
    assert a1.flags.c_contiguous
    # Pinned: a change of the stream, the mapping or the layout breaks every deployed miner.
    assert hashlib.sha256(a1.tobytes()).hexdigest()[:16] == "85c9b9a3a471a104"


def test_parallel_chunks_equal_one_sequential_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    count = 5 * 8 * 64 + 3  # five chunks of 64 blocks, the last one partial
    monkeypatch.setattr(derive, "_CHUNK_BLOCKS", 64)
    chunked = derive_values(b"B", SEED, count, MatrixDtype.FLOAT32)
    monkeypatch.setattr(derive, "_CHUNK_BLOCKS", 1 << 20)
    assert np.array_equal(chunked, derive_values(b"B", SEED, count, MatrixDtype.FLOAT32))


@pytest.mark.parametrize("dtype", list(MatrixDtype))
def test_values_are_uniform_on_minus_one_one(dtype: MatrixDtype) -> None:
    a, _ = derive_matrices(SEED, 128, dtype)
    values = to_float64(a, dtype)
    assert values.min() >= -1.0
    assert values.max() <= 1.0
    assert abs(values.mean()) < 0.02
    assert abs(values.var() - 1 / 3) < 0.02


def test_half_precision_values_are_the_rounded_float32_values() -> None:
    a32, _ = derive_matrices(SEED, 32, MatrixDtype.FLOAT32)
    a16, _ = derive_matrices(SEED, 32, MatrixDtype.FLOAT16)
    abf, _ = derive_matrices(SEED, 32, MatrixDtype.BFLOAT16)
    assert np.array_equal(a16, a32.astype(np.float16))
    expanded = to_float32(abf, MatrixDtype.BFLOAT16)
    assert np.all(np.abs(expanded - a32) <= 2.0**-8 * np.abs(a32))
    assert len(np.unique(expanded)) > 256  # not an 8-bit integer grid that int8 units could reproduce


def test_bfloat16_rounds_to_nearest_even() -> None:
    values = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -(1 + 2**-8)], dtype=np.float32)
    expected = np.array([1.0, 1.0, 1 + 2**-6, 1 + 2**-7, -1.0], dtype=np.float32)
    assert np.array_equal(to_float32(round_to_bfloat16(values), MatrixDtype.BFLOAT16), expected)


def test_vector_r_is_bounded_away_from_zero() -> None:
    r = derive_vector(SEED, 1000)
    assert np.all((np.abs(r) >= 1) & (np.abs(r) < 2))
    assert 400 < np.sum(r > 0) < 600
    assert np.array_equal(r, derive_vector(SEED.hex(), 1000))


def test_indices_are_distinct_in_range_and_deterministic() -> None:
    rows = derive_indices(SEED, 50, 50)
    assert sorted(rows) == list(range(50))
    assert derive_indices(SEED, 1000, 20) == derive_indices(SEED, 1000, 20)
    assert derive_indices(SEED, 1000, 20) != derive_indices(bytes(32), 1000, 20)
    with pytest.raises(ChallengeError):
        derive_indices(SEED, 10, 11)


def rfc6962_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, recursively: the shape the iterative tree must reproduce."""
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(rfc6962_root(leaves[:split]), rfc6962_root(leaves[split:]))


@pytest.mark.parametrize("size", [*range(1, 18), 31, 33, 100])
def test_every_proof_verifies_and_the_tree_is_rfc6962(size: int) -> None:
    rows = [f"row {i}".encode() for i in range(size)]
    tree = merkle_tree(rows)
    assert tree.root == rfc6962_root(rows) == merkle_root(rows)
    for i, row in enumerate(rows):
        proof = merkle_proof(tree, i)
        assert len(proof) <= (size - 1).bit_length()
        assert verify_proof(tree.root, i, row, proof, size)


@pytest.mark.parametrize("size", [2, 3, 5, 7, 12])
def test_proofs_fail_for_anything_else(size: int) -> None:
    rows = [f"row {i}".encode() for i in range(size)]
    tree = merkle_tree(rows)
    last = size - 1
    proof = merkle_proof(tree, last)
    assert not verify_proof(tree.root, last, b"another row", proof, size)
    assert not verify_proof(tree.root, last, rows[last], [*proof, proof[0]], size)
    assert not verify_proof(tree.root, last, rows[last], proof[:-1], size)
    assert not verify_proof(tree.root, last, rows[last], proof, size + 1)
    assert not verify_proof(tree.root, size, rows[last], proof, size)
    assert not verify_proof(tree.root, -1, rows[last], proof, size)
    for other in range(size - 1):
        assert not verify_proof(tree.root, other, rows[last], proof, size)
        assert not verify_proof(tree.root, other, rows[other], proof, size)
    flipped = bytes([proof[0][0] ^ 1]) + proof[0][1:]
    assert not verify_proof(tree.root, last, rows[last], [flipped, *proof[1:]], size)


def test_leaves_and_nodes_are_domain_separated() -> None:
    """An inner node's preimage presented as a leaf does not hash to the node."""
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert leaf_hash(left + right) != node_hash(left, right)


def test_array_rows_hash_as_their_little_endian_bytes() -> None:
    matrix = np.arange(12, dtype="<f4").reshape(3, 4)
    assert merkle_root(matrix) == merkle_root([row.tobytes() for row in matrix])
    big = np.arange(200 * 1024, dtype="<f4").reshape(200, 1024)  # the threaded path
    assert merkle_root(big) == merkle_root([row.tobytes() for row in big])


@pytest.mark.parametrize("dtype", list(MatrixDtype))
def test_vector_round_trips(dtype: MatrixDtype) -> None:
    a, _ = derive_matrices(SEED, 8, dtype)
    vector = Vector.model_validate_json(Vector.of(a[3], dtype).model_dump_json())
    assert np.array_equal(vector.decode(8), a[3])
    with pytest.raises(ChallengeError):
        vector.decode(9)


def test_vector_refuses_bad_base64() -> None:
    with pytest.raises(ValidationError):
        Vector(dtype=MatrixDtype.FLOAT32, data="not base64!")
