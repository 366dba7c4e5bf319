"""Wire models that two or more services must agree on: a node's record, its hardware, a task.

Written once here (the import floors forbid services from importing each other). Units are in the field
names: `_mib` is mebibytes, `_gb` is 10^9 bytes, so nobody repeats the reference's KiB-as-MB mistake.
"""

from __future__ import annotations

import enum
import hashlib
import json
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from primenet.core.errors import ApiError
from primenet.core.nodeaddr import canonical_ip

ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"

# Every number on the wire is finite and bounded: Redis, Lua (doubles), JSON readers in other languages and
# `int(float)` arithmetic all break on what Python's unbounded ints and `Infinity` allow.
MAX_INT64 = 2**63 - 1
MAX_UNIX_TIME = 2.0**34  # year 2514: a clock beyond it is a bug or an attack
MAX_SECONDS = 10.0**9  # about 31 years: longer than any duration a service has a use for
UnixTime = Annotated[float, Field(ge=0, le=MAX_UNIX_TIME, allow_inf_nan=False, description="unix seconds")]
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
Int64 = Annotated[int, Field(ge=-MAX_INT64 - 1, le=MAX_INT64)]


class Wire(BaseModel):
    """Strict by default: unknown fields are refused, so a typo never passes silently; and no float may be
    `Infinity` or `NaN` (JSON cannot carry them back: a record holding one could never be read again)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


WireT = TypeVar("WireT", bound=Wire)


class UnstorableError(ApiError):
    """A record that would not read back as itself with its own model: refused before anything is written."""

    def __init__(self, model: str, reason: str) -> None:
        super().__init__(422, "record_unstorable", f"this {model} cannot be stored: {reason}")


def stored_form(record: Wire) -> str:
    """The JSON a store writes for `record`, proven first to read back, with the same model, as the same record.

    Stores write through this, so what is in Redis is always what the readers' model accepts: one bad upload can
    never leave a record that fails every later read (and every pass over the records).
    """
    text = record.model_dump_json()
    try:
        again = type(record).model_validate_json(text)
    except ValidationError as exc:
        raise UnstorableError(type(record).__name__, str(exc.errors()[0]["msg"])) from None
    if again != record:
        raise UnstorableError(type(record).__name__, "it reads back different")
    return text


def read_stored(model: type[WireT], text: str) -> WireT | None:
    """The record `stored_form` wrote, or None when what is stored does not validate (written by an older version,
    or by hand): readers skip it rather than fail the whole listing or pass."""
    try:
        return model.model_validate_json(text)
    except ValidationError:
        return None


class GpuDevice(Wire):
    index: int = Field(ge=0, le=1024, description="NVML index on the host")
    model: str = Field(min_length=1, max_length=128, description="e.g. NVIDIA H100 80GB HBM3")
    memory_mib: int = Field(ge=0, le=10_000_000)
    uuid: str | None = Field(None, max_length=128)
    pci_bus_id: str | None = Field(None, max_length=64)
    compute_capability: str | None = Field(None, max_length=16, description="major.minor, e.g. 9.0")


class ComputeSpecs(Wire):
    """What a node offers; reported by the miner, checked against a pool's requirements."""

    gpus: list[GpuDevice] = Field(default_factory=list, max_length=64)
    driver_version: str | None = Field(None, max_length=64)
    cuda_version: str | None = Field(None, max_length=64)
    cpu_model: str = Field("", max_length=256)
    cpu_cores: int = Field(0, ge=0, le=100_000)
    ram_mib: int = Field(0, ge=0, le=1 << 40)
    storage_path: str = Field("", max_length=4096)
    storage_free_gb: float = Field(0.0, ge=0, le=1e9)

    @property
    def gpu_count(self) -> int:
        return len(self.gpus)


# The fields a challenge vouches for: the hardware that is paid for. Free disk, the storage path and driver or CUDA
# versions move without the hardware changing, so they are left out (a node may re-upload them freely).
BOUND_SPEC_FIELDS = ("gpus", "cpu_model", "cpu_cores", "ram_mib")
SPECS_HASH_PATTERN = r"^[0-9a-f]{64}$"


def specs_hash(specs: ComputeSpecs) -> str:
    """sha256 (hex) of the canonical JSON (sorted keys, no spaces) of the specs' `BOUND_SPEC_FIELDS`.

    What a validator binds a validation to: two specs with the same hash describe the same challenged hardware.
    Stable across processes and versions as long as those fields keep their names and types.
    """
    bound = specs.model_dump(mode="json", include=set(BOUND_SPEC_FIELDS))
    canonical = json.dumps(bound, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class SpecsBinding(Wire):
    """Validator -> discovery `PUT /api/validator/nodes/{address}/specs`: the specs a passed challenge vouched for.

    `specs_hash` must equal `specs_hash(specs)`; discovery keeps both and reports the node validated only while
    the specs it uploads hash to the same value."""

    specs: ComputeSpecs
    specs_hash: str = Field(pattern=SPECS_HASH_PATTERN)


class NodeRecord(Wire):
    """A node's self-description, uploaded to discovery signed by the node key."""

    node: str = Field(pattern=ADDRESS_PATTERN, description="the node key's address")
    provider: str = Field(pattern=ADDRESS_PATTERN)
    ip: str = Field(
        min_length=2,
        max_length=64,
        description="IPv4 or IPv6 literal the miner's API is reachable at (no host name); stored canonical",
    )
    port: int = Field(ge=1, le=65535)
    pool_id: int = Field(ge=0, le=2**63)
    specs: ComputeSpecs

    @field_validator("node", "provider")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("ip")
    @classmethod
    def _canonical_ip(cls, value: str) -> str:
        # One spelling per address: `010.0.0.1`, `::ffff:10.0.0.1` or a host name cannot dodge the per-IP limit,
        # and nothing but an address can reach the URLs built from it. Which ranges are allowed is a policy of
        # the services (`primenet.core.nodeaddr.AddressPolicy`), not of the wire format.
        return canonical_ip(value)


class TaskState(enum.StrEnum):
    PENDING = "pending"
    PULLING = "pulling"
    RUNNING = "running"
    RESTARTING = "restarting"
    COMPLETED = "completed"
    FAILED = "failed"
    UNKNOWN = "unknown"


_LATER_FIELDS: dict[str, object] = {"run_as_root": False}


class TaskSpec(Wire):
    """What a node runs: one container. The config hash names the container, so a changed spec replaces it."""

    task_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    image: str = Field(min_length=1, max_length=512)
    command: list[str] | None = Field(None, max_length=256)
    entrypoint: list[str] | None = Field(None, max_length=64)
    env: dict[str, str] = Field(default_factory=dict, max_length=256)
    gpus: int = Field(0, ge=0, le=64, description="GPUs the container gets (0: none; all the node has if more)")
    shm_size_mib: int = Field(64, ge=1, le=1 << 20)
    cpu_limit: float | None = Field(None, gt=0, le=4096, description="CPUs; None: no limit")
    memory_limit_mib: int | None = Field(None, ge=16, le=1 << 30)
    max_restarts: int = Field(3, ge=0, le=1000, description="restarts after failure before the task is failed")
    run_as_root: bool = Field(False, description="run as root (the provider must allow it; else uid 65534)")

    def config_hash(self) -> str:
        """Stable across processes and platforms (sha256 of canonical JSON, not Python's hash())."""
        fields = self.model_dump(mode="json")
        # Fields added later count only when set: an upgraded miner keeps the containers it already runs.
        for name, default in _LATER_FIELDS.items():
            if fields.get(name) == default:
                fields.pop(name, None)
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def container_name(self) -> str:
        return f"prime-task-{self.task_id}-{self.config_hash()}"


class TaskDetails(Wire):
    """What the miner reports of the container that runs its task."""

    container_id: str | None = None
    image_id: str | None = None
    status: str | None = Field(None, description="Docker's own state string")
    exit_code: Int64 | None = None
    restarts: int = Field(0, ge=0, le=MAX_INT64)
    started_at: str | None = None


class InviteRequest(Wire):
    """A pool owner's invitation, sent to the miner's `POST /invite`: the on-chain `PoolInvite` fields, the compute
    manager's EIP-712 signature over them, and where the node must send its heartbeats once it joined."""

    domain_id: int = Field(ge=0, le=2**63)
    pool_id: int = Field(ge=0, le=2**63)
    node: str = Field(pattern=ADDRESS_PATTERN, description="the invited node's address")
    nonce: int = Field(ge=0, lt=2**256, description="single use per pool, checked on chain")
    expiry: int = Field(ge=0, lt=2**63, description="unix seconds; the chain accepts the invite until then")
    signature: str = Field(pattern=r"^(0x)?[0-9a-fA-F]{130}$", description="65 bytes r||s||v, hex")
    orchestrator_url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)

    @field_validator("node")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("orchestrator_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")


class Heartbeat(Wire):
    """Miner -> orchestrator `POST /heartbeat`, signed by the node key for its pool's orchestrator
    (`core.auth.orchestrator_audience`)."""

    address: str = Field(pattern=ADDRESS_PATTERN, description="the node's address (the signer)")
    task_id: str | None = Field(None, max_length=64)
    task_state: TaskState | None = None
    task_details: TaskDetails | None = None
    task_message: str | None = Field(None, max_length=4096, description="why a task is failed or pending")
    version: str = Field(max_length=64, description="the miner's primenet version")
    timestamp: UnixTime = Field(description="the miner's clock, unix seconds")

    @field_validator("address")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class HeartbeatReply(Wire):
    """Orchestrator -> miner: what the node must run now (None: nothing; its task container is removed).

    `hold`: the orchestrator cannot tell now (its store was found empty where the pool had state, and an operator
    has not confirmed it yet): the miner keeps its current assignment and container as they are, and `assignment`
    is ignored. Covered by the reply signature like the rest of the body (`core.replies`)."""

    assignment: TaskSpec | None = None
    hold: bool = False


class FeedEvent(BaseModel):
    """One change in discovery's feed. Readers ignore fields added later (no `extra="forbid"` here)."""

    cursor: str
    type: str = Field(description="registered, updated, flags_changed or removed")
    node: str
    pool_id: int | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class FeedPage(BaseModel):
    events: list[FeedEvent]
    cursor: str = Field(description="pass it back as `since` to get what comes next")
    reset: bool = Field(False, description="the cursor was older than the oldest kept event: list again")
