"""The devnet launcher without servers: how each service is started, `stop --kill`, and what restart refuses."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from primenet.cli.main import app
from primenet.devnet.local import Devnet, DevnetError, DevnetSettings, DevnetState
from primenet.devnet.processes import ManagedProcess, is_running, spawn, stop
from primenet.devnet.services import PRIMENET, SERVICES, LaunchConfig, ServiceLauncher

pytestmark = pytest.mark.unit
runner = CliRunner()

PORTS = {"anvil": 1001, "redis": 1002, "discovery": 1003, "orchestrator": 1004, "miner": 1005, "validator": 1006}


def launch(interval: float = 2.0) -> LaunchConfig:
    return LaunchConfig(
        host="127.0.0.1",
        ports=PORTS,
        rpc_url="http://127.0.0.1:1001",
        redis_port=1002,
        deployment_file="/nowhere/deployment.json",
        heartbeat_interval_s=interval,
    )


def test_heartbeat_interval_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DevnetSettings().heartbeat_interval_s == 2.0
    monkeypatch.setenv("PRIMENET_DEVNET_HEARTBEAT_INTERVAL_S", "3.5")
    assert DevnetSettings().heartbeat_interval_s == 3.5
    monkeypatch.setenv("PRIMENET_DEVNET_HEARTBEAT_INTERVAL_S", "0")
    with pytest.raises(ValidationError, match="greater than 0"):
        DevnetSettings()


def test_orchestrator_and_miner_beat_at_the_devnet_interval(tmp_path: Path) -> None:
    launcher = ServiceLauncher(launch(3.5), state_dir=tmp_path, timeout_s=1, progress=lambda _: None)
    commands = {service: launcher.command(service) for service in SERVICES}
    assert {service: cmd for service, (cmd, _) in commands.items()} == {
        "discovery": [PRIMENET, "discovery"],
        "validator": [PRIMENET, "validator", "run"],
        "orchestrator": [PRIMENET, "orchestrator"],
        "miner": [PRIMENET, "miner", "run"],
    }
    for service in ("orchestrator", "miner"):
        assert commands[service][1]["PRIMENET_HEARTBEAT_INTERVAL_S"] == "3.5"
    assert commands["miner"][1]["PRIMENET_PORT"] == "1005"
    assert (tmp_path / "keys" / "node.key").stat().st_mode & 0o777 == 0o600
    assert launcher.command("orchestrator") == commands["orchestrator"]  # built the same way every time
    with pytest.raises(ValueError, match="unknown service 'anvil'"):
        launcher.command("anvil")


def test_a_process_is_recorded_with_its_command_line_even_right_after_it_was_spawned(tmp_path: Path) -> None:
    # Right after Popen returns the kernel may still show an empty command line; a record without one could
    # never be stopped (`down` once left the devnet's miner running this way).
    for _ in range(100):
        child = spawn(["sleep", "30"], tmp_path / "sleep.log")
        try:
            record = ManagedProcess.of("sleeper", child, port=1, url="http://127.0.0.1:1", log=tmp_path / "sleep.log")
            assert record.cmdline[-2:] == ["sleep", "30"]
        finally:
            child.kill()
            child.wait()


def test_stop_with_kill_does_not_wait_for_a_process_that_ignores_sigterm() -> None:
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        record = ManagedProcess.of("sleeper", child, port=1, url="http://127.0.0.1:1", log=Path("/dev/null"))
        started = time.monotonic()
        assert stop(record, kill=True, timeout_s=30)
        assert time.monotonic() - started < 5
        assert child.wait(5) == -9
        assert not is_running(record)
        assert stop(record, kill=True) is False  # gone: nothing is signalled
    finally:
        child.kill()
        child.wait()


def test_restart_never_signals_a_process_that_is_not_the_recorded_service(tmp_path: Path) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # A state file whose discovery record points at an unrelated program (its own command line recorded).
        record = ManagedProcess.of(
            "discovery", bystander, port=1003, url="http://127.0.0.1:1003", log=tmp_path / "d.log"
        )
        state = DevnetState(
            started_at=0, chain_id=31337, processes={"discovery": record}, deployment_file="x", launch=launch()
        )
        (tmp_path / "devnet.json").write_text(state.model_dump_json())
        devnet = Devnet(DevnetSettings(state_dir=tmp_path))
        with pytest.raises(DevnetError, match="this primenet would start"):
            devnet.restart("discovery")
        assert bystander.poll() is None
        with pytest.raises(DevnetError, match="not a process that restart manages"):
            devnet.restart("gateway")
        with pytest.raises(DevnetError, match="runs no redis"):
            devnet.restart("redis")
        with pytest.raises(DevnetError, match="runs no miner"):
            devnet.restart("miner")
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.parametrize(
    ("service", "message"),
    [
        ("anvil", "no devnet is running"),
        ("redis", "no devnet is running"),
        ("gateway", "unknown service 'gateway': choose one of anvil, redis, discovery, validator, orchestrator, miner"),
        ("orchestrator", "no devnet is running"),
    ],
)
def test_restart_refuses_what_it_cannot_restart(tmp_path: Path, service: str, message: str) -> None:
    result = runner.invoke(app, ["devnet", "restart", service, "--state-dir", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert message in result.output
