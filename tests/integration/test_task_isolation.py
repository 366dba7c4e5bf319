"""A hostile task against the provider's host, on the real dockerd, with the `none` network policy (our engines have
no bridge, so traffic stays on loopback): it cannot reach loopback services (a listener standing in for the miner's
API, and the devnet's real Redis), cannot fork past its pids limit or allocate past its (capped) memory limit, has no
capabilities and runs as uid 65534. Each attack is also run under the policy that lets it through (`host`, a large
pids limit, root), so the test shows the difference the policy makes and fails on a runner without it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from primenet.core.models import TaskSpec, TaskState
from primenet.miner.isolation import TaskPolicy
from primenet.miner.runner import LABEL_NODE, DockerRunner, TaskStatus

pytestmark = pytest.mark.integration

IMAGE = "local/primenet-busybox:1"
NONE = TaskPolicy(network="none")
PIDS = 64
MakeRunner = Callable[[TaskPolicy], DockerRunner]


@pytest.fixture
def node(docker_client: Any) -> Iterator[str]:
    address = "0x" + secrets.token_hex(20)
    yield address
    for container in docker_client.containers.list(
        all=True, filters={"label": [f"{LABEL_NODE}={address}"]}, ignore_removed=True
    ):
        container.remove(force=True)


@pytest.fixture
async def make_runner(node: str, tmp_path: Path) -> AsyncIterator[MakeRunner]:
    runners: list[DockerRunner] = []

    def make(policy: TaskPolicy) -> DockerRunner:
        runner = DockerRunner(node=node, storage_path=tmp_path / "storage", stop_timeout_s=1, policy=policy)
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        await runner.reconcile(None)
        await runner.close()


def task(command: str, **fields: Any) -> TaskSpec:
    return TaskSpec(
        task_id=f"t-{secrets.token_hex(4)}", image=IMAGE, command=["sh", "-c", command], max_restarts=0, **fields
    )


async def settle(runner: DockerRunner, spec: TaskSpec, *wanted: TaskState, timeout_s: float = 60) -> TaskStatus:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (status := await runner.reconcile(spec)).state not in wanted:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"task never reached {wanted}: {status}")
        await asyncio.sleep(0.1)
    return status


async def logs_containing(runner: DockerRunner, text: str, timeout_s: float = 60) -> str:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while text not in (output := await runner.logs()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{text!r} never appeared in the logs: {output!r}")
        await asyncio.sleep(0.1)
    return output


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections arriving (as the miner's API would see them)."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"miner-api\n")
        await writer.drain()
        writer.close()


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    made = Listener()
    server = await asyncio.start_server(made._accept, "127.0.0.1", 0)
    made.port = server.sockets[0].getsockname()[1]
    async with server:
        yield made


@pytest.mark.parametrize(
    ("policy", "reaches"), [(NONE, False), (TaskPolicy(network="host"), True)], ids=["none", "host"]
)
async def test_a_task_cannot_reach_loopback_services(
    make_runner: MakeRunner, listener: Listener, redis_url: str, policy: TaskPolicy, reaches: bool
) -> None:
    redis_port = urlparse(redis_url).port
    runner = make_runner(policy)
    probe = (
        f"echo hi | nc -w 2 127.0.0.1 {listener.port}; "
        f"printf 'PING\\r\\n' | nc -w 2 127.0.0.1 {redis_port}; "
        "echo probed"
    )
    spec = task(probe)
    await settle(runner, spec, TaskState.COMPLETED, TaskState.FAILED)
    output = await logs_containing(runner, "probed")
    # The loopback listener saw the task's connection only where the policy shares the host's network.
    assert (listener.connections > 0) is reaches
    assert ("miner-api" in output) is reaches
    assert ("+PONG" in output) is reaches  # the devnet's Redis answered the task


@pytest.mark.parametrize(("limit", "contained"), [(PIDS, True), (2048, False)])
async def test_a_fork_bomb_stops_at_the_pids_limit(
    make_runner: MakeRunner, docker_client: Any, limit: int, contained: bool
) -> None:
    runner = make_runner(TaskPolicy(network="none", pids_limit=limit))
    # The subshell forks 300 sleepers (and dies at the first fork the kernel refuses); the task then stays up.
    spec = task("(for i in $(seq 300); do sleep 120 & done) 2>&1; echo forked; sleep 120")
    await settle(runner, spec, TaskState.RUNNING)
    output = await logs_containing(runner, "forked")
    processes = docker_client.containers.get(spec.container_name()).top()["Processes"]
    assert (len(processes) <= PIDS) is contained
    assert ("can't fork" in output) is contained
    attrs = docker_client.containers.get(spec.container_name()).attrs
    assert attrs["HostConfig"]["PidsLimit"] == limit


async def test_memory_past_the_providers_cap_is_oom_killed(make_runner: MakeRunner, docker_client: Any) -> None:
    # The buyer asks for 4 GiB; this provider caps tasks at 32 MiB, and the task tries to hold 256 MiB.
    runner = make_runner(TaskPolicy(network="none", max_memory_mib=32))
    spec = task("head -c 268435456 /dev/zero | tail", memory_limit_mib=4096)
    status = await settle(runner, spec, TaskState.FAILED, TaskState.COMPLETED)
    assert status.state is TaskState.FAILED
    attrs = docker_client.containers.get(spec.container_name()).attrs
    assert attrs["HostConfig"]["Memory"] == 32 * 2**20
    assert attrs["HostConfig"]["MemorySwap"] == 32 * 2**20  # no escape into swap
    assert attrs["State"]["OOMKilled"] is True
    assert status.message is not None
    assert "out of memory" in status.message


@pytest.mark.parametrize(
    ("policy", "root"), [(NONE, False), (TaskPolicy(network="none", allow_root=True), True)], ids=["nobody", "root"]
)
async def test_a_task_has_no_capabilities_and_runs_as_nobody(
    make_runner: MakeRunner, policy: TaskPolicy, root: bool
) -> None:
    runner = make_runner(policy)
    spec = task(
        "grep -E '^(Uid|CapEff|CapBnd)' /proc/self/status; touch /data/mine && echo data-writable; echo checked",
        run_as_root=root,
    )
    await settle(runner, spec, TaskState.COMPLETED)
    output = await logs_containing(runner, "checked")
    fields = {line.split(":")[0]: line.split(":")[1].split() for line in output.splitlines() if ":" in line}
    assert fields["Uid"][0] == ("0" if root else "65534")
    # cap_drop ALL: even root in the task holds no capability (a default container's root holds 14).
    assert int(fields["CapEff"][0], 16) == 0
    assert int(fields["CapBnd"][0], 16) == 0
    assert "data-writable" in output  # the task's own data directory is its user's


async def test_a_read_only_root_filesystem_leaves_tmp_and_data_writable(make_runner: MakeRunner) -> None:
    runner = make_runner(TaskPolicy(network="none", read_only_rootfs=True, tmpfs_mib=16))
    spec = task("touch /etc/x 2>&1 || echo rootfs-ro; touch /tmp/x && touch /data/x && echo writable; echo end")
    await settle(runner, spec, TaskState.COMPLETED)
    output = await logs_containing(runner, "end")
    assert "rootfs-ro" in output
    assert "writable" in output


async def test_a_refused_task_is_failed_with_the_reason_on_every_beat(
    make_runner: MakeRunner, docker_client: Any
) -> None:
    runner = make_runner(TaskPolicy(network="none", image_allowlist=("registry.provider.test/*",)))
    spec = task("echo never")
    for _ in range(3):  # each heartbeat: the same refusal, no pull, no container, no crash
        status = await runner.reconcile(spec)
        assert status.state is TaskState.FAILED
        assert status.message is not None
        assert "image allowlist" in status.message
        assert (await runner.status()).message == status.message
    assert docker_client.containers.list(all=True, filters={"name": spec.container_name()}) == []

    rooted = make_runner(NONE)
    status = await rooted.reconcile(task("id", run_as_root=True))
    assert status.state is TaskState.FAILED
    assert "root" in (status.message or "")
