"""The challenge's time bound is about the claimed device (issue 15, item 4).

Before: the allowance was 2 n^3 / (TFLOPS * efficiency) + 100 ns * n^2 + slack, so at large n it was mostly host
time (29 s for an H100 at n = 16384, of which 0.26 s is the multiply) and any large CPU passed a GPU claim. Now the
host allowance is capped (30 ns per element, at most 4 s) and nodes claiming a GPU get n = GPU_POOL_N. Every figure
below comes from the throughput table and the timing model, none from a wall clock: the verifier is handed the
arrival time a CPU would need.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from eth_account import Account

from primenet.core.challenge.wire import GPU_POOL_N, Commitment, MatrixDtype, MinerTimings, OpenedRow, Opening, Vector
from primenet.core.models import ComputeSpecs, GpuDevice
from primenet.validator.challenger import ChallengeClient, claimed_gpu
from primenet.validator.policy import first_rechallenge, max_compute_units, next_rechallenge
from primenet.validator.settings import ValidatorSettings
from primenet.validator.verifier import DEFAULT_TABLE, Reason, Throughput, new_challenge, reveal, verify

H100 = "NVIDIA H100 80GB HBM3"
F32 = MatrixDtype.FLOAT32
# The attacker: a big server CPU sustaining 1 TFLOPS in float32 (100x the table's CPU floor; a 32-core AVX-512
# part), whose host work (deriving A and B, hashing C's rows) runs at the allowance's own rate, 30 ns per element.
BIG_CPU = Throughput(float64=0.5, float32=1.0, float16=1.0, bfloat16=1.0)
BIG_CPU_HOST_NS = 30.0  # per element of C; about 2x faster than numpy on this project's 2-core CI machine


def cpu_seconds(n: int) -> float:
    """Round 1 on BIG_CPU at its full peak (efficiency 1), host work uncapped: the fastest the attacker can be."""
    multiply = 2.0 * n**3 / (BIG_CPU.float32 * 1e12)
    return multiply + BIG_CPU_HOST_NS * 1e-9 * n * n


def h100_allowed(n: int) -> float:
    found = DEFAULT_TABLE.lookup(H100)
    assert found is not None
    assert found[0] == "h100 hbm3"
    return DEFAULT_TABLE.expected_seconds(n, F32, found[1])


def test_the_allowance_is_the_device_plus_a_capped_host_allowance() -> None:
    found = DEFAULT_TABLE.lookup(H100)
    assert found is not None
    policy = DEFAULT_TABLE.policy
    device = DEFAULT_TABLE.device_seconds(GPU_POOL_N, F32, found[1])
    assert device == pytest.approx(2 * GPU_POOL_N**3 / (67e12 * policy.efficiency))  # 0.26 s
    assert (policy.host_ns_per_element, policy.host_cap_s) == (30.0, 4.0)
    assert policy.host_seconds(GPU_POOL_N) == 4.0  # 8.1 s uncapped: the cap binds at the GPU pool size
    assert policy.host_seconds(256) == pytest.approx(30e-9 * 256 * 256)
    assert h100_allowed(GPU_POOL_N) == pytest.approx(device + 4.0 + policy.slack_s)
    # The old model allowed 100 ns per element, uncapped: 26.8 s of host time at this n.
    assert h100_allowed(GPU_POOL_N) < 0.3 * (device + 100e-9 * GPU_POOL_N**2 + policy.slack_s)


def test_a_cpu_is_too_slow_for_a_gpu_claim_at_the_gpu_pool_size_by_the_table() -> None:
    allowed = h100_allowed(GPU_POOL_N)
    taken = cpu_seconds(GPU_POOL_N)
    assert taken > 2 * allowed  # 16.8 s against 6.3 s
    # And the honest H100 keeps a margin: its multiply at full peak plus the capped host work is within bounds.
    found = DEFAULT_TABLE.lookup(H100)
    assert found is not None
    honest = 2.0 * GPU_POOL_N**3 / (found[1].float32 * 1e12) + DEFAULT_TABLE.policy.host_cap_s
    assert honest < allowed


def test_the_verifier_rejects_the_cpu_claiming_an_h100_as_too_slow() -> None:
    """The whole verdict at n = GPU_POOL_N: the commitment arrives when BIG_CPU could have sent it."""
    n = GPU_POOL_N
    issued = new_challenge(n, F32, deadline_s=3600.0, now=1000.0)
    challenge = issued.challenge
    commitment = Commitment(
        challenge_id=challenge.challenge_id,
        seed=challenge.seed,
        n=n,
        dtype=F32,
        root="0" * 64,
        backend="numpy:cpu",
        timings=MinerTimings(derive_s=1.0, matmul_s=1.0, commit_s=1.0),
    )
    zeros = np.zeros(n, dtype=np.float32)
    opening = Opening(
        challenge_id=challenge.challenge_id,
        cr=Vector.of(np.zeros(n), MatrixDtype.FLOAT64),
        rows=[OpenedRow(index=i, values=Vector.of(zeros, F32), proof=[]) for i in reveal(issued).rows],
    )
    arrived = challenge.issued_at + cpu_seconds(n)
    verdict = verify(issued, commitment, opening, H100, committed_at=arrived, now=arrived + 1.0)
    assert verdict.reason is Reason.TOO_SLOW, verdict
    assert verdict.figures["expected_s"] == pytest.approx(h100_allowed(n))
    assert verdict.figures["elapsed_s"] > 2 * verdict.figures["expected_s"]
    assert "h100 hbm3" in verdict.detail


def test_nodes_claiming_a_gpu_get_the_gpu_pool_size_by_default() -> None:
    settings = ValidatorSettings()
    assert settings.gpu_challenge_n == GPU_POOL_N == 16384
    client = ChallengeClient.from_settings(Account.create(), settings, chain_id=31337)
    gpu = ComputeSpecs(gpus=[GpuDevice(index=0, model=H100, memory_mib=81559)])
    assert client.size_for(claimed_gpu(gpu)) == GPU_POOL_N
    assert client.size_for(claimed_gpu(ComputeSpecs())) == settings.challenge_n == 256
    assert client.issue(client.size_for(claimed_gpu(gpu))).challenge.n == GPU_POOL_N


def test_compute_units_are_bounded_by_the_specs() -> None:
    gpus = [GpuDevice(index=i, model=H100, memory_mib=81559) for i in range(8)]
    assert max_compute_units(ComputeSpecs()) == 1
    assert max_compute_units(ComputeSpecs(gpus=gpus[:1])) == 1000
    assert max_compute_units(ComputeSpecs(gpus=gpus)) == 8000


def test_re_challenges_come_after_the_interval_at_a_random_time_within_the_jitter() -> None:
    rng = random.Random(7)
    times = [next_rechallenge(1000.0, 21600.0, 3600.0, rng) for _ in range(200)]
    assert all(1000.0 + 21600.0 <= t <= 1000.0 + 21600.0 + 3600.0 for t in times)
    assert len(set(times)) == 200  # not predictable from one to the next
    first = [first_rechallenge(1000.0, 21600.0, 3600.0, rng) for _ in range(200)]
    assert all(1000.0 <= t <= 1000.0 + 25200.0 for t in first)
    settings = ValidatorSettings()
    assert (settings.rechallenge_interval_s, settings.rechallenge_jitter_s) == (21600.0, 3600.0)
