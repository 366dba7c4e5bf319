"""The Docker runner against the real local dockerd, with a tiny busybox image built locally (no registry)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import NotFound

from primenet.core.models import TaskSpec, TaskState
from primenet.miner.isolation import TaskPolicy
from primenet.miner.runner import LABEL_NODE, DockerRunner, NoTaskContainerError, TaskStatus

pytestmark = pytest.mark.integration

IMAGE = "local/primenet-busybox:1"
MakeRunner = Callable[..., DockerRunner]


@pytest.fixture(scope="session")
def task_image(docker_client: Any) -> str:
    return IMAGE  # `docker_client` built it if it was missing


@pytest.fixture
def node(docker_client: Any) -> Iterator[str]:
    """A fresh node address per test; every container labelled with it is removed afterwards."""
    address = "0x" + secrets.token_hex(20)
    yield address
    for container in docker_client.containers.list(
        all=True, filters={"label": [f"{LABEL_NODE}={address}"]}, ignore_removed=True
    ):
        container.remove(force=True)


@pytest.fixture
async def make_runner(node: str, tmp_path: Path) -> AsyncIterator[MakeRunner]:
    runners: list[DockerRunner] = []

    def make(**options: Any) -> DockerRunner:
        # Our engine has no bridge (dockerd --bridge=none): these tests use the devnet's explicit `host` policy;
        # test_task_isolation.py runs the others.
        options.setdefault("policy", TaskPolicy(network="host"))
        runner = DockerRunner(node=node, storage_path=tmp_path / "storage", stop_timeout_s=2, **options)
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        await runner.close()


def task(image: str, command: str, **fields: Any) -> TaskSpec:
    return TaskSpec(task_id=f"t-{secrets.token_hex(4)}", image=image, command=["sh", "-c", command], **fields)


async def settle(runner: DockerRunner, spec: TaskSpec | None, *wanted: TaskState, timeout_s: float = 20) -> TaskStatus:
    """Reconcile as the heartbeat loop does (here every 0.1 s) until the task reaches one of `wanted`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        status = await runner.reconcile(spec)
        if status.state in wanted:
            return status
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"task never reached {wanted}: {status}")
        await asyncio.sleep(0.1)


async def logs_containing(runner: DockerRunner, text: str, timeout_s: float = 10) -> str:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while text not in (output := await runner.logs()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{text!r} never appeared in the logs: {output!r}")
        await asyncio.sleep(0.1)
    return output


async def test_assignment_runs_the_tasks_command_and_env(
    make_runner: MakeRunner, task_image: str, docker_client: Any, tmp_path: Path
) -> None:
    runner = make_runner()
    spec = task(
        task_image,
        "echo hello $GREETING from $PRIMENET_TASK_ID; sleep 30",
        env={"GREETING": "world"},
        memory_limit_mib=64,
    )
    status = await settle(runner, spec, TaskState.RUNNING)
    assert status.details is not None
    assert status.details.container_id
    assert status.details.started_at is not None
    assert f"hello world from {spec.task_id}" in await logs_containing(runner, "hello world")

    attrs = docker_client.containers.get(spec.container_name()).attrs
    assert attrs["Id"] == status.details.container_id
    host = attrs["HostConfig"]
    assert (host["NetworkMode"], host["Privileged"], host["SecurityOpt"]) == ("host", False, ["no-new-privileges"])
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert host["Memory"] == 64 * 2**20
    data_dir = tmp_path / "storage" / "tasks" / spec.task_id
    assert [(m["Source"], m["Destination"]) for m in attrs["Mounts"]] == [(str(data_dir), "/data")]
    assert data_dir.stat().st_mode & 0o777 == 0o700  # not the reference's 0777


async def test_changed_assignment_replaces_the_container_and_none_removes_it(
    make_runner: MakeRunner, task_image: str, docker_client: Any, tmp_path: Path
) -> None:
    runner = make_runner()
    first = task(task_image, "echo v=$V; sleep 30", env={"V": "1"})
    old = await settle(runner, first, TaskState.RUNNING)
    second = first.model_copy(update={"env": {"V": "2"}})
    assert second.container_name() != first.container_name()

    new = await settle(runner, second, TaskState.RUNNING)
    assert new.details is not None
    assert old.details is not None
    assert new.details.container_id != old.details.container_id
    with pytest.raises(NotFound):
        docker_client.containers.get(first.container_name())
    assert "v=2" in await logs_containing(runner, "v=2")
    data_dir = tmp_path / "storage" / "tasks" / first.task_id
    assert data_dir.is_dir()  # same task, new config: its data stays

    assert await runner.reconcile(None) == TaskStatus()
    assert (
        docker_client.containers.list(all=True, filters={"label": [f"{LABEL_NODE}={runner.node}"]}, ignore_removed=True)
        == []
    )
    assert not data_dir.exists()  # a task no longer assigned leaves no data behind
    with pytest.raises(NoTaskContainerError):
        await runner.logs()


async def test_a_new_runner_reattaches_to_the_running_container(make_runner: MakeRunner, task_image: str) -> None:
    spec = task(task_image, "sleep 30")
    before = await settle(make_runner(), spec, TaskState.RUNNING)

    after = await make_runner().reconcile(spec)  # a restarted miner, same assignment
    assert after.state is TaskState.RUNNING
    assert after.details is not None
    assert before.details is not None
    assert after.details.container_id == before.details.container_id
    assert after.details.started_at == before.details.started_at  # not restarted either


async def test_a_failing_command_is_failed_after_capped_restarts(make_runner: MakeRunner, task_image: str) -> None:
    runner = make_runner()
    spec = task(task_image, "echo boom; exit 3", max_restarts=2)
    status = await settle(runner, spec, TaskState.FAILED)
    assert status.details is not None
    assert (status.details.exit_code, status.details.restarts, status.details.status) == (3, 2, "exited")
    assert (await runner.logs()).count("boom") == 3  # the first run and two restarts, then no more
    again = await runner.reconcile(spec)  # a failed task is reported, not re-created
    assert again.details is not None
    assert again.details.container_id == status.details.container_id


async def test_a_missing_command_is_failed(make_runner: MakeRunner, task_image: str) -> None:
    spec = TaskSpec(task_id=f"t-{secrets.token_hex(4)}", image=task_image, command=["/no/such/program"], max_restarts=0)
    status = await settle(make_runner(), spec, TaskState.FAILED)
    assert status.details is not None
    assert status.details.exit_code != 0


async def test_a_completed_task_stays_completed_until_restarted(make_runner: MakeRunner, task_image: str) -> None:
    runner = make_runner()
    spec = task(task_image, "echo done")
    status = await settle(runner, spec, TaskState.COMPLETED)
    assert status.details is not None
    assert status.details.exit_code == 0
    assert (await runner.reconcile(spec)).state is TaskState.COMPLETED

    await runner.restart()
    await settle(runner, spec, TaskState.COMPLETED)
    assert (await logs_containing(runner, "done\ndone")).count("done") == 2


async def test_latest_tag_is_pulled_and_a_failed_pull_uses_the_local_image(
    make_runner: MakeRunner, task_image: str
) -> None:
    runner = make_runner()
    spec = task("local/primenet-busybox:latest", "sleep 30")
    first = await runner.reconcile(spec)
    assert first.state is TaskState.PULLING  # a moving tag is always pulled; no registry answers here
    status = await settle(runner, spec, TaskState.RUNNING)
    assert status.message is not None
    assert "using the local image" in status.message


async def test_an_image_that_is_nowhere_fails_with_the_reason(make_runner: MakeRunner) -> None:
    runner = make_runner(retry_after_s=60)
    spec = task("local/primenet-no-such-image:1", "true")
    status = await settle(runner, spec, TaskState.FAILED)
    assert status.message is not None
    assert "no local copy" in status.message
    assert status.details is None
    # No retry before retry_after_s: the next heartbeats report the same failure without pulling again.
    again = await runner.reconcile(spec)
    assert (again.state, again.message) == (TaskState.FAILED, status.message)


async def test_containers_that_are_not_ours_are_left_alone(
    make_runner: MakeRunner, task_image: str, docker_client: Any, node: str
) -> None:
    foreign = docker_client.containers.create(
        task_image, ["sleep", "30"], name=f"prime-task-foreign-{secrets.token_hex(4)}", network_mode="host"
    )
    other_node = docker_client.containers.create(
        task_image, ["sleep", "30"], labels={LABEL_NODE: "0x" + "00" * 20}, network_mode="host"
    )
    try:
        assert await make_runner().reconcile(None) == TaskStatus()
        assert docker_client.containers.get(foreign.id).status == "created"
        assert docker_client.containers.get(other_node.id).status == "created"
    finally:
        foreign.remove(force=True)
        other_node.remove(force=True)


async def test_an_unreachable_engine_is_reported(make_runner: MakeRunner, tmp_path: Path) -> None:
    runner = make_runner(client=docker.DockerClient(base_url=f"unix://{tmp_path}/no-docker.sock", version="1.41"))
    spec = task("local/primenet-busybox:1", "true")
    status = await runner.reconcile(spec)
    assert status.state is TaskState.UNKNOWN
    assert status.message is not None
    assert status.message.startswith("docker:")


async def test_an_assignment_withdrawn_during_its_start_leaves_no_container(
    make_runner: MakeRunner, task_image: str, docker_client: Any
) -> None:
    runner = make_runner()
    assert (await runner.reconcile(task(task_image, "sleep 30"))).state is TaskState.PENDING
    assert await runner.reconcile(None) == TaskStatus()
    await runner.close()  # lets the start in flight finish: it must see the withdrawal and create nothing
    assert (
        docker_client.containers.list(all=True, filters={"label": [f"{LABEL_NODE}={runner.node}"]}, ignore_removed=True)
        == []
    )
    with pytest.raises(NoTaskContainerError):
        await runner.restart()
