"""The orchestrator's status machine and scheduler as pure functions."""

from __future__ import annotations

import pytest

from primenet.core.models import ComputeSpecs, GpuDevice
from primenet.core.requirements import parse
from primenet.orchestrator.decide import (
    NodeFacts,
    OnHeartbeat,
    TaskNeed,
    Thresholds,
    after_pool_check,
    next_release,
    on_chain,
    on_heartbeat,
    on_listing,
    on_silence,
    schedule,
    waiting_reason,
)
from primenet.orchestrator.models import NodeStatus as S

LIMITS = Thresholds(unhealthy_after_s=15, dead_after_s=45, waiting_timeout_s=60)
CPU = ComputeSpecs(cpu_cores=4, ram_mib=8192)
GPU = ComputeSpecs(cpu_cores=4, ram_mib=8192, gpus=[GpuDevice(index=0, model="NVIDIA H100", memory_mib=81_559)])


@pytest.mark.parametrize(
    ("status", "step"),
    [
        (S.WAITING, OnHeartbeat.AWAIT_JOIN),  # an invite reply proves nothing: the chain must show it joined
        (S.UNHEALTHY, OnHeartbeat.HEALTHY),
        (S.HEALTHY, OnHeartbeat.HEALTHY),
        (S.DISCOVERED, OnHeartbeat.CHECK_POOL),
        (S.DEAD, OnHeartbeat.CHECK_POOL),
        (S.EJECTED, OnHeartbeat.REINVITE),
        (S.BANNED, OnHeartbeat.REFUSE),
    ],
)
def test_a_heartbeat_moves_each_status(status: S, step: OnHeartbeat) -> None:
    assert on_heartbeat(status) is step


@pytest.mark.parametrize(
    ("step", "in_pool", "wanted"),
    [
        (OnHeartbeat.AWAIT_JOIN, True, S.HEALTHY),
        (OnHeartbeat.AWAIT_JOIN, False, None),  # still Waiting: no task, the invite timeout re-invites it
        (OnHeartbeat.CHECK_POOL, True, S.HEALTHY),
        (OnHeartbeat.CHECK_POOL, False, S.DISCOVERED),
        (OnHeartbeat.REINVITE, False, S.DISCOVERED),
    ],
)
def test_a_beat_that_needs_the_chain_follows_the_chain(step: OnHeartbeat, in_pool: bool, wanted: S | None) -> None:
    assert after_pool_check(step, in_pool=in_pool) == wanted


@pytest.mark.parametrize(
    ("status", "in_pool", "blacklisted", "wanted"),
    [
        (S.HEALTHY, True, False, None),
        (S.HEALTHY, False, False, S.EJECTED),  # left or ejected by another key: it loses its task
        (S.UNHEALTHY, False, False, S.EJECTED),
        (S.WAITING, False, False, None),  # may still be joining
        (S.DISCOVERED, False, False, None),
        (S.DEAD, False, False, None),  # the health pass marks it Ejected
        (S.HEALTHY, False, True, S.BANNED),  # blacklisted on chain, by whoever
        (S.DISCOVERED, False, True, S.BANNED),
        (S.BANNED, False, True, None),
    ],
)
def test_the_chain_overrides_our_status(status: S, in_pool: bool, blacklisted: bool, wanted: S | None) -> None:
    assert on_chain(status, in_pool=in_pool, blacklisted=blacklisted) == wanted


@pytest.mark.parametrize(
    ("status", "silent_s", "wanted"),
    [
        (S.HEALTHY, 10, None),
        (S.HEALTHY, 16, S.UNHEALTHY),
        (S.HEALTHY, 46, S.DEAD),  # a long gap (e.g. the orchestrator was down) goes straight to Dead
        (S.UNHEALTHY, 30, None),
        (S.UNHEALTHY, 46, S.DEAD),
        (S.DEAD, 1000, None),  # Dead waits for the ejection pass
        (S.DISCOVERED, 1000, None),
        (S.BANNED, 1000, None),
    ],
)
def test_silence_leads_to_unhealthy_then_dead(status: S, silent_s: float, wanted: S | None) -> None:
    assert on_silence(status, last_heartbeat=1000, status_since=1000, now=1000 + silent_s, limits=LIMITS) == wanted


def test_a_node_waiting_too_long_is_invited_again() -> None:
    assert on_silence(S.WAITING, last_heartbeat=None, status_since=0, now=59, limits=LIMITS) is None
    assert on_silence(S.WAITING, last_heartbeat=None, status_since=0, now=61, limits=LIMITS) is S.DISCOVERED


def test_a_healthy_node_without_a_recorded_beat_counts_from_its_status_change() -> None:
    assert on_silence(S.HEALTHY, last_heartbeat=None, status_since=100, now=110, limits=LIMITS) is None
    assert on_silence(S.HEALTHY, last_heartbeat=None, status_since=100, now=120, limits=LIMITS) is S.UNHEALTHY


def test_dead_and_ejected_nodes_come_back_when_relisted_later() -> None:
    assert on_listing(S.DEAD, listed_at=200, status_since=100) is S.DISCOVERED
    assert on_listing(S.EJECTED, listed_at=200, status_since=100) is S.DISCOVERED
    assert on_listing(S.EJECTED, listed_at=50, status_since=100) is None  # an old record does not revive it
    assert on_listing(S.HEALTHY, listed_at=200, status_since=100) is None
    assert on_listing(S.BANNED, listed_at=200, status_since=100) is None


def need(task_id: str, nodes: int | None = 1, requirements: str = "", created_at: float = 0) -> TaskNeed:
    return TaskNeed(task_id=task_id, created_at=created_at, nodes=nodes, requirements=parse(requirements))


def node(
    address: str,
    status: S = S.HEALTHY,
    specs: ComputeSpecs | None = CPU,
    beat: float | None = 100,
    *,
    specs_validated: bool = True,
) -> NodeFacts:
    return NodeFacts(address=address, status=status, specs=specs, last_heartbeat=beat, specs_validated=specs_validated)


def test_each_healthy_node_gets_at_most_one_task_up_to_the_wanted_count() -> None:
    tasks = [need("a", 2, created_at=1), need("b", 1, created_at=2)]
    nodes = [node("n1"), node("n2"), node("n3"), node("n4")]
    assert schedule(tasks, nodes, {}, now=100, grace_s=10) == {"n1": "a", "n2": "a", "n3": "b"}


def test_all_takes_every_fitting_node_and_requirements_are_respected() -> None:
    tasks = [need("gpu", None, "gpu:count_min=1;gpu:model=H100")]
    nodes = [node("n1", specs=GPU), node("n2", specs=CPU), node("n3", specs=GPU), node("n4", specs=None)]
    assert schedule(tasks, nodes, {}, now=100, grace_s=10) == {"n1": "gpu", "n3": "gpu"}


def test_unknown_or_unbound_specs_fit_no_task() -> None:
    """A node runs work only on the specs a validator bound its validation to (issue 15, item 4)."""
    tasks = [need("any", None)]
    assert schedule(tasks, [node("n1", specs=None, specs_validated=False)], {}, now=100, grace_s=10) == {}
    assert schedule(tasks, [node("n1", specs_validated=False)], {}, now=100, grace_s=10) == {}
    assert schedule(tasks, [node("n1", specs=GPU, specs_validated=False)], {"n1": "any"}, now=100, grace_s=10) == {}
    assert schedule(tasks, [node("n1")], {}, now=100, grace_s=10) == {"n1": "any"}


def test_a_gpu_pool_never_takes_a_node_without_a_gpu() -> None:
    # count_min=0 names GPUs, so the pool is a GPU pool: a CPU node that "meets" it still never gets its work.
    tasks = [need("gpu", None, "gpu:count_min=0;gpu:model=H100")]
    assert schedule(tasks, [node("cpu", specs=CPU), node("gpu", specs=GPU)], {}, now=100, grace_s=10) == {"gpu": "gpu"}


def test_only_healthy_nodes_get_new_work() -> None:
    nodes = [node(f"n{s.value}", status=s) for s in S if s is not S.HEALTHY]
    assert schedule([need("a", None)], nodes, {}, now=100, grace_s=10) == {}


def test_a_lost_node_keeps_its_task_for_the_grace_then_it_moves() -> None:
    tasks = [need("a", 1)]
    nodes = [node("n1", status=S.UNHEALTHY, beat=95), node("n2")]
    assert schedule(tasks, nodes, {"n1": "a"}, now=100, grace_s=10) == {"n1": "a"}
    assert schedule(tasks, nodes, {"n1": "a"}, now=106, grace_s=10) == {"n2": "a"}


def test_the_scheduler_looks_again_when_the_first_grace_ends() -> None:
    nodes = [node("n1", status=S.UNHEALTHY, beat=95), node("n2", status=S.DEAD, beat=90), node("n3", beat=50)]
    assert next_release(nodes, {"n1": "a", "n2": "a", "n3": "a"}, grace_s=10) == 100  # n2's; n3 is Healthy
    assert next_release(nodes, {"n1": "a"}, grace_s=10) == 105
    assert next_release(nodes, {"n3": "a"}, grace_s=10) is None  # Healthy nodes keep theirs with no deadline
    assert next_release(nodes, {}, grace_s=10) is None


def test_a_banned_node_loses_its_task_at_once() -> None:
    nodes = [node("n1", status=S.BANNED, beat=99), node("n2")]
    assert schedule([need("a", 1)], nodes, {"n1": "a"}, now=100, grace_s=60) == {"n2": "a"}


def test_a_deleted_task_is_withdrawn_and_the_node_takes_the_next() -> None:
    assert schedule([need("b", 1)], [node("n1")], {"n1": "a"}, now=100, grace_s=60) == {"n1": "b"}
    assert schedule([], [node("n1")], {"n1": "a"}, now=100, grace_s=60) == {}


def test_current_assignments_are_stable_and_excess_sheds_lost_nodes_first() -> None:
    tasks = [need("a", 1, created_at=1), need("b", 1, created_at=2)]
    nodes = [node("n1"), node("n2")]
    assert schedule(tasks, nodes, {"n1": "b", "n2": "a"}, now=100, grace_s=10) == {"n1": "b", "n2": "a"}
    lost = [node("n1", status=S.UNHEALTHY, beat=99), node("n2")]
    assert schedule([need("a", 1)], lost, {"n1": "a", "n2": "a"}, now=100, grace_s=10) == {"n2": "a"}


def test_a_node_that_no_longer_fits_loses_its_task() -> None:
    tasks = [need("gpu", 1, "gpu:count_min=1")]
    assert schedule(tasks, [node("n1", specs=CPU)], {"n1": "gpu"}, now=100, grace_s=10) == {}


def test_waiting_reason_says_why_a_task_has_fewer_nodes_than_it_asked_for() -> None:
    one, gpu_task, everywhere = need("t"), need("t", 1, "gpu:count_min=1"), need("t", None)
    assert waiting_reason(one, [], {}) == "no Healthy node in the pool"
    assert waiting_reason(one, [node("n1", S.UNHEALTHY)], {}) == "no Healthy node in the pool"
    assert waiting_reason(gpu_task, [node("n1")], {}) == "no Healthy node meets its requirements (1 Healthy)"
    assert waiting_reason(one, [node("n1")], {"n1": "other"}) == "no free node: 1 node(s) that fit run other tasks"
    assert waiting_reason(one, [node("n1")], {}) == "to be placed by the scheduler's next pass"
    assert waiting_reason(one, [node("n1")], {"n1": "t"}) is None
    assert waiting_reason(everywhere, [node("n1"), node("n2")], {"n1": "t"}) is None  # "all": one node is enough
    two = need("t", 2)
    assert waiting_reason(two, [node("n1"), node("n2")], {"n1": "t", "n2": "x"}) == (
        "no free node: 1 node(s) that fit run other tasks"
    )
