"""Every number on the wire is finite and bounded, and whatever a model accepts, a store can write and read back.

Two checks: a static one over the JSON schema of every wire model (each integer and number has both bounds), and a
property-based one that puts hostile numbers (Infinity, NaN, 1e400, 5000-digit integers, huge floats) into every
numeric field of a valid example and requires a clean refusal or a record that round-trips through `stored_form`.
"""

from __future__ import annotations

import importlib
import json
import math
import pkgutil
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

import primenet
from primenet.core.auth import SignedHeader
from primenet.core.models import Wire, stored_form

pytestmark = pytest.mark.unit

ADDRESS = "0x" + "ab" * 20
HEX32 = "cd" * 32


def wire_models() -> list[type[BaseModel]]:
    """Every `Wire` model of the package (all modules imported first), and the signed header, which is not one."""
    for module in pkgutil.walk_packages(primenet.__path__, "primenet."):
        importlib.import_module(module.name)
    found: list[type[BaseModel]] = [SignedHeader]
    pending = list(Wire.__subclasses__())
    while pending:
        model = pending.pop()
        found.append(model)
        pending.extend(model.__subclasses__())
    return sorted(set(found), key=lambda model: f"{model.__module__}.{model.__qualname__}")


def numeric_schemas(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, schema) of every integer and number in a model's JSON schema, $refs followed."""
    definitions = schema.get("$defs", {})

    def walk(node: Any, path: str, seen: frozenset[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                yield from walk(definitions[name], path, seen | {name})
            return
        if node.get("type") in ("integer", "number") and "enum" not in node and "const" not in node:
            yield path, node
        for key, child in node.get("properties", {}).items():
            yield from walk(child, f"{path}.{key}", seen)
        for key in ("items", "additionalProperties"):
            yield from walk(node.get(key), f"{path}[]", seen)
        for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            for child in node.get(key, []):
                yield from walk(child, path, seen)

    yield from walk(schema, "", frozenset())


@pytest.mark.parametrize("model", wire_models(), ids=lambda model: model.__qualname__)
def test_every_number_of_every_wire_model_is_bounded(model: type[BaseModel]) -> None:
    unbounded = [
        path
        for path, schema in numeric_schemas(model.model_json_schema())
        if not ({"minimum", "exclusiveMinimum"} & schema.keys() and {"maximum", "exclusiveMaximum"} & schema.keys())
    ]
    assert not unbounded, f"{model.__qualname__}: numbers without a lower and an upper bound: {unbounded}"


def test_the_bounds_check_finds_an_unbounded_number() -> None:
    class Loose(Wire):
        count: int = 0
        ratio: float = 0.0

    assert [path for path, _ in numeric_schemas(Loose.model_json_schema())] == [".count", ".ratio"]


# --- hostile numbers in valid examples ------------------------------------------------------------------

SPECS = {
    "gpus": [{"index": 0, "model": "NVIDIA H100 80GB HBM3", "memory_mib": 81559}],
    "cpu_cores": 8,
    "ram_mib": 65536,
    "storage_free_gb": 100.0,
}
TASK = {"task_id": "t1", "image": "busybox:1", "gpus": 1, "shm_size_mib": 64, "cpu_limit": 2.0, "max_restarts": 3}
EXAMPLES: dict[str, dict[str, Any]] = {
    "primenet.core.models.NodeRecord": {
        "node": ADDRESS, "provider": ADDRESS, "ip": "203.0.113.7", "port": 8091, "pool_id": 0, "specs": SPECS,
    },
    "primenet.core.models.Heartbeat": {
        "address": ADDRESS, "task_id": "t1", "task_state": "running", "version": "1", "timestamp": 1.7e9,
        "task_details": {"exit_code": 0, "restarts": 1},
    },
    "primenet.core.models.HeartbeatReply": {"assignment": TASK},
    "primenet.core.models.InviteRequest": {
        "domain_id": 0, "pool_id": 0, "node": ADDRESS, "nonce": 7, "expiry": 1_800_000_000,
        "signature": "0x" + "11" * 65, "orchestrator_url": "http://127.0.0.1:8090",
    },
    "primenet.core.challenge.wire.Challenge": {
        "challenge_id": HEX32, "seed": HEX32, "n": 64, "dtype": "float32", "issued_at": 1.7e9, "deadline_s": 10.0,
    },
    "primenet.core.challenge.wire.Commitment": {
        "challenge_id": HEX32, "seed": HEX32, "n": 64, "dtype": "float32", "root": HEX32, "backend": "numpy",
        "timings": {"derive_s": 0.1, "matmul_s": 0.2, "commit_s": 0.3},
    },
    "primenet.core.challenge.wire.Reveal": {"challenge_id": HEX32, "secret": HEX32, "rows": [1, 5], "deadline_s": 5.0},
    "primenet.orchestrator.models.StoredTask": {
        "name": "job", "image": "busybox:1", "gpus": 0, "nodes": 3, "id": "e" * 32, "created_at": 1.7e9,
    },
    "primenet.core.auth.SignedHeader": {
        "address": ADDRESS, "method": "POST", "path": "/heartbeat", "body_sha256": HEX32, "audience": "discovery",
        "chain_id": 31337, "timestamp": 1_700_000_000, "nonce": "n" * 24, "signature": "0x" + "11" * 65,
    },
}  # fmt: skip
MODELS = {f"{model.__module__}.{model.__qualname__}": model for model in wire_models()}


def numeric_leaves(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield path
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from numeric_leaves(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from numeric_leaves(child, (*path, index))


def with_literal(example: dict[str, Any], path: tuple[str | int, ...], literal: str) -> str:
    """The example as JSON text with the number at `path` written as `literal` (raw, so it may be `Infinity`,
    `1e400` or have more digits than Python turns into text)."""
    document = json.loads(json.dumps(example))
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = "@hostile@"
    return json.dumps(document).replace('"@hostile@"', literal)


HOSTILE_LITERALS = st.one_of(
    st.sampled_from(["Infinity", "-Infinity", "NaN", "1e400", "-1e400", "1e308", "9" * 5000, "-" + "9" * 400]),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(min_value=-(2**300), max_value=2**300).map(str),
)


def test_every_example_is_valid_as_written() -> None:
    for name, example in EXAMPLES.items():
        MODELS[name].model_validate_json(json.dumps(example))


@settings(max_examples=600, deadline=None)
@given(data=st.data(), name=st.sampled_from(sorted(EXAMPLES)), literal=HOSTILE_LITERALS)
def test_a_hostile_number_is_refused_or_stored_as_it_reads_back(data: st.DataObject, name: str, literal: str) -> None:
    model, example = MODELS[name], EXAMPLES[name]
    path = data.draw(st.sampled_from(list(numeric_leaves(example))))
    try:
        record = model.model_validate_json(with_literal(example, path, literal))
    except ValidationError:
        return  # a clean refusal: the route answers 422 (or 400 for the header)
    for leaf in numeric_leaves(dumped := record.model_dump(mode="python")):
        value: Any = dumped
        for step in leaf:
            value = value[step]
        assert math.isfinite(value), (name, path, literal)
        assert abs(value) < 2**256, (name, path, literal)
    if isinstance(record, Wire):
        assert model.model_validate_json(stored_form(record)) == record
