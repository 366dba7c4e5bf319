"""What a miner remembers across restarts: its pool membership, orchestrator endpoint and current assignment.

`MinerMemory` holds it in memory and writes every change through to `StateFile`: one JSON file, mode 0600,
replaced atomically (write a temporary file, fsync, rename), so a crash at any moment leaves either the old or the
new state, never half of one. With it a restarted miner resumes heartbeats at once and re-attaches to its running
task container (found by name) instead of restarting it.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from pydantic import BaseModel, Field, ValidationError

from primenet.core.files import write_atomically
from primenet.core.models import TaskSpec

log = structlog.get_logger(__name__)


class PersistedState(BaseModel):
    node: str | None = Field(None, description="the node this state belongs to; another node's state is ignored")
    pool_id: int | None = Field(None, description="the pool the node joined (None: in none)")
    orchestrator_url: str | None = Field(None, description="where heartbeats go (None: not heartbeating)")
    assignment: TaskSpec | None = Field(None, description="the last assignment received")


class StateFile:
    def __init__(self, path: Path, node: str) -> None:
        self.path = path
        self.node = node.lower()

    def load(self) -> PersistedState:
        """The saved state; an absent, unreadable or foreign file is an empty state (logged), never a crash."""
        try:
            state = PersistedState.model_validate_json(self.path.read_text())
        except FileNotFoundError:
            return PersistedState(node=self.node)
        except (OSError, ValidationError) as exc:
            log.warning("miner state unreadable; starting without it", path=str(self.path), error=str(exc))
            return PersistedState(node=self.node)
        if state.node != self.node:
            log.warning("miner state belongs to another node; ignored", path=str(self.path), node=state.node)
            return PersistedState(node=self.node)
        return state

    def save(self, state: PersistedState) -> None:
        data = state.model_copy(update={"node": self.node}).model_dump_json(indent=2).encode()
        write_atomically(self.path, data, mode=0o600)


class MinerMemory:
    """The persisted state in memory; every change is written through to the 0600 state file."""

    def __init__(self, file: StateFile) -> None:
        self.file = file
        self.state = file.load()

    def update(self, **changes: object) -> PersistedState:
        self.state = self.state.model_copy(update=changes)
        self.file.save(self.state)
        return self.state
