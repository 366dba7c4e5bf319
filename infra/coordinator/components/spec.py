"""Target-neutral description of one workload: what runs, with which files, volumes and health probe.

Each part (`Chain`, `Redis`, ...) builds a `WorkloadSpec` and hands it to a target: `DockerWorkload` turns it into
pulumi-docker resources; a Kubernetes target can turn the same spec into a Deployment or Job, a Secret, PVCs and
probes. A spec names no target resource type, so the parts stay the same whichever target realises them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import pulumi

# Every image runs as this uid/gid; uploaded files and volume mount points belong to it.
RUN_AS: Final = "10001"
SECRETS_DIR: Final = "/run/secrets/primenet"
DEPLOYMENT_DIR: Final = "/run/primenet/deployment"
DEPLOYMENT_FILE: Final = f"{DEPLOYMENT_DIR}/deployment.json"
LOOPBACK: Final = "127.0.0.1"


@dataclass(frozen=True)
class VolumeMount:
    """A named volume at `path`; `owned` means this workload creates it (others only mount it)."""

    volume: str  # logical name, unique in the stack: "<part>-<purpose>", e.g. "redis-data"
    path: str
    read_only: bool = False
    owned: bool = False


@dataclass(frozen=True)
class HealthProbe:
    """A command run inside the workload; healthy when it exits 0."""

    command: Sequence[str]
    interval_s: int = 5
    timeout_s: int = 3
    start_period_s: int = 5
    retries: int = 12


@dataclass(frozen=True)
class WorkloadSpec:
    """One container's worth of intent.

    `secret_files` (path -> content) are written 0600, owned by `RUN_AS`, and their content is marked secret;
    secrets reach a workload only this way, never through `env` or `command`. `plain_files` are 0644.
    A one-shot workload runs to completion once (its output is returned); a long-running one is restarted and
    counted ready only when its `health` probe passes. `depends_on` start (and become healthy) first.
    """

    part: str
    image: str
    command: Sequence[pulumi.Input[str]] = ()
    env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    secret_files: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    plain_files: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    volumes: Sequence[VolumeMount] = ()
    health: HealthProbe | None = None
    port: int | None = None
    one_shot: bool = False
    depends_on: Sequence[pulumi.Resource] = ()


@dataclass(frozen=True)
class StackNaming:
    """Names and labels shared by every resource of one stack, so teardown can find exactly what it made."""

    project: str
    stack: str

    @property
    def prefix(self) -> str:
        return f"{self.project}-{self.stack}"

    @property
    def stack_label(self) -> str:
        return self.prefix

    def container(self, part: str) -> str:
        return f"{self.prefix}-{part}"

    def volume(self, volume: str) -> str:
        return f"{self.prefix}-{volume}"

    def labels(self, part: str) -> dict[str, str]:
        return {"org.primenet.stack": self.stack_label, "org.primenet.part": part}

    @classmethod
    def current(cls) -> StackNaming:
        return cls(pulumi.get_project(), pulumi.get_stack())
