"""What this node offers: every visible GPU (through NVML), CPU, RAM and storage, as `core.models.ComputeSpecs`.

Fixes the reference's weaknesses: all devices are enumerated (not only device 0), memory is converted from
bytes to MiB (not KiB reported as MB), and a host without NVIDIA driver is a reported state, not a crash.
NVML is reached only through the `nvml` argument (the real `pynvml` module by default), which is the one
place tests put a fake.
"""

from __future__ import annotations

import os
import platform
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pynvml

from primenet.core.errors import PrimenetError
from primenet.core.models import ComputeSpecs, GpuDevice

MIB = 1024 * 1024
GB = 1000**3
# Compute units per GPU: the reference's rule (HEAD worker), kept so pools' compute limits mean the same here.
UNITS_PER_GPU = 1000


class VisibleDevicesError(PrimenetError, ValueError):
    """An entry of the visible-devices filter names no GPU of this host."""


@dataclass(frozen=True)
class GpuInventory:
    """The visible GPUs and versions, plus why there are none or fewer than expected (empty when all is well)."""

    gpus: list[GpuDevice] = field(default_factory=list)
    driver_version: str | None = None
    cuda_version: str | None = None
    problems: list[str] = field(default_factory=list)


def _text(value: str | bytes) -> str:
    """NVML strings are `str` in recent nvidia-ml-py and `bytes` in old releases."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _optional(call: Any, *args: Any) -> Any:
    """A field that some GPUs or drivers do not report (NVML_ERROR_NOT_SUPPORTED) is None, not a failure."""
    try:
        return call(*args)
    except pynvml.NVMLError:
        return None


def cuda_version_text(version: int) -> str:
    """NVML encodes the CUDA driver version as 1000*major + 10*minor: 12040 is 12.4."""
    return f"{version // 1000}.{version % 1000 // 10}"


def parse_visible_devices(value: str | None) -> list[str] | None:
    """`"0,2"` or UUIDs like CUDA_VISIBLE_DEVICES; None or "all": every GPU; "" or "none": no GPU."""
    if value is None or value.strip().lower() == "all":
        return None
    if value.strip().lower() in ("", "none", "void"):
        return []
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    return list(dict.fromkeys(entries))  # a GPU named twice is still one GPU


def select_visible(gpus: Sequence[GpuDevice], visible: list[str] | None) -> list[GpuDevice]:
    """Keep the GPUs the filter names, in the filter's order; an index or a unique UUID prefix names a GPU."""
    if visible is None:
        return list(gpus)
    chosen: list[GpuDevice] = []
    for entry in visible:
        if entry.isdigit():
            matches = [gpu for gpu in gpus if gpu.index == int(entry)]
        else:
            matches = [gpu for gpu in gpus if gpu.uuid is not None and gpu.uuid.startswith(entry)]
        if len(matches) != 1:
            reason = "matches no GPU" if not matches else "matches several GPUs"
            raise VisibleDevicesError(f"visible device {entry!r} {reason} (GPUs: {[g.index for g in gpus]})")
        if matches[0] not in chosen:
            chosen.append(matches[0])
    return chosen


def _read_device(nvml: Any, index: int) -> GpuDevice:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    capability = _optional(nvml.nvmlDeviceGetCudaComputeCapability, handle)
    pci = _optional(nvml.nvmlDeviceGetPciInfo, handle)
    uuid = _optional(nvml.nvmlDeviceGetUUID, handle)
    return GpuDevice(
        index=index,
        model=_text(nvml.nvmlDeviceGetName(handle)).strip() or "unknown",
        memory_mib=int(nvml.nvmlDeviceGetMemoryInfo(handle).total) // MIB,
        uuid=_text(uuid) if uuid is not None else None,
        pci_bus_id=_text(pci.busId) if pci is not None else None,
        compute_capability=f"{capability[0]}.{capability[1]}" if capability is not None else None,
    )


def detect_gpus(visible_devices: str | None = None, *, nvml: Any = pynvml) -> GpuInventory:
    """Every GPU NVML sees, filtered by `visible_devices`. Raises VisibleDevicesError for a bad filter only."""
    visible = parse_visible_devices(visible_devices)
    try:
        nvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        return GpuInventory(problems=["NVML library not found: no NVIDIA driver on this host"])
    except pynvml.NVMLError as error:
        return GpuInventory(problems=[f"NVML did not initialise: {error}"])
    try:
        driver = _optional(nvml.nvmlSystemGetDriverVersion)
        cuda = _optional(nvml.nvmlSystemGetCudaDriverVersion)
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except pynvml.NVMLError as error:
            return GpuInventory(problems=[f"NVML cannot count the GPUs: {error}"])
        gpus: list[GpuDevice] = []
        problems: list[str] = []
        for index in range(count):
            try:
                gpus.append(_read_device(nvml, index))
            except pynvml.NVMLError as error:  # e.g. a GPU fallen off the bus: report it, keep the others
                problems.append(f"GPU {index} unreadable: {error}")
        if not gpus and not problems:
            problems.append("NVML reports no GPU")
        return GpuInventory(
            gpus=select_visible(gpus, visible),
            driver_version=_text(driver) if driver is not None else None,
            cuda_version=cuda_version_text(int(cuda)) if cuda is not None else None,
            problems=problems,
        )
    finally:
        _optional(nvml.nvmlShutdown)


def detect_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, int]:
    """(model, logical CPUs this process may use); the affinity mask honours taskset and cpusets."""
    model = ""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            # x86 says "model name"; some ARM kernels only "Hardware" or "Processor".
            if key.strip() in ("model name", "Hardware", "Processor", "cpu model") and value.strip():
                model = value.strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)
    return model or platform.processor(), cores


def detect_ram_mib(meminfo: Path = Path("/proc/meminfo")) -> int:
    """MemTotal from /proc/meminfo; the kernel writes "kB" but means KiB, so KiB // 1024 is MiB."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def storage_free_gb(path: Path) -> float:
    """Free space (10^9 bytes) of the filesystem that holds `path`, or would hold it once created."""
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return round(shutil.disk_usage(probe).free / GB, 3)


def specs_from(inventory: GpuInventory, storage_path: Path) -> ComputeSpecs:
    cpu_model, cpu_cores = detect_cpu()
    return ComputeSpecs(
        gpus=inventory.gpus,
        driver_version=inventory.driver_version,
        cuda_version=inventory.cuda_version,
        cpu_model=cpu_model,
        cpu_cores=cpu_cores,
        ram_mib=detect_ram_mib(),
        storage_path=str(storage_path),
        storage_free_gb=storage_free_gb(storage_path),
    )


def detect_specs(storage_path: Path, visible_devices: str | None = None, *, nvml: Any = pynvml) -> ComputeSpecs:
    """The node's ComputeSpecs; a host without GPUs yields `gpus=[]` (see detect_gpus for the reason)."""
    return specs_from(detect_gpus(visible_devices, nvml=nvml), storage_path)


def compute_units(specs: ComputeSpecs) -> int:
    """Compute units registered on chain for this node: 1000 per visible GPU, at least 1.

    Units size the provider's stake ((units + 1) * stake minimum) and count against pools' compute limits.
    The reference's rule is kept because the GPU count is what validation can come to check per device,
    while memory size or model names are self-reported; a GPU-less node still gets 1 unit so it can register
    and never holds a zero stake.
    """
    return max(1, specs.gpu_count * UNITS_PER_GPU)
