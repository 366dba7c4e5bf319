# ruff: noqa: N802  (the methods carry NVML's own names: the code under test calls them so)
"""A fake of the `pynvml` functions primenet.miner.hardware calls, raising pynvml's real error classes.

Only the hardware boundary is faked: a CI machine has no NVIDIA GPU, and the miner must still be tested
with several GPUs of different models. Values follow NVML's units (memory in bytes, CUDA version 12040).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pynvml


@dataclass
class FakeGpu:
    name: str
    memory_bytes: int
    uuid: str
    bus_id: str
    capability: tuple[int, int] = (9, 0)
    unsupported: set[str] = field(default_factory=set)  # NVML functions that answer NOT_SUPPORTED
    lost: bool = False  # every call fails, as for a GPU fallen off the bus


@dataclass
class FakeNvml:
    gpus: list[FakeGpu] = field(default_factory=list)
    driver_version: str = "550.54.15"
    cuda_version: int = 12040
    library_missing: bool = False
    initialised: bool = False
    shutdowns: int = 0

    def nvmlInit(self) -> None:
        if self.library_missing:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self._require_init()
        self.initialised = False
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._require_init()
        return self.driver_version

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._require_init()
        return self.cuda_version

    def nvmlDeviceGetCount(self) -> int:
        self._require_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        self._require_init()
        if not 0 <= index < len(self.gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self.gpus[index]

    def nvmlDeviceGetName(self, gpu: FakeGpu) -> bytes:
        # Old nvidia-ml-py releases return bytes; the code under test must accept both.
        return self._answer(gpu, "nvmlDeviceGetName", gpu.name.encode())  # type: ignore[no-any-return]

    def nvmlDeviceGetMemoryInfo(self, gpu: FakeGpu) -> SimpleNamespace:
        info = SimpleNamespace(total=gpu.memory_bytes, free=gpu.memory_bytes, used=0)
        return self._answer(gpu, "nvmlDeviceGetMemoryInfo", info)  # type: ignore[no-any-return]

    def nvmlDeviceGetUUID(self, gpu: FakeGpu) -> str:
        return self._answer(gpu, "nvmlDeviceGetUUID", gpu.uuid)  # type: ignore[no-any-return]

    def nvmlDeviceGetPciInfo(self, gpu: FakeGpu) -> SimpleNamespace:
        return self._answer(gpu, "nvmlDeviceGetPciInfo", SimpleNamespace(busId=gpu.bus_id))  # type: ignore[no-any-return]

    def nvmlDeviceGetCudaComputeCapability(self, gpu: FakeGpu) -> tuple[int, int]:
        return self._answer(gpu, "nvmlDeviceGetCudaComputeCapability", gpu.capability)  # type: ignore[no-any-return]

    def _require_init(self) -> None:
        if not self.initialised:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)

    def _answer(self, gpu: FakeGpu, function: str, value: object) -> object:
        self._require_init()
        if gpu.lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        if function in gpu.unsupported:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return value


H100_BYTES = 85_520_809_984  # what NVML reports for an H100 80GB HBM3: 81559 MiB
A10_BYTES = 24_146_608_128  # an A10 (24 GB): 23028 MiB


def mixed_host() -> FakeNvml:
    """Three GPUs of two models, as on a host that mixes cards."""
    return FakeNvml(
        gpus=[
            FakeGpu(
                "NVIDIA H100 80GB HBM3", H100_BYTES, "GPU-11111111-aaaa-bbbb-cccc-000000000000", "00000000:18:00.0"
            ),
            FakeGpu(
                "NVIDIA A10",
                A10_BYTES,
                "GPU-22222222-aaaa-bbbb-cccc-000000000000",
                "00000000:3B:00.0",
                capability=(8, 6),
            ),
            FakeGpu(
                "NVIDIA H100 80GB HBM3", H100_BYTES, "GPU-33333333-aaaa-bbbb-cccc-000000000000", "00000000:86:00.0"
            ),
        ]
    )
