"""The runner's pure decisions: the container it asks Docker for, the pull policy, the state mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from primenet.core.models import GpuDevice, TaskSpec, TaskState
from primenet.miner.isolation import Isolation, TaskPolicy, isolate
from primenet.miner.runner import always_pull, container_config, restart_policy, task_details, task_state

pytestmark = pytest.mark.unit

NODE = "0x" + "ab" * 20
GPUS = [
    GpuDevice(index=0, model="NVIDIA H100 80GB HBM3", memory_mib=81559, uuid="GPU-aaa"),
    GpuDevice(index=1, model="NVIDIA H100 80GB HBM3", memory_mib=81559, uuid="GPU-bbb"),
    GpuDevice(index=2, model="NVIDIA A10", memory_mib=23028),  # no UUID reported: its index is used
]


def spec(**changes: Any) -> TaskSpec:
    values: dict[str, Any] = {"task_id": "t1", "image": "repo/train:2", "command": ["python", "train.py"]}
    return TaskSpec(**{**values, **changes})


def config(task: TaskSpec, gpus: list[GpuDevice] = GPUS, policy: TaskPolicy | None = None) -> dict[str, Any]:
    isolation = isolate(task, policy or TaskPolicy(network="host"))  # the devnet's policy, uncapped
    assert isinstance(isolation, Isolation)
    return container_config(
        task, node=NODE, data_dir=Path("/srv/primenet/tasks/t1"), host_gpus=gpus, isolation=isolation
    )


def test_container_runs_the_tasks_command_unprivileged_with_only_its_data_mounted() -> None:
    task = spec(entrypoint=["/bin/sh", "-c"], env={"A": "1", "PRIMENET_TASK_ID": "forged"})
    made = config(task)
    assert made["name"] == task.container_name()
    assert made["command"] == ["python", "train.py"]  # the task's own command, never `sleep infinity`
    assert made["entrypoint"] == ["/bin/sh", "-c"]
    assert made["environment"] == {"A": "1", "PRIMENET_TASK_ID": "t1", "PRIMENET_NODE": NODE}
    assert made["labels"] == {
        "primenet.task_id": "t1",
        "primenet.config_hash": task.config_hash(),
        "primenet.node": NODE,
    }
    assert made["network_mode"] == "host"
    assert made["privileged"] is False
    assert made["security_opt"] == ["no-new-privileges"]
    assert made["cap_drop"] == ["ALL"]
    assert "cap_add" not in made
    assert made["user"] == "65534:65534"
    assert made["pids_limit"] == 512
    assert made["volumes"] == {"/srv/primenet/tasks/t1": {"bind": "/data", "mode": "rw"}}
    assert not any("docker.sock" in key for key in made["volumes"])
    assert made["shm_size"] == "64m"
    assert "nano_cpus" not in made
    assert "mem_limit" not in made


def test_limits_and_restart_cap() -> None:
    made = config(spec(cpu_limit=1.5, memory_limit_mib=2048, shm_size_mib=1024, max_restarts=5))
    assert made["nano_cpus"] == 1_500_000_000
    assert made["mem_limit"] == made["memswap_limit"] == "2048m"
    assert made["shm_size"] == "1024m"
    assert made["restart_policy"] == {"Name": "on-failure", "MaximumRetryCount": 5}
    # Docker reads a retry count of 0 as "forever": no restarts must be no policy at all.
    assert restart_policy(0) == {"Name": "no"}


@pytest.mark.parametrize(
    ("wanted", "host", "ids"),
    [
        (0, GPUS, None),
        (1, GPUS, ["GPU-aaa"]),
        (3, GPUS, ["GPU-aaa", "GPU-bbb", "2"]),
        (8, GPUS, ["GPU-aaa", "GPU-bbb", "2"]),  # more than the node has: all of them
        (2, [], None),  # a GPU-less host never asks Docker for GPUs
    ],
)
def test_gpu_device_requests(wanted: int, host: list[GpuDevice], ids: list[str] | None) -> None:
    requests = config(spec(gpus=wanted), host)["device_requests"]
    if ids is None:
        assert requests == []
    else:
        assert len(requests) == 1
        assert requests[0]["Driver"] == "nvidia"
        assert requests[0]["DeviceIDs"] == ids
        assert requests[0]["Capabilities"] == [["gpu"]]


@pytest.mark.parametrize(
    ("image", "always"),
    [
        ("busybox", True),
        ("busybox:latest", True),
        ("ghcr.io/org/train:latest", True),
        ("localhost:5000/train", True),  # a registry port is not a tag
        ("localhost:5000/train:1.2", False),
        ("ghcr.io/org/train:v1", False),
        ("org/train@sha256:" + "a" * 64, False),
    ],
)
def test_pull_policy(image: str, always: bool) -> None:
    assert always_pull(image) is always


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (None, TaskState.UNKNOWN),
        ({"Status": "created", "ExitCode": 0, "Error": ""}, TaskState.PENDING),
        ({"Status": "created", "ExitCode": 127, "Error": "exec: not found"}, TaskState.FAILED),
        ({"Status": "running", "ExitCode": 0}, TaskState.RUNNING),
        ({"Status": "restarting", "ExitCode": 1}, TaskState.RESTARTING),
        ({"Status": "exited", "ExitCode": 0}, TaskState.COMPLETED),
        ({"Status": "exited", "ExitCode": 137}, TaskState.FAILED),
        ({"Status": "dead", "ExitCode": 0}, TaskState.FAILED),
        ({"Status": "paused"}, TaskState.UNKNOWN),
    ],
)
def test_state_mapping(state: dict[str, Any] | None, expected: TaskState) -> None:
    assert task_state(state) is expected


def test_details_from_inspect_data() -> None:
    running = {
        "Id": "c1",
        "Image": "sha256:i1",
        "RestartCount": 2,
        "State": {"Status": "running", "ExitCode": 0, "StartedAt": "2025-01-01T00:00:00Z"},
    }
    details = task_details(running)
    assert (details.container_id, details.image_id, details.status) == ("c1", "sha256:i1", "running")
    assert (details.exit_code, details.restarts, details.started_at) == (None, 2, "2025-01-01T00:00:00Z")
    never_started = {"Id": "c2", "State": {"Status": "created", "ExitCode": 0, "StartedAt": "0001-01-01T00:00:00Z"}}
    assert task_details(never_started).started_at is None
    assert task_details({"Id": "c3", "State": {"Status": "exited", "ExitCode": 3}}).exit_code == 3
