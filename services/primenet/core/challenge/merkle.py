"""The Merkle commitment over C's rows (leaf and node hashing, proofs: see the package docstring)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from primenet.core.challenge.wire import ChallengeError, Matrix

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
