"""Proof-of-compute challenge (validator <-> miner): what both sides share, in three modules.

`wire` holds the messages and dtypes, `derive` the seeded matrices, vector and row indices, `merkle` the
commitment over C's rows.

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
     their Merkle proofs. The validator's checks and their reasons are in `primenet.validator.verifier`.

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
