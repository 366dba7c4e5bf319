"""`primenet miner check`: can this host run a miner? In the style of NVIDIA DeepOps' doctor.

Every check really does the thing it vouches for (talks to the Docker engine, writes a file, binds the
port, asks the chain for its id), so it can fail. The report is a JSON contract for scripts and playbooks:
`{"ok", "checks": [{"name", "ok", "detail", "severity"}], "failures": [names], "warnings": [names]}`;
`ok` is false only when a check of severity "error" fails. Exit codes: 0 ok, 1 failures, 2 could not run.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import shutil
import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import docker
import httpx
import pynvml
from docker.errors import DockerException
from pydantic import BaseModel, Field

from primenet.miner.hardware import GpuInventory, VisibleDevicesError, detect_gpus, storage_free_gb

EXIT_OK, EXIT_FAILURES, EXIT_COULD_NOT_RUN = 0, 1, 2


class Severity(enum.StrEnum):
    """What a failure of the check means: "error" stops the miner, "warning" is worth knowing."""

    ERROR = "error"
    WARNING = "warning"


class Check(BaseModel):
    name: str
    ok: bool
    detail: str
    severity: Severity = Severity.ERROR


class CheckReport(BaseModel):
    ok: bool
    checks: list[Check] = Field(default_factory=list)
    failures: list[str] = Field(default_factory=list, description="names of failed checks of severity error")
    warnings: list[str] = Field(default_factory=list, description="names of failed checks of severity warning")
    error: str | None = Field(None, description="why the checks could not run (exit code 2)")

    @classmethod
    def of(cls, checks: list[Check]) -> CheckReport:
        failures = [c.name for c in checks if not c.ok and c.severity is Severity.ERROR]
        warnings = [c.name for c in checks if not c.ok and c.severity is Severity.WARNING]
        return cls(ok=not failures, checks=checks, failures=failures, warnings=warnings)

    @classmethod
    def could_not_run(cls, reason: str) -> CheckReport:
        return cls(ok=False, error=reason)

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return EXIT_COULD_NOT_RUN
        return EXIT_OK if self.ok else EXIT_FAILURES


class CheckOptions(BaseModel):
    """What the miner would use; the CLI fills it from options and PRIMENET_* variables."""

    storage_path: Path
    api_host: str = "0.0.0.0"
    api_port: int = Field(8091, ge=1, le=65535)
    rpc_url: str = "http://127.0.0.1:8545"
    chain_id: int = Field(31337, ge=0)
    discovery_url: str = "http://127.0.0.1:8089"
    visible_devices: str | None = None
    require_gpu: bool = Field(False, description="a host without GPU fails instead of warning")
    timeout_s: float = Field(5.0, gt=0, le=120)


async def run_checks(options: CheckOptions, *, nvml: Any = pynvml) -> CheckReport:
    """Run every check (the slow ones concurrently) and collect the report; never raises for a failed check."""
    gpus_check, inventory = check_gpus(options, nvml)
    results = await asyncio.gather(
        asyncio.to_thread(check_docker, inventory, options.timeout_s),
        asyncio.to_thread(check_storage, options.storage_path),
        asyncio.to_thread(check_port, options.api_host, options.api_port),
        check_chain(options.rpc_url, options.chain_id, options.timeout_s),
        check_discovery(options.discovery_url, options.timeout_s),
    )
    docker_checks, storage, port, chain, discovery = results
    return CheckReport.of([*docker_checks, gpus_check, storage, port, chain, discovery])


def render_text(report: CheckReport) -> str:
    """One line per check for people; --json gives `report.model_dump_json()` to scripts."""
    if report.error is not None:
        return f"could not run the checks: {report.error}"
    lines = [f"{_mark(c):<4}  {c.name:<15} {c.detail}" for c in report.checks]
    summary = "all checks passed" if report.ok else f"failed: {', '.join(report.failures)}"
    if report.warnings:
        summary += f" (warnings: {', '.join(report.warnings)})"
    return "\n".join([*lines, summary])


# --- the checks ---------------------------------------------------------------------------------------
def check_gpus(options: CheckOptions, nvml: Any) -> tuple[Check, GpuInventory]:
    severity = Severity.ERROR if options.require_gpu else Severity.WARNING
    try:
        inventory = detect_gpus(options.visible_devices, nvml=nvml)
    except VisibleDevicesError as error:
        return Check(name="gpus", ok=False, detail=str(error)), GpuInventory()
    if not inventory.gpus:
        reason = "; ".join(inventory.problems) or "the visible-devices filter leaves none"
        return Check(name="gpus", ok=False, detail=f"no GPU: {reason}", severity=severity), inventory
    listed = ", ".join(f"{g.index}: {g.model} ({g.memory_mib} MiB)" for g in inventory.gpus)
    versions = f"driver {inventory.driver_version or '?'}, CUDA {inventory.cuda_version or '?'}"
    detail = f"{len(inventory.gpus)} GPU(s): {listed}; {versions}"
    if inventory.problems:
        detail += f"; {'; '.join(inventory.problems)}"
    return Check(name="gpus", ok=True, detail=detail, severity=severity), inventory


def check_docker(inventory: GpuInventory, timeout_s: float) -> list[Check]:
    """The engine answers (and its version), then the NVIDIA runtime: required only where there are GPUs."""
    runtime_severity = Severity.ERROR if inventory.gpus else Severity.WARNING
    try:
        client = docker.from_env(timeout=int(max(1, timeout_s)))
        try:
            version: Mapping[str, Any] = client.version()
            info: Mapping[str, Any] = client.info()
        finally:
            client.close()
    except (DockerException, OSError) as error:  # requests' timeouts and connection errors are OSErrors
        hint = " (add the user to the docker group)" if "ermission denied" in str(error) else ""
        engine = Check(name="docker", ok=False, detail=f"the engine does not answer: {error}{hint}")
        runtime = Check(
            name="nvidia-runtime", ok=False, detail="unknown: the engine does not answer", severity=runtime_severity
        )
        return [engine, runtime]
    engine = Check(
        name="docker", ok=True, detail=f"Docker engine {version.get('Version')} (API {version.get('ApiVersion')})"
    )
    return [engine, check_nvidia_runtime(info, runtime_severity)]


def check_nvidia_runtime(info: Mapping[str, Any], severity: Severity) -> Check:
    missing = []
    if shutil.which("nvidia-ctk") is None:
        missing.append("nvidia-ctk is not on PATH")
    runtimes = sorted((info.get("Runtimes") or {}).keys())
    if "nvidia" not in runtimes:
        missing.append(f"the engine has no 'nvidia' runtime (runtimes: {', '.join(runtimes) or 'none'})")
    if missing:
        why = "" if severity is Severity.ERROR else " (no GPU here, so not needed yet)"
        return Check(name="nvidia-runtime", ok=False, detail="; ".join(missing) + why, severity=severity)
    return Check(name="nvidia-runtime", ok=True, detail="nvidia-ctk and the 'nvidia' runtime", severity=severity)


def check_storage(path: Path) -> Check:
    """Really write (and fsync) a file there, then remove it: permissions, read-only mounts and full disks fail."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".primenet-check-") as probe:
            probe.write(b"primenet")
            probe.flush()
            os.fsync(probe.fileno())
        free = storage_free_gb(path)
    except OSError as error:
        return Check(name="storage", ok=False, detail=f"{path} is not writable: {error.strerror or error}")
    return Check(name="storage", ok=True, detail=f"{path} writable, {free:.1f} GB free")


def check_port(host: str, port: int) -> Check:
    """Bind as uvicorn would (SO_REUSEADDR): fails when something already listens there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            return Check(name="api-port", ok=False, detail=f"{host}:{port} cannot be bound: {error.strerror}")
    return Check(name="api-port", ok=True, detail=f"{host}:{port} is free")


async def check_chain(rpc_url: str, chain_id: int, timeout_s: float) -> Check:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.post(rpc_url, json=body)
            response.raise_for_status()
            answered = int(response.json()["result"], 16)
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
        return Check(name="chain-rpc", ok=False, detail=f"{rpc_url} does not answer eth_chainId: {_describe(error)}")
    if answered != chain_id:
        return Check(name="chain-rpc", ok=False, detail=f"{rpc_url} is chain {answered}, expected {chain_id}")
    return Check(name="chain-rpc", ok=True, detail=f"{rpc_url} is chain {answered}")


async def check_discovery(url: str, timeout_s: float) -> Check:
    health = f"{url.rstrip('/')}/health"
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(health)
    except httpx.HTTPError as error:
        return Check(name="discovery", ok=False, detail=f"{health} does not answer: {_describe(error)}")
    status = ""
    with contextlib.suppress(ValueError, AttributeError):
        status = f", status {response.json().get('status')}"
    if not response.is_success:
        return Check(name="discovery", ok=False, detail=f"{health} answered HTTP {response.status_code}{status}")
    return Check(name="discovery", ok=True, detail=f"{health} answered HTTP {response.status_code}{status}")


def _mark(check: Check) -> str:
    if check.ok:
        return "ok"
    return "FAIL" if check.severity is Severity.ERROR else "warn"


def _describe(error: Exception) -> str:
    return str(error) or type(error).__name__
