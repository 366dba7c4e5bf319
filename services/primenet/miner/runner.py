"""The Docker task runner: makes Docker run exactly the node's assigned task, and says how it is doing.

`reconcile(spec)` is called on every heartbeat reply. It removes the containers of tasks no longer assigned
(only containers labelled as ours, for this node), finds the current task's container by name
(`TaskSpec.container_name()`, which includes the config hash: a changed spec is a new container) or starts
one in the background (pull, create, start), and maps Docker's state to a TaskState. A restarted miner
builds a new runner, finds the same container by name and leaves it running.

Fixes of the reference's weaknesses: the task's own command (never `sleep infinity`), restarts on failure
capped at `max_restarts` (Docker reads a cap of 0 as unlimited, so 0 means no restart policy), a per-task
data directory of mode 0700 (not 0777), containers unprivileged with no-new-privileges, and nothing but the
data directory mounted (never the Docker socket). A finished or failed container is reported, not
re-created: restarting it is the orchestrator's decision (`restart()`).

Isolation (network, user, capabilities, pids, CPU and memory caps, allowlists) is the provider's `TaskPolicy`,
decided by `miner.isolation.isolate`; a task the policy refuses is reported failed with the reason on every
beat and never pulled or started.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import structlog
from docker.errors import DockerException, ImageNotFound, NotFound
from docker.types import DeviceRequest, LogConfig
from docker.utils import parse_repository_tag
from prometheus_client import Counter
from pydantic import BaseModel

from primenet.core.errors import PrimenetError
from primenet.core.models import GpuDevice, TaskDetails, TaskSpec, TaskState
from primenet.miner.isolation import Isolation, Refusal, TaskPolicy, isolate, network_config, network_mismatch

log = structlog.get_logger(__name__)
PULLS = Counter("primenet_miner_image_pulls", "Image pulls started (a failed one is tried again after retry_after_s)")

LABEL_TASK = "primenet.task_id"
LABEL_HASH = "primenet.config_hash"
LABEL_NODE = "primenet.node"
DATA_MOUNT = "/data"
NEVER_STARTED = "0001-01-01T00:00:00Z"
_TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # TaskSpec.task_id's pattern: one path component
NOBODY_ID = 65534  # miner.isolation.NOBODY's uid and gid
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


class NoTaskContainerError(PrimenetError, LookupError):
    """No task is assigned, or its container does not exist (yet)."""


class TaskStatus(BaseModel):
    """What the heartbeat reports: no task (all None), or the task's state, its container and any remark."""

    task_id: str | None = None
    state: TaskState | None = None
    details: TaskDetails | None = None
    message: str | None = None


def always_pull(image: str) -> bool:
    """Pull policy: a moving tag (`:latest` or none) is pulled on every start; a fixed tag or digest once."""
    _, tag = parse_repository_tag(image)
    return tag is None or tag == "latest"


def restart_policy(max_restarts: int) -> dict[str, Any]:
    # Docker treats MaximumRetryCount 0 as "retry forever": a task that may not restart gets no policy.
    if max_restarts == 0:
        return {"Name": "no"}
    return {"Name": "on-failure", "MaximumRetryCount": max_restarts}


def gpu_request(spec: TaskSpec, host_gpus: Sequence[GpuDevice]) -> list[DeviceRequest]:
    """The task's GPUs (all visible ones if it asks for more), by UUID where known: indices shift with filters."""
    if spec.gpus == 0 or not host_gpus:
        return []
    chosen = host_gpus[: spec.gpus]
    ids = [gpu.uuid or str(gpu.index) for gpu in chosen]
    return [DeviceRequest(driver="nvidia", device_ids=ids, capabilities=[["gpu"]])]


def container_config(
    spec: TaskSpec, *, node: str, data_dir: Path, host_gpus: Sequence[GpuDevice], isolation: Isolation
) -> dict[str, Any]:
    """Keyword arguments of `containers.create` for `spec`; network, user, capabilities and limits come from
    `isolation` (`miner.isolation.isolate`), which overrides nothing of ours (name, env, labels, mounts)."""
    config: dict[str, Any] = {
        **isolation.config,
        "image": spec.image,
        "name": spec.container_name(),
        "command": spec.command,
        "entrypoint": spec.entrypoint,
        # Ours last, so a task cannot pretend to be another task or node.
        "environment": {**spec.env, "PRIMENET_TASK_ID": spec.task_id, "PRIMENET_NODE": node},
        "labels": {LABEL_TASK: spec.task_id, LABEL_HASH: spec.config_hash(), LABEL_NODE: node},
        "restart_policy": restart_policy(spec.max_restarts),
        "device_requests": gpu_request(spec, host_gpus),
        # The only mount: nothing else of the host, and never the Docker socket.
        "volumes": {str(data_dir): {"bind": DATA_MOUNT, "mode": "rw"}},
        "privileged": False,
        # An init process forwards SIGTERM to the command (a shell as PID 1 ignores it) and reaps zombies.
        "init": True,
        # Bounded logs: a chatty task must not fill the provider's disk.
        "log_config": LogConfig(type=LogConfig.types.JSON, config={"max-size": "50m", "max-file": "3"}),
    }
    config["security_opt"] = sorted({*isolation.config.get("security_opt", ()), "no-new-privileges"})
    return config


def task_state(state: Mapping[str, Any] | None) -> TaskState:
    """Docker's `State` object of a container (None: no container) as a TaskState."""
    if state is None:
        return TaskState.UNKNOWN
    status = state.get("Status")
    if status == "created":
        # A failed start (e.g. the command does not exist) leaves the container "created" with an error.
        return TaskState.FAILED if state.get("Error") or state.get("ExitCode") else TaskState.PENDING
    if status == "exited":
        return TaskState.COMPLETED if state.get("ExitCode") == 0 else TaskState.FAILED
    mapping = {"running": TaskState.RUNNING, "restarting": TaskState.RESTARTING, "dead": TaskState.FAILED}
    return mapping.get(str(status), TaskState.UNKNOWN)


def task_details(attrs: Mapping[str, Any]) -> TaskDetails:
    """TaskDetails from a container's inspect data."""
    state: Mapping[str, Any] = attrs.get("State") or {}
    status = state.get("Status")
    started = state.get("StartedAt")
    ran = status not in ("running", "created") or bool(state.get("Error"))
    return TaskDetails(
        container_id=attrs.get("Id"),
        image_id=attrs.get("Image"),
        status=status,
        exit_code=state.get("ExitCode") if ran else None,
        restarts=int(attrs.get("RestartCount") or 0),
        started_at=started if started and started != NEVER_STARTED else None,
    )


@dataclass
class _Start:
    """One start of the current task's container: in flight (phase), or failed (error)."""

    name: str
    phase: TaskState
    job: asyncio.Task[None] | None = None
    note: str | None = None
    error: str | None = None
    failed_at: float = 0.0

    @property
    def in_flight(self) -> bool:
        return self.job is not None and not self.job.done()


class DockerRunner:
    """Reconciles one node's assigned task with the local Docker engine. Methods are async; SDK calls run in
    threads. Create one per miner process; a new one re-attaches to the containers the last one left."""

    def __init__(
        self,
        *,
        node: str,
        storage_path: Path,
        host_gpus: Sequence[GpuDevice] = (),
        client: Any = None,
        stop_timeout_s: int = 10,
        retry_after_s: float = 30.0,
        docker_timeout_s: int = 60,
        policy: TaskPolicy | None = None,
    ) -> None:
        self.node = node.lower()
        self.storage_path = storage_path
        self.host_gpus = list(host_gpus)
        self.stop_timeout_s = stop_timeout_s
        self.retry_after_s = retry_after_s  # a failed pull or create is tried again after this long, not before
        self.docker_timeout_s = docker_timeout_s
        self.policy = policy if policy is not None else TaskPolicy()  # the safe defaults: isolated, no root
        self._docker: Any = client
        self._spec: TaskSpec | None = None
        self._start: _Start | None = None
        self._jobs: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones
        self._lock = asyncio.Lock()

    # --- public API -----------------------------------------------------------------------------
    async def reconcile(self, spec: TaskSpec | None) -> TaskStatus:
        """Make Docker match the assignment (`None`: no task) and report the task's status."""
        async with self._lock:
            self._spec = spec
            name = spec.container_name() if spec is not None else None
            if self._start is not None and self._start.name != name:
                self._start = None  # an older start still in flight checks `_spec` before it creates anything
            try:
                client = await self._client()
                await asyncio.to_thread(self._remove_others, client, name, spec.task_id if spec else None)
                if spec is None:
                    return TaskStatus()
                return await self._observe(client, spec, may_start=True)
            except (DockerException, OSError) as error:
                return self._unreachable(spec, error)

    async def status(self) -> TaskStatus:
        """The current task's status without changing anything."""
        spec = self._spec
        if spec is None:
            return TaskStatus()
        try:
            return await self._observe(await self._client(), spec, may_start=False)
        except (DockerException, OSError) as error:
            return self._unreachable(spec, error)

    async def logs(self, tail: int = 300) -> str:
        """The last `tail` lines of the task's stdout and stderr, without terminal colour codes."""
        container = await self._current_container()
        raw: bytes = await asyncio.to_thread(container.logs, stdout=True, stderr=True, tail=tail)
        return _ANSI.sub("", raw.decode(errors="replace"))

    async def restart(self) -> TaskStatus:
        """Restart the task's container (the orchestrator's order, e.g. after a failure)."""
        container = await self._current_container()
        await asyncio.to_thread(container.restart, timeout=self.stop_timeout_s)
        return await self.status()

    async def wait_started(self) -> None:
        """Wait until a start in flight has finished (shutdown, tests)."""
        start = self._start
        if start is not None and start.job is not None:
            await asyncio.shield(start.job)

    async def close(self) -> None:
        """Finish the starts in flight and close the Docker client; containers keep running."""
        await asyncio.gather(*self._jobs)
        if self._docker is not None:
            await asyncio.to_thread(self._docker.close)
            self._docker = None

    # --- observing --------------------------------------------------------------------------------
    async def _observe(self, client: Any, spec: TaskSpec, *, may_start: bool) -> TaskStatus:
        name = spec.container_name()
        start = self._start if self._start is not None and self._start.name == name else None
        if start is not None and start.in_flight:
            return TaskStatus(task_id=spec.task_id, state=start.phase, message=start.note)
        container = await asyncio.to_thread(self._find, client, name)
        if container is not None:
            return self._container_status(spec, container, start)
        decision = isolate(spec, self.policy)
        if isinstance(decision, Refusal):  # every beat says why; nothing is pulled, nothing retried
            return TaskStatus(task_id=spec.task_id, state=TaskState.FAILED, message=f"refused: {decision.reason}")
        waiting = not may_start or (start is not None and time.monotonic() - start.failed_at < self.retry_after_s)
        if start is not None and start.error is not None and waiting:
            return TaskStatus(task_id=spec.task_id, state=TaskState.FAILED, message=start.error)
        if not may_start:
            return TaskStatus(task_id=spec.task_id, state=TaskState.UNKNOWN, message="no container")
        start = _Start(name=name, phase=TaskState.PULLING if always_pull(spec.image) else TaskState.PENDING)
        start.job = asyncio.create_task(self._run_start(client, spec, decision, start), name=f"start-{name}")
        self._jobs.add(start.job)
        start.job.add_done_callback(self._jobs.discard)
        self._start = start
        return TaskStatus(task_id=spec.task_id, state=start.phase)

    def _container_status(self, spec: TaskSpec, container: Any, start: _Start | None) -> TaskStatus:
        labels: Mapping[str, str] = container.labels or {}
        if labels.get(LABEL_NODE) != self.node or labels.get(LABEL_TASK) != spec.task_id:
            foreign = f"container {container.name} exists but is not this node's task container; not touched"
            return TaskStatus(task_id=spec.task_id, state=TaskState.FAILED, message=foreign)
        attrs: Mapping[str, Any] = container.attrs
        state: Mapping[str, Any] = attrs.get("State") or {}
        message: str | None = state.get("Error") or (start.note if start is not None else None)
        if state.get("OOMKilled"):
            memory = (attrs.get("HostConfig") or {}).get("Memory") or 0
            message = f"killed: out of memory (limit {int(memory) // 2**20} MiB)"
        return TaskStatus(task_id=spec.task_id, state=task_state(state), details=task_details(attrs), message=message)

    def _unreachable(self, spec: TaskSpec | None, error: Exception) -> TaskStatus:
        if spec is None:
            return TaskStatus(message=f"docker: {error}")
        return TaskStatus(task_id=spec.task_id, state=TaskState.UNKNOWN, message=f"docker: {error}")

    async def _current_container(self) -> Any:
        spec = self._spec
        if spec is None:
            raise NoTaskContainerError("no task is assigned")
        container = await asyncio.to_thread(self._find, await self._client(), spec.container_name())
        if container is None:
            raise NoTaskContainerError(f"task {spec.task_id} has no container")
        return container

    # --- starting -----------------------------------------------------------------------------------
    async def _run_start(self, client: Any, spec: TaskSpec, isolation: Isolation, start: _Start) -> None:
        try:
            pulled = await asyncio.to_thread(self._ensure_image, client, spec.image, start)
            start.note = "; ".join(note for note in (pulled, *isolation.notes) if note) or None
            start.phase = TaskState.PENDING
            await asyncio.to_thread(self._create_and_start, client, spec, isolation, start)
        except Exception as error:  # recorded and reported: a background job must never fail silently
            start.error = f"start failed: {error}"
            start.failed_at = time.monotonic()

    def _ensure_image(self, client: Any, image: str, start: _Start) -> str | None:
        """Pull per the policy; returns a remark when a failed pull fell back to the local image."""
        try:
            client.images.get(image)
            present = True
        except ImageNotFound:
            present = False
        if present and not always_pull(image):
            return None
        start.phase = TaskState.PULLING
        PULLS.inc()
        log.info("pulling image", image=image)
        try:
            repository, tag = parse_repository_tag(image)
            # The low-level stream: the high-level pull ignores errors reported inside the stream.
            for event in client.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
                if "error" in event:
                    raise DockerException(event["error"])
        except (DockerException, OSError) as error:
            if not present:
                raise DockerException(f"pull of {image} failed and there is no local copy: {error}") from error
            return f"pull of {image} failed, using the local image: {error}"
        return None

    def _create_and_start(self, client: Any, spec: TaskSpec, isolation: Isolation, start: _Start) -> None:
        name = spec.container_name()
        if not self._wanted(name):
            return
        if self.policy.network == "isolated":
            self._ensure_network(client)
        data_dir, remark = self._data_dir(spec.task_id, owner=None if spec.run_as_root else NOBODY_ID)
        if remark is not None:
            start.note = "; ".join(note for note in (start.note, remark) if note)
        container = client.containers.create(
            **container_config(spec, node=self.node, data_dir=data_dir, host_gpus=self.host_gpus, isolation=isolation)
        )
        if not self._wanted(name):  # the assignment changed while we were creating it
            container.remove(force=True)
            return
        container.start()

    def _wanted(self, name: str) -> bool:
        spec = self._spec
        return spec is not None and spec.container_name() == name

    def _ensure_network(self, client: Any) -> None:
        """The `isolated` policy's bridge network: created when missing, refused when it exists with ICC on."""
        try:
            network = client.networks.get(self.policy.network_name)
        except NotFound:
            network = client.networks.create(**network_config(self.policy))
        mismatch = network_mismatch((network.attrs or {}).get("Options"), self.policy)
        if mismatch is not None:
            raise DockerException(mismatch)

    def _data_dir(self, task_id: str, owner: int | None) -> tuple[Path, str | None]:
        """<storage>/tasks/<task id>: tasks cannot read each other's data, nor can other users. The task's user
        (`owner`, 65534 unless it runs as root) must write it: a root miner makes it the owner (mode 0700); a
        miner that is not root gives it to the group `owner` (mode 0770), which works when the miner is a member
        of that group (the role adds it). Returns the path and a remark when neither was possible."""
        tasks = self.storage_path / "tasks"
        path = tasks / task_id
        path.mkdir(parents=True, exist_ok=True)
        tasks.chmod(0o700)
        path.chmod(0o700)
        if owner is None:
            return path, None
        try:
            if os.geteuid() == 0:
                os.chown(path, owner, owner)
            else:
                os.chown(path, -1, owner)
                path.chmod(0o770)
        except PermissionError:
            return path, f"the task's user {owner} cannot write {DATA_MOUNT}: add the miner's user to group {owner}"
        return path, None

    # --- removing -----------------------------------------------------------------------------------
    def _find(self, client: Any, name: str) -> Any:
        try:
            return client.containers.get(name)
        except NotFound:
            return None

    def _remove_others(self, client: Any, keep: str | None, keep_task: str | None) -> None:
        """Remove this node's task containers other than `keep`, and the data of tasks no longer assigned."""
        ours = client.containers.list(all=True, filters={"label": [f"{LABEL_NODE}={self.node}"]}, ignore_removed=True)
        for container in ours:
            if container.name == keep:
                continue
            try:
                container.stop(timeout=self.stop_timeout_s)
                container.remove(force=True)
            except NotFound:
                pass  # removed meanwhile: what we wanted
            task_id = (container.labels or {}).get(LABEL_TASK, "")
            if task_id != keep_task and _TASK_ID.match(task_id):
                shutil.rmtree(self.storage_path / "tasks" / task_id, ignore_errors=True)

    async def _client(self) -> Any:
        if self._docker is None:
            self._docker = await asyncio.to_thread(docker.from_env, timeout=self.docker_timeout_s)
        return self._docker
