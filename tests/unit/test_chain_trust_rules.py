"""The pure rules behind item 7 and 11: which records discovery drops, and the loop states /health shows."""

from __future__ import annotations

import pytest

from primenet.core.health import FAILING, OK, STARTING, loop_state, overall
from primenet.discovery.sync import removal_reason

PROVIDER = "0x" + "ab" * 20


@pytest.mark.parametrize(
    ("on_chain", "chain_provider", "wanted"),
    [
        (False, None, "node_removed"),
        (True, "0x" + "cd" * 20, "provider_changed"),
        (True, "0x" + "AB" * 20, None),  # the same provider, checksummed
        (True, PROVIDER, None),
    ],
)
def test_a_record_goes_when_the_chain_no_longer_backs_it(
    on_chain: bool, chain_provider: str | None, wanted: str | None
) -> None:
    assert removal_reason(on_chain, chain_provider, PROVIDER) == wanted


@pytest.mark.parametrize(
    ("last_run_at", "last_error_at", "wanted"),
    [
        (None, None, STARTING),
        (10.0, None, OK),
        (None, 5.0, FAILING),
        (10.0, 12.0, FAILING),  # the latest pass failed
        (12.0, 10.0, OK),  # a pass succeeded since the failure
    ],
)
def test_a_loop_state_is_that_of_its_latest_pass(
    last_run_at: float | None, last_error_at: float | None, wanted: str
) -> None:
    assert loop_state(last_run_at=last_run_at, last_error_at=last_error_at) == wanted


def test_one_failing_part_degrades_the_whole() -> None:
    assert overall({"a": OK, "b": STARTING}) == "ok"
    assert overall({"a": OK, "b": FAILING}) == "degraded"
