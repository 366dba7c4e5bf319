"""The store-lost guard's decision (`orchestrator.guard.judge`): when an unmarked store may simply be marked."""

from __future__ import annotations

import itertools

import pytest

from primenet.orchestrator.guard import Verdict, judge


def test_a_marked_store_is_trusted_whatever_else_holds() -> None:
    for held, starting, stored, nodes in itertools.product((False, True), (False, True), (False, True), (None, 0, 3)):
        assert (
            judge(marker=True, held=held, starting=starting, stored_records=stored, pool_nodes=nodes) is Verdict.TRUSTED
        )


def test_an_empty_store_on_a_pool_with_nodes_holds() -> None:
    assert judge(marker=False, held=False, starting=True, stored_records=False, pool_nodes=2) is Verdict.HOLD


def test_an_empty_store_on_an_empty_pool_is_a_new_deployment() -> None:
    assert judge(marker=False, held=False, starting=True, stored_records=False, pool_nodes=0) is Verdict.FRESH


def test_an_unreadable_chain_proves_nothing() -> None:
    assert judge(marker=False, held=False, starting=True, stored_records=False, pool_nodes=None) is Verdict.HOLD


def test_a_store_with_records_but_no_marker_at_start_predates_markers() -> None:
    assert judge(marker=False, held=False, starting=True, stored_records=True, pool_nodes=5) is Verdict.ADOPTED


@pytest.mark.parametrize("nodes", [None, 0, 4])
def test_records_learned_during_a_hold_never_end_it(nodes: int | None) -> None:
    # After a restart in the hold, the store holds the nodes re-learned meanwhile: the recorded hold still counts.
    assert judge(marker=False, held=True, starting=True, stored_records=True, pool_nodes=nodes) is Verdict.HOLD


def test_a_store_wiped_under_a_running_orchestrator_holds() -> None:
    # Not at start: records seen now were re-learned since the wipe, so they prove nothing.
    assert judge(marker=False, held=False, starting=False, stored_records=True, pool_nodes=1) is Verdict.HOLD
    assert judge(marker=False, held=False, starting=False, stored_records=True, pool_nodes=0) is Verdict.FRESH
