"""The challenge's wire models and dtypes (protocol and sizes: see the package docstring)."""

from __future__ import annotations

import base64
import enum
import itertools
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, field_validator

from primenet.core.errors import PrimenetError
from primenet.core.models import Seconds, UnixTime, Wire

PROTOCOL: Literal["primenet-challenge/1"] = "primenet-challenge/1"
MAX_N = 16384
# The size for nodes that claim a GPU (the validator's `gpu_challenge_n` default): large enough that the device's
# n^3 multiply, not the host's O(n^2) work (derivation, hashing), decides whether a claimed GPU is fast enough.
GPU_POOL_N = 16384
MAX_OPENED_ROWS = 1024
MAX_PROOF_LENGTH = 64
# Base64 length of the largest vector (MAX_N float64 values).
_MAX_VECTOR_CHARS = 4 * -(-MAX_N * 8 // 3)

Hex32 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="32 bytes, lowercase hex")]
Matrix = NDArray[Any]
Float64Array = NDArray[np.float64]


class ChallengeError(PrimenetError, ValueError):
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
    issued_at: UnixTime = Field(description="validator clock, unix seconds")
    deadline_s: float = Field(gt=0, le=3600, description="the commitment must reach the validator this soon")

    @property
    def deadline(self) -> float:
        return self.issued_at + self.deadline_s


class MinerTimings(Wire):
    """The miner's own account of round 1 (informational: the validator times the round on its own clock)."""

    derive_s: Seconds
    matmul_s: Seconds = Field(description="host->device copy, C = A.B, device->host copy")
    commit_s: Seconds = Field(description="leaf hashing and the Merkle tree")


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
