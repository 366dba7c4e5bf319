"""The pool requirements language: parsing, alternatives, and clear errors."""

from __future__ import annotations

import pytest

from primenet.core.models import ComputeSpecs, GpuDevice
from primenet.core.requirements import RequirementsError, parse


def specs(*models: tuple[str, int], cores: int = 16, ram_mib: int = 128_000, free_gb: float = 900) -> ComputeSpecs:
    return ComputeSpecs(
        gpus=[GpuDevice(index=i, model=m, memory_mib=mem) for i, (m, mem) in enumerate(models)],
        cpu_cores=cores,
        ram_mib=ram_mib,
        storage_free_gb=free_gb,
    )


H100 = ("NVIDIA H100 80GB HBM3", 81559)
A10 = ("NVIDIA A10", 23028)


def test_empty_requires_nothing() -> None:
    assert parse("").unmet(specs()) == []
    assert parse(" ; ").unmet(specs()) == []


def test_exact_count_model_and_memory() -> None:
    req = parse("gpu:count=2;gpu:model=h100;gpu:memory_mib=80000")
    assert req.unmet(specs(H100, H100)) == []
    assert req.unmet(specs(H100, A10)) == ["needs exactly 2 matching GPU(s), has 1"]
    assert req.unmet(specs(H100, H100, H100)) == ["needs exactly 2 matching GPU(s), has 3"]


def test_model_match_ignores_case_spaces_and_separators() -> None:
    assert parse("gpu:model=h100_80gb").unmet(specs(H100)) == []
    assert parse("gpu:model=A100,H-100").unmet(specs(H100)) == []


def test_alternatives_are_ored() -> None:
    req = parse("gpu:count=8;gpu:model=H100;gpu:count=1;gpu:model=A10")
    assert req.unmet(specs(A10)) == []
    problems = req.unmet(specs(H100))
    assert len(problems) == 1
    assert "needs exactly 8" in problems[0]
    assert "needs exactly 1" in problems[0]


def test_host_minima_and_reference_aliases() -> None:
    req = parse("cpu:cores=32;ram_mb=256000;storage_gb=1000;gpu:memory_mb=20000")
    assert req.unmet(specs(A10)) == [
        "needs 32 CPU cores, has 16",
        "needs 256000 MiB RAM, has 128000",
        "needs 1000 GB free storage, has 900.0",
    ]


def test_a_gpu_property_without_a_count_implies_one_gpu() -> None:
    assert parse("gpu:compute_capability=8.0").unmet(specs()) == ["needs at least 1 matching GPU(s), has 0"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gpu:colour=red", "unknown key 'gpu:colour'"),
        ("gpu:count", "is not key=value"),
        ("gpu:count=two", "is not a whole number"),
        ("ram_mib=-1", "must not be negative"),
        ("http://default.pool.data", "is not key=value"),
    ],
)
def test_errors_are_errors_not_silence(text: str, message: str) -> None:
    with pytest.raises(RequirementsError, match=message):
        parse(text)
