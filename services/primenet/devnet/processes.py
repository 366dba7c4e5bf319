"""Background server processes that outlive the command which started them, and stop exactly as recorded.

A process is recorded with its pid and its command line. Before signalling a recorded pid we compare the
command line the kernel reports for it with the recorded one, so a pid that was reused by an unrelated
program after a reboot or crash is never killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx
from pydantic import BaseModel

from primenet.core.errors import PrimenetError


class ProcessStartError(PrimenetError, RuntimeError):
    """A server exited or did not answer in time; the message ends with the tail of its log."""


class ManagedProcess(BaseModel):
    """What `down` needs to find and stop a process that `up` started, and what `status` shows."""

    name: str
    pid: int
    port: int
    url: str
    log: str
    cmdline: list[str]

    @classmethod
    def of(cls, name: str, process: subprocess.Popen[bytes], *, port: int, url: str, log: Path) -> ManagedProcess:
        """Record a started process with the kernel's view of its command line (what `stop` compares).

        `Popen` returns while the kernel may still be setting up the new program, whose command line then reads
        empty for a moment: wait for it, since a process recorded without one could never be stopped.
        """
        deadline = time.monotonic() + 5.0
        while (cmdline := cmdline_of(process.pid)) is None and process.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.001)
        return cls(name=name, pid=process.pid, port=port, url=url, log=str(log), cmdline=cmdline or [])


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def spawn(cmd: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `cmd` in its own session (a Ctrl-C in the terminal does not reach it), output to `log_path`.

    `env` is added to this process's environment.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **env} if env else None,
        )


def answers_health(url: str) -> Callable[[], bool]:
    """A readiness check for `wait_ready`: the service at `url` answers `GET /health` (any status below 500)."""

    def check() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1.0).status_code < 500
        except httpx.HTTPError:
            return False

    return check


def wait_ready(
    process: subprocess.Popen[bytes], ready: Callable[[], bool], *, name: str, log_path: Path, timeout_s: float
) -> None:
    """Poll `ready` until it answers True; raise with the log's tail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        if process.poll() is not None:
            raise ProcessStartError(f"{name} exited with status {process.returncode}{log_tail(log_path)}")
        if ready():
            return
        if time.monotonic() > deadline:
            raise ProcessStartError(f"{name} did not answer within {timeout_s:.0f} s{log_tail(log_path)}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def log_tail(log_path: Path, lines: int = 15) -> str:
    try:
        tail = log_path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n--- last lines of " + str(log_path) + " ---\n" + "\n".join(tail) if tail else ""


def cmdline_of(pid: int) -> list[str] | None:
    """The running command line of `pid`, or None when no such process (or a zombie) exists."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    if not raw:  # zombies and kernel threads have an empty command line
        return None
    return raw.rstrip(b"\0").decode(errors="replace").split("\0")


def is_running(process: ManagedProcess) -> bool:
    """True only when the recorded pid still runs the recorded program."""
    return cmdline_of(process.pid) == process.cmdline


def stop(process: ManagedProcess, *, timeout_s: float = 10.0, kill: bool = False) -> bool:
    """SIGTERM, then SIGKILL after `timeout_s` (with `kill`, SIGKILL at once, as a crash would); returns whether
    our process was running. Returns once the process is gone."""
    if not is_running(process):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while is_running(process):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
        _reap(process.pid)
        time.sleep(0.02)
    return True


def _reap(pid: int) -> None:
    """Collect the exit status when the process is our own child (tests), so it leaves no zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
