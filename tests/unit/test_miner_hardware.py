"""Hardware detection: every GPU through (fake) NVML with correct units, the visible-devices filter, no-GPU hosts,
and CPU, RAM and storage from the real /proc files and filesystem."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fakes.nvml import A10_BYTES, H100_BYTES, FakeGpu, FakeNvml, mixed_host
from primenet.core.models import ComputeSpecs, GpuDevice
from primenet.miner.hardware import (
    VisibleDevicesError,
    compute_units,
    cuda_version_text,
    detect_cpu,
    detect_gpus,
    detect_ram_mib,
    detect_specs,
    parse_visible_devices,
    storage_free_gb,
)

pytestmark = pytest.mark.unit


def test_every_gpu_is_reported_with_memory_in_mib() -> None:
    nvml = mixed_host()
    inventory = detect_gpus(nvml=nvml)
    assert [gpu.model for gpu in inventory.gpus] == ["NVIDIA H100 80GB HBM3", "NVIDIA A10", "NVIDIA H100 80GB HBM3"]
    assert [gpu.index for gpu in inventory.gpus] == [0, 1, 2]
    # Bytes to MiB (the reference divided by 1024 once and called KiB "MB").
    assert inventory.gpus[0].memory_mib == H100_BYTES // 2**20 == 81559
    assert inventory.gpus[1].memory_mib == A10_BYTES // 2**20 == 23028
    assert inventory.gpus[1].compute_capability == "8.6"
    assert inventory.gpus[2].uuid == "GPU-33333333-aaaa-bbbb-cccc-000000000000"
    assert inventory.gpus[2].pci_bus_id == "00000000:86:00.0"
    assert (inventory.driver_version, inventory.cuda_version) == ("550.54.15", "12.4")
    assert inventory.problems == []
    assert nvml.shutdowns == 1
    assert not nvml.initialised


@pytest.mark.parametrize(
    ("visible", "indices"),
    [
        (None, [0, 1, 2]),
        ("all", [0, 1, 2]),
        ("0,2", [0, 2]),
        ("2,0", [2, 0]),  # CUDA order: the filter's order
        ("1, 1", [1]),
        ("GPU-22222222-aaaa-bbbb-cccc-000000000000", [1]),
        ("GPU-3333,0", [2, 0]),  # a unique UUID prefix, like CUDA_VISIBLE_DEVICES
        ("", []),
        ("none", []),
    ],
)
def test_visible_devices_filter(visible: str | None, indices: list[int]) -> None:
    assert [gpu.index for gpu in detect_gpus(visible, nvml=mixed_host()).gpus] == indices


@pytest.mark.parametrize("visible", ["3", "GPU-99", "GPU-"])
def test_a_filter_entry_that_names_no_single_gpu_is_refused(visible: str) -> None:
    nvml = mixed_host()
    with pytest.raises(VisibleDevicesError, match="visible device"):
        detect_gpus(visible, nvml=nvml)
    assert nvml.shutdowns == 1


def test_missing_nvml_library_is_a_reported_state() -> None:
    inventory = detect_gpus(nvml=FakeNvml(library_missing=True))
    assert inventory.gpus == []
    assert inventory.driver_version is None
    assert inventory.problems == ["NVML library not found: no NVIDIA driver on this host"]


def test_real_pynvml_on_this_host_does_not_crash() -> None:
    inventory = detect_gpus()  # the real NVML: absent on CI machines, present on GPU hosts
    if Path("/dev/nvidiactl").exists():
        assert inventory.gpus
        assert inventory.driver_version
    else:
        assert inventory.gpus == []
        assert inventory.problems


def test_no_devices_and_unreadable_devices_are_reported() -> None:
    assert detect_gpus(nvml=FakeNvml()).problems == ["NVML reports no GPU"]
    nvml = mixed_host()
    nvml.gpus[1].lost = True
    nvml.gpus[2].unsupported = {"nvmlDeviceGetCudaComputeCapability", "nvmlDeviceGetPciInfo"}
    inventory = detect_gpus(nvml=nvml)
    assert [gpu.index for gpu in inventory.gpus] == [0, 2]
    assert inventory.problems == ["GPU 1 unreadable: GPU is lost"]
    # Optional fields a GPU does not support are None, the GPU is still reported.
    assert inventory.gpus[1].compute_capability is None
    assert inventory.gpus[1].pci_bus_id is None
    assert inventory.gpus[1].memory_mib == 81559


def test_cuda_version_encoding() -> None:
    assert cuda_version_text(12040) == "12.4"
    assert cuda_version_text(11080) == "11.8"
    assert cuda_version_text(12100) == "12.10"


def test_visible_devices_parsing() -> None:
    assert parse_visible_devices(None) is None
    assert parse_visible_devices(" ALL ") is None
    assert parse_visible_devices("") == []
    assert parse_visible_devices("0, 2,,0") == ["0", "2"]


def test_cpu_and_ram_from_proc_files(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654 96-Core Processor\n\n"
        "processor\t: 1\nmodel name\t: AMD EPYC 9654 96-Core Processor\n"
    )
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       2113389180 kB\nMemFree:        1000 kB\n")
    model, cores = detect_cpu(cpuinfo)
    assert model == "AMD EPYC 9654 96-Core Processor"
    assert cores == len(os.sched_getaffinity(0))
    assert detect_ram_mib(meminfo) == 2113389180 // 1024 == 2063856  # KiB to MiB, not bytes truncated
    assert detect_ram_mib(tmp_path / "missing") == 0


def test_this_hosts_cpu_ram_and_storage(tmp_path: Path) -> None:
    model, cores = detect_cpu()
    assert cores >= 1
    assert isinstance(model, str)
    assert detect_ram_mib() > 64
    free = shutil.disk_usage(tmp_path).free / 1e9
    # A path not created yet is measured on the filesystem that will hold it.
    assert storage_free_gb(tmp_path / "not" / "yet") == pytest.approx(free, rel=0.01)


def test_specs_and_compute_units() -> None:
    specs = detect_specs(Path("/tmp/primenet-miner"), "0,1", nvml=mixed_host())
    assert isinstance(specs, ComputeSpecs)
    assert specs.gpu_count == 2
    assert specs.storage_path == "/tmp/primenet-miner"
    assert specs.storage_free_gb > 0
    assert ComputeSpecs.model_validate_json(specs.model_dump_json()) == specs  # a valid wire value
    assert compute_units(specs) == 2000
    assert compute_units(detect_specs(Path("/tmp"), nvml=FakeNvml(library_missing=True))) == 1


def test_one_gpu_record_exactly() -> None:
    gpu = FakeGpu("NVIDIA L4", 23_580_639_232, "GPU-44", "00000000:01:00.0", capability=(8, 9))
    inventory = detect_gpus(nvml=FakeNvml(gpus=[gpu]))
    assert inventory.gpus == [
        GpuDevice(
            index=0,
            model="NVIDIA L4",
            memory_mib=22488,
            uuid="GPU-44",
            pci_bus_id="00000000:01:00.0",
            compute_capability="8.9",
        )
    ]
