"""`primenet miner check` against this machine: the real dockerd, the session's Anvil, a real uvicorn discovery
stand-in, real directories and sockets. Only NVML is faked, to pin down whether the host "has" GPUs."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from typer.testing import CliRunner

from fakes.nvml import FakeNvml, mixed_host
from primenet.cli.miner import miner_app
from primenet.devnet.processes import free_port
from primenet.devnet.serve import serve_in_thread
from primenet.miner.checks import Check, CheckOptions, CheckReport, Severity, render_text, run_checks

pytestmark = pytest.mark.integration

NO_GPU = FakeNvml(library_missing=True)


def health_app(status_code: int) -> Starlette:
    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok" if status_code == 200 else "down"}, status_code=status_code)

    return Starlette(routes=[Route("/health", health)])


@pytest.fixture(scope="module")
def discovery_url() -> Iterator[str]:
    with serve_in_thread(health_app(200), port=free_port()) as url:
        yield url


@pytest.fixture
def options(tmp_path: Path, rpc_url: str, discovery_url: str) -> CheckOptions:
    return CheckOptions(
        storage_path=tmp_path / "storage",
        api_host="127.0.0.1",
        api_port=free_port(),
        rpc_url=rpc_url,
        chain_id=31337,
        discovery_url=discovery_url,
        timeout_s=2,
    )


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody can write to; root ignores modes, so for root it is a read-only tmpfs mount."""
    path = tmp_path / "read-only"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o500)
        yield path
        path.chmod(0o700)
        return
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if mount is None or umount is None:
        pytest.skip("mount(8) is not installed")
    mounted = subprocess.run([mount, "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run([umount, str(path)], check=True)


def by_name(report: CheckReport) -> dict[str, Check]:
    return {check.name: check for check in report.checks}


async def test_a_ready_host_passes(options: CheckOptions, rpc_url: str) -> None:
    report = await run_checks(options, nvml=NO_GPU)
    checks = by_name(report)
    assert set(checks) == {"docker", "nvidia-runtime", "gpus", "storage", "api-port", "chain-rpc", "discovery"}
    assert report.ok
    assert report.failures == []
    assert report.exit_code == 0
    client = docker.from_env()
    try:
        assert f"Docker engine {client.version()['Version']}" in checks["docker"].detail
    finally:
        client.close()
    assert checks["chain-rpc"].detail == f"{rpc_url} is chain 31337"
    assert checks["storage"].ok
    assert (options.storage_path).is_dir()
    assert list(options.storage_path.iterdir()) == []  # the probe file is removed
    # No GPU here: a reported state, and the NVIDIA runtime is then only a warning.
    assert not checks["gpus"].ok
    assert checks["gpus"].severity is Severity.WARNING
    assert "NVML library not found" in checks["gpus"].detail
    assert "gpus" in report.warnings
    if shutil.which("nvidia-ctk") is None:
        assert checks["nvidia-runtime"].severity is Severity.WARNING
        assert "nvidia-runtime" in report.warnings
    assert "all checks passed" in render_text(report)


async def test_each_broken_dependency_is_a_failure(options: CheckOptions, read_only_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        broken = options.model_copy(
            update={
                "storage_path": read_only_dir / "storage",
                "api_port": busy.getsockname()[1],
                "chain_id": 1,
                "discovery_url": f"http://127.0.0.1:{free_port()}",
            }
        )
        report = await run_checks(broken, nvml=NO_GPU)
    assert not report.ok
    assert report.exit_code == 1
    assert sorted(report.failures) == ["api-port", "chain-rpc", "discovery", "storage"]
    checks = by_name(report)
    assert "expected 1" in checks["chain-rpc"].detail
    assert "does not answer" in checks["discovery"].detail
    assert "not writable" in checks["storage"].detail
    assert "cannot be bound" in checks["api-port"].detail
    assert "failed: " in render_text(report)


async def test_unhealthy_discovery_fails(options: CheckOptions) -> None:
    with serve_in_thread(health_app(503), port=free_port()) as url:
        report = await run_checks(options.model_copy(update={"discovery_url": url}), nvml=NO_GPU)
    assert report.failures == ["discovery"]
    assert "HTTP 503, status down" in by_name(report)["discovery"].detail


async def test_gpus_make_the_nvidia_runtime_required(options: CheckOptions) -> None:
    report = await run_checks(options, nvml=mixed_host())
    checks = by_name(report)
    assert checks["gpus"].ok
    assert checks["gpus"].detail.startswith("3 GPU(s): 0: NVIDIA H100 80GB HBM3 (81559 MiB), 1: NVIDIA A10")
    runtimes = docker.from_env().info()["Runtimes"]
    if shutil.which("nvidia-ctk") is None or "nvidia" not in runtimes:
        assert checks["nvidia-runtime"].severity is Severity.ERROR
        assert report.failures == ["nvidia-runtime"]
        assert report.exit_code == 1


async def test_gpu_required_but_absent_or_badly_filtered_fails(options: CheckOptions) -> None:
    required = await run_checks(options.model_copy(update={"require_gpu": True}), nvml=NO_GPU)
    assert "gpus" in required.failures
    filtered = await run_checks(options.model_copy(update={"visible_devices": "7"}), nvml=mixed_host())
    assert "gpus" in filtered.failures
    assert "matches no GPU" in by_name(filtered)["gpus"].detail


def test_cli_json_contract_and_exit_codes(tmp_path: Path, rpc_url: str, discovery_url: str) -> None:
    runner = CliRunner()
    base = ["check", "--json", "--storage-path", str(tmp_path / "s"), "--host", "127.0.0.1", "--rpc-url", rpc_url]
    base += ["--visible-devices", "none"]  # the same outcome on a GPU host without the NVIDIA runtime
    ok = runner.invoke(miner_app, [*base, "--port", str(free_port()), "--discovery-url", discovery_url])
    report = json.loads(ok.stdout)
    assert ok.exit_code == 0, ok.stdout
    assert set(report) == {"ok", "checks", "failures", "warnings", "error"}
    assert report["ok"] is True
    assert all(set(check) == {"name", "ok", "detail", "severity"} for check in report["checks"])

    unreachable = f"http://127.0.0.1:{free_port()}"
    failed = runner.invoke(miner_app, [*base, "--port", str(free_port()), "--discovery-url", unreachable])
    assert failed.exit_code == 1
    assert json.loads(failed.stdout)["failures"] == ["discovery"]

    could_not_run = runner.invoke(miner_app, [*base, "--port", "0"])
    assert could_not_run.exit_code == 2
    assert "invalid options" in json.loads(could_not_run.stdout)["error"]


async def test_an_unreachable_docker_engine_fails(
    options: CheckOptions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    report = await run_checks(options, nvml=NO_GPU)
    assert report.failures == ["docker"]
    assert "does not answer" in by_name(report)["docker"].detail
    assert by_name(report)["nvidia-runtime"].detail == "unknown: the engine does not answer"
