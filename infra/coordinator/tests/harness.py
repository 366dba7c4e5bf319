"""Run the real Pulumi program (`infra/coordinator/__main__.py`) under mocks, without the Pulumi CLI.

`run_program(mocks, config, secret_keys)` is the one runner that every test of the program uses, whatever the mocks
do: `RecordingMocks` below only records and answers with plausible outputs; another `pulumi.runtime.Mocks`
subclass may realise each resource (e.g. on a real dockerd) and reuse this runner unchanged.

Contract of `run_program`:
- It runs `__main__.py` with `runpy` as Pulumi's Python host would, with the program folder first on `sys.path`,
  under `pulumi.runtime.set_mocks(mocks, project, stack, preview=False)` and with `config` as the stack's
  configuration: keys without a namespace get `primenet:`; non-string values are JSON-encoded, as the engine
  passes objects set with `pulumi config set --path`; `secret_keys` (same naming) are the keys stored as secrets.
- It returns once every resource registration and every output of the program has resolved.
  `mocks.new_resource` is called once per resource (custom and component) from the runtime's worker threads,
  possibly several at once, but never before the calls for the resources it depends on (its `depends_on`, its
  inputs' resources, and a component's children) have returned; what it returns becomes the resource's outputs,
  so a blocking `new_resource` (e.g. waiting for a container's health) holds back exactly its dependents.
- It returns a `ProgramResult`: the stack outputs resolved to plain values, which of them are secret, and what
  the monitor saw of every registration (type, name, URN, parent, custom or component, the URNs it depends on,
  its inputs with secrets unwrapped, and the input paths that were secret).
- An error of the program (e.g. `pulumi.RunError` for bad config, or an exception inside an `apply`) propagates.
- Each call runs in its own copy of the context (`contextvars`), so the runtime's settings, config and root
  stack of one run never leak into the next; the program's modules (`config`, `components.*`) are loaded fresh
  and removed afterwards, and modules of the same names imported by others are restored. Many runs in one
  process (one pytest session) are therefore independent. Call it from synchronous code (not from inside a
  running event loop): Pulumi's mock runtime drives the thread's current loop, so each run sets a new one and
  puts the previous one (or none, as `asyncio.run` leaves it) back after.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import json
import runpy
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.sync_await import _sync_await

PROGRAM_DIR = Path(__file__).resolve().parents[1]
NAMESPACE = "primenet"
_SECRET_SIG = rpc._special_secret_sig
_SIG_KEY = rpc._special_sig_key


@dataclass(frozen=True)
class Registration:
    """One resource as the (mock) engine saw it. `inputs` have secrets unwrapped; `secret_paths` say where."""

    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    dependencies: tuple[str, ...]
    inputs: Mapping[str, Any]
    secret_paths: frozenset[str]

    def is_secret(self, path: str) -> bool:
        """Whether the input at `path` (e.g. `uploads.0.content`) or a value containing it was a secret."""
        return any(path == secret or path.startswith(secret + ".") for secret in self.secret_paths)


@dataclass(frozen=True)
class ProgramResult:
    outputs: Mapping[str, Any]
    secret_outputs: frozenset[str]
    registrations: tuple[Registration, ...]

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def one(self, type_: str, name: str) -> Registration:
        found = [r for r in self.registrations if r.type == type_ and r.name == name]
        assert len(found) == 1, f"expected one {type_} named {name}, found {len(found)}"
        return found[0]

    def by_urn(self, urn: str) -> Registration:
        return next(r for r in self.registrations if r.urn == urn)


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The stock mock monitor, also recording each registration's parent, dependencies and secret inputs."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (the gRPC method's name)
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            raw = rpc.deserialize_properties(request.object)
            secret_paths: set[str] = set()
            inputs = unwrap_secrets(raw, "", secret_paths)
            self.registrations.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent=request.parent,
                    custom=bool(request.custom),
                    dependencies=tuple(request.dependencies),
                    inputs=inputs,
                    secret_paths=frozenset(secret_paths),
                )
            )
        return response


def unwrap_secrets(value: Any, path: str, secret_paths: set[str]) -> Any:
    """`value` with Pulumi's secret envelopes removed; the dotted path of each envelope goes into `secret_paths`."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            secret_paths.add(path)
            return unwrap_secrets(value.get("value"), path, secret_paths)
        return {key: unwrap_secrets(item, _join(path, key), secret_paths) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(item, _join(path, str(index)), secret_paths) for index, item in enumerate(value)]
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


@dataclass
class RecordingMocks(pulumi.runtime.Mocks):
    """Records every resource (type, name, inputs with secrets unwrapped) in order; answers plausibly.

    Outputs are the inputs plus what the provider would add: an `imageId` for a `RemoteImage`, a `mountpoint`
    for a `Volume`, and for a one-shot `Container` (`attach` and `logs`) `containerLogs` ending with
    `bootstrap_result` as one JSON line (the contract of `primenet chain bootstrap --json`).
    """

    bootstrap_result: Mapping[str, Any] = field(default_factory=lambda: sample_bootstrap_result())
    bootstrap_logs: str | None = None  # replaces the whole containerLogs when set
    resources: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        inputs = unwrap_secrets(dict(args.inputs), "", set())
        self.resources.append((args.typ, args.name, inputs))
        outputs = dict(args.inputs)
        if args.typ == "docker:index/remoteImage:RemoteImage":
            digest = hashlib.sha256(str(inputs.get("name")).encode()).hexdigest()
            outputs["imageId"] = f"sha256:{digest}"
            outputs["repoDigest"] = f"{inputs.get('name')}@sha256:{digest}"
        elif args.typ == "docker:index/volume:Volume":
            outputs["mountpoint"] = f"/var/lib/docker/volumes/{inputs.get('name')}/_data"
        elif args.typ == "docker:index/container:Container" and inputs.get("attach") and inputs.get("logs"):
            outputs["containerLogs"] = self.bootstrap_logs or (
                "deploying contracts...\n" + json.dumps(dict(self.bootstrap_result)) + "\n"
            )
            outputs["exitCode"] = 0
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        return {}, None

    def of_type(self, type_: str) -> Iterator[tuple[str, dict[str, Any]]]:
        return ((name, inputs) for typ, name, inputs in self.resources if typ == type_)


def sample_bootstrap_result(pool_id: int = 7, chain_id: int = 31337) -> dict[str, Any]:
    """What `primenet chain bootstrap --json` prints on a fresh Anvil chain (addresses are made up)."""
    return {
        "deployed": True,
        "pool_created": True,
        "pool_id": pool_id,
        "domain_id": 1,
        "file": "/run/primenet/deployment/deployment.json",
        "deployment": {
            "chain_id": chain_id,
            "block": 1,
            "contracts": {
                "PrimeNetwork": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                "ComputeRegistry": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
                "ComputePool": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
            },
        },
    }


def run_program(
    mocks: pulumi.runtime.Mocks,
    config: Mapping[str, Any],
    secret_keys: Iterable[str] = (),
    project: str = "primenet",
    stack: str = "test",
) -> ProgramResult:
    """Run `__main__.py` under `mocks` with `config`; see the module docstring for the contract."""
    context = contextvars.copy_context()
    with _own_event_loop():
        return context.run(_run, mocks, config, tuple(secret_keys), project, stack)


def _run(
    mocks: pulumi.runtime.Mocks, config: Mapping[str, Any], secret_keys: tuple[str, ...], project: str, stack: str
) -> ProgramResult:
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_all_config(
        {_full_key(key): _config_text(value) for key, value in config.items()},
        [_full_key(key) for key in secret_keys],
    )
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    pulumi_settings.SETTINGS.outputs.clear()
    root = pulumi_settings.get_root_resource()
    outputs: dict[str, Any] = {}
    secret: set[str] = set()

    async def resolve() -> None:
        stack_outputs: dict[str, Any] = getattr(root, "outputs", {})
        for name, value in stack_outputs.items():
            output = pulumi.Output.from_input(value)
            outputs[name] = await output.future()
            if await output.is_secret():
                secret.add(name)

    def program() -> Any:
        runpy.run_path(str(PROGRAM_DIR / "__main__.py"), run_name="__main__")
        return resolve()

    # The modules stay loaded until every callback ran: Pulumi resolves their annotations late.
    with _program_modules():
        _sync_await(pulumi.runtime.stack.run_pulumi_func(program))
    return ProgramResult(outputs, frozenset(secret), tuple(monitor.registrations))


@contextlib.contextmanager
def _own_event_loop() -> Iterator[None]:
    """A new current event loop for one run, the previous one (or none) put back after.

    Pulumi's mock runtime drives the thread's current loop, and `asyncio.run` (which other tests and the devnet
    call) leaves the main thread without one, so a run after it would fail with "no current event loop".
    """
    policy = asyncio.get_event_loop_policy()
    try:
        previous: asyncio.AbstractEventLoop | None = policy.get_event_loop()
    except RuntimeError:
        previous = None
    loop = asyncio.new_event_loop()
    policy.set_event_loop(loop)
    try:
        yield
    finally:
        policy.set_event_loop(previous)
        loop.close()


class _program_modules:  # noqa: N801 (used as a context manager, reads as a phrase)
    """The program folder first on sys.path; its top-level module names fresh inside, restored after."""

    def __enter__(self) -> None:
        self.names = {p.stem for p in PROGRAM_DIR.glob("*.py") if p.stem != "__main__"}
        self.names |= {p.parent.name for p in PROGRAM_DIR.glob("*/__init__.py")}
        self.saved = {name: module for name, module in sys.modules.items() if _top(name) in self.names}
        for name in self.saved:
            del sys.modules[name]
        sys.path.insert(0, str(PROGRAM_DIR))

    def __exit__(self, *exc: object) -> None:
        sys.path.remove(str(PROGRAM_DIR))
        for name in [name for name in sys.modules if _top(name) in self.names]:
            del sys.modules[name]
        sys.modules.update(self.saved)


def _top(module_name: str) -> str:
    return module_name.split(".")[0]


def _full_key(key: str) -> str:
    return key if ":" in key else f"{NAMESPACE}:{key}"


def _config_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
