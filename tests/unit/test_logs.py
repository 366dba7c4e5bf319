"""An unhandled error is logged with its formatted stack, in JSON lines (containers, pipes) as on a terminal."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from primenet.core.logs import configure_logging

pytestmark = pytest.mark.unit


@pytest.fixture
def json_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("info", json=True)
    yield stream
    root.handlers[:], root.level = handlers, level
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def fail_deep_inside() -> None:
    raise RuntimeError("the disk said no")


def test_a_logged_exception_carries_its_formatted_stack(json_log: io.StringIO) -> None:
    try:
        fail_deep_inside()
    except RuntimeError:
        structlog.get_logger("test").exception("pass failed", loop="monitor")
    [entry] = lines(json_log)
    assert entry["event"] == "pass failed"
    assert "exc_info" not in entry
    stack = str(entry["exception"])
    assert stack.startswith("Traceback (most recent call last):")
    assert "fail_deep_inside" in stack
    assert stack.rstrip().endswith("RuntimeError: the disk said no")


def test_a_stdlib_record_with_exc_info_carries_its_formatted_stack(json_log: io.StringIO) -> None:
    # What uvicorn does with an error no handler caught: a stdlib record with exc_info, not a structlog event.
    try:
        fail_deep_inside()
    except RuntimeError:
        logging.getLogger("primenet.test.stdlib").error("Exception in ASGI application", exc_info=True)
    [entry] = lines(json_log)
    assert "fail_deep_inside" in str(entry["exception"])
    assert "<traceback object" not in json_log.getvalue()
