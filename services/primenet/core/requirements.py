"""A pool's node requirements: a small `key=value;...` language stored on chain with the pool.

    gpu:count=8;gpu:model=H100,A100;gpu:memory_mib=80000;ram_mib=512000;storage_gb=1000

Keys: `gpu:count` (exact) or `gpu:count_min`, `gpu:model` (comma list; a GPU matches when a name is contained
in its model, ignoring case, spaces, `-` and `_`), `gpu:memory_mib` (per card minimum), `gpu:compute_capability`
(minimum, e.g. 8.0), `cpu:cores`, `ram_mib`, `storage_gb` (minima). The reference's `gpu:memory_mb` and `ram_mb`
are accepted as the same keys (they were MiB there too). Each `gpu:count`/`gpu:count_min` after the first starts
another GPU alternative: `gpu:count=8;gpu:model=H100;gpu:count=4;gpu:model=B200` accepts either. An empty string
requires nothing. Unknown keys and malformed values are errors, never silently "no requirements".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from primenet.core.errors import PrimenetError
from primenet.core.models import ComputeSpecs, GpuDevice

_ALIASES = {"gpu:memory_mb": "gpu:memory_mib", "ram_mb": "ram_mib"}
_GPU_KEYS = {"gpu:count", "gpu:count_min", "gpu:model", "gpu:memory_mib", "gpu:compute_capability"}
_HOST_KEYS = {"cpu:cores", "ram_mib", "storage_gb"}


class RequirementsError(PrimenetError, ValueError):
    """The requirements string cannot be parsed."""


@dataclass
class GpuRequirement:
    count: int | None = None  # exact
    count_min: int | None = None
    models: list[str] = field(default_factory=list)
    memory_mib: int | None = None
    compute_capability: float | None = None

    def unmet(self, gpus: list[GpuDevice]) -> list[str]:
        matching = [gpu for gpu in gpus if self._fits(gpu)]
        have = len(matching)
        problems = []
        if self.count is not None and have != self.count:
            problems.append(f"needs exactly {self.count} matching GPU(s), has {have}")
        if self.count_min is not None and have < self.count_min:
            problems.append(f"needs at least {self.count_min} matching GPU(s), has {have}")
        return problems

    def _fits(self, gpu: GpuDevice) -> bool:
        if self.models and not any(_norm(name) in _norm(gpu.model) for name in self.models):
            return False
        if self.memory_mib is not None and gpu.memory_mib < self.memory_mib:
            return False
        if self.compute_capability is not None:
            try:
                return float(gpu.compute_capability or 0) >= self.compute_capability
            except ValueError:
                return False
        return True


@dataclass
class Requirements:
    gpu_alternatives: list[GpuRequirement] = field(default_factory=list)
    cpu_cores: int | None = None
    ram_mib: int | None = None
    storage_gb: float | None = None

    @property
    def wants_gpu(self) -> bool:
        """A GPU pool: its requirements name GPUs at all (even `gpu:count_min=0`), so a node without one never fits."""
        return bool(self.gpu_alternatives)

    def unmet(self, specs: ComputeSpecs) -> list[str]:
        """Human-readable reasons the specs fall short; empty when they meet every requirement."""
        problems: list[str] = []
        if self.cpu_cores is not None and specs.cpu_cores < self.cpu_cores:
            problems.append(f"needs {self.cpu_cores} CPU cores, has {specs.cpu_cores}")
        if self.ram_mib is not None and specs.ram_mib < self.ram_mib:
            problems.append(f"needs {self.ram_mib} MiB RAM, has {specs.ram_mib}")
        if self.storage_gb is not None and specs.storage_free_gb < self.storage_gb:
            problems.append(f"needs {self.storage_gb:g} GB free storage, has {specs.storage_free_gb:.1f}")
        if self.gpu_alternatives:
            per_alternative = [alt.unmet(specs.gpus) for alt in self.gpu_alternatives]
            if all(per_alternative):
                problems.append(" | or: ".join("; ".join(unmet) for unmet in per_alternative))
        return problems


def _norm(text: str) -> str:
    return re.sub(r"[\s_-]", "", text).lower()


def _number(key: str, value: str, kind: type[int] | type[float]) -> float:
    try:
        number = kind(value)
    except ValueError:
        raise RequirementsError(f"{key}: {value!r} is not a {'whole ' if kind is int else ''}number") from None
    if number < 0:
        raise RequirementsError(f"{key}: must not be negative")
    return number


def parse(text: str) -> Requirements:
    requirements = Requirements()
    current: GpuRequirement | None = None
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key, value = _ALIASES.get(key.strip(), key.strip()), value.strip()
        if not sep or not value:
            raise RequirementsError(f"{part!r} is not key=value")
        if key in _GPU_KEYS:
            if current is None or (
                key in ("gpu:count", "gpu:count_min") and (current.count is not None or current.count_min is not None)
            ):
                current = GpuRequirement()
                requirements.gpu_alternatives.append(current)
            if key == "gpu:count":
                current.count = int(_number(key, value, int))
            elif key == "gpu:count_min":
                current.count_min = int(_number(key, value, int))
            elif key == "gpu:model":
                current.models = [name.strip() for name in value.split(",") if name.strip()]
            elif key == "gpu:memory_mib":
                current.memory_mib = int(_number(key, value, int))
            else:
                current.compute_capability = _number(key, value, float)
        elif key in _HOST_KEYS:
            if key == "cpu:cores":
                requirements.cpu_cores = int(_number(key, value, int))
            elif key == "ram_mib":
                requirements.ram_mib = int(_number(key, value, int))
            else:
                requirements.storage_gb = _number(key, value, float)
        else:
            known = ", ".join(sorted(_GPU_KEYS | _HOST_KEYS))
            raise RequirementsError(f"unknown key {key!r} (known: {known})")
    for alternative in requirements.gpu_alternatives:
        if alternative.count is None and alternative.count_min is None:
            alternative.count_min = 1  # naming a GPU property implies at least one such GPU
    return requirements
