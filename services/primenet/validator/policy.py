"""What the loop does after a challenge: validate, retry later, or give up. Pure functions, no I/O.

Rejections (a verdict against the node) and failures (the challenge could not run: miner unreachable, refused,
provider stake too low) are counted apart. Both back off exponentially, but only `max_attempts` rejections in a
row lead to the operator's failure action: an offline miner is retried (at most every `max_s`), never punished.
An `unreachable` attempt backs off from `unreachable_base_s` (sub-second) instead of `base_s`: the common cause is a
miner that is just starting (or restarting) its API, so a transient refusal costs a fraction of a second, while
the doubling still brings a miner that stays offline to the same long waits within a few attempts.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, replace

from primenet.core.models import ComputeSpecs
from primenet.validator.challenger import Outcome, RunFailure
from primenet.validator.settings import FailureAction

UNITS_PER_GPU = 1000
# The rejection reason for a node whose on-chain compute units exceed what its specs can hold (`max_compute_units`).
UNITS_ABOVE_SPECS = "units_above_specs"


def max_compute_units(specs: ComputeSpecs) -> int:
    """The most compute units (and so stake weight) these specs justify: 1000 per GPU, 1 without a GPU.

    The miner registers exactly this (`miner.hardware.compute_units`); a provider that chose more on chain is
    refused validation (`UNITS_ABOVE_SPECS`) before any challenge."""
    return max(1, specs.gpu_count * UNITS_PER_GPU)


def next_rechallenge(now: float, interval_s: float, jitter_s: float, rng: random.Random) -> float:
    """When a node that passed now is challenged again: after `interval_s` plus a uniform random part of
    `jitter_s`, so a node cannot tell the time of its next challenge and swap hardware around it."""
    return now + interval_s + rng.uniform(0.0, jitter_s)


def first_rechallenge(now: float, interval_s: float, jitter_s: float, rng: random.Random) -> float:
    """For a validated node this process has not challenged (validated elsewhere or before a restart): a uniform
    random time within one interval and its jitter, so restarts never postpone re-challenges indefinitely."""
    return now + rng.uniform(0.0, interval_s + jitter_s)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    base_s: float = 30.0
    max_s: float = 3600.0
    unreachable_base_s: float = 0.25  # the first wait after an `unreachable` attempt (then doubling, up to max_s)
    action: FailureAction = FailureAction.LEAVE


@dataclass(frozen=True)
class NodeState:
    """The loop's memory of one node (kept in Redis so a restart keeps counts and waits)."""

    rejections: int = 0  # in a row
    failures: int = 0  # in a row
    next_at: float = 0.0  # not before (unix seconds)
    given_up: bool = False
    last_outcome: str = ""
    last_reason: str = ""
    last_at: float = 0.0

    @property
    def streak(self) -> int:
        return self.rejections + self.failures


class Step(enum.StrEnum):
    VALIDATE = "validate"
    RETRY = "retry"
    GIVE_UP = "give_up"


@dataclass(frozen=True)
class Decision:
    step: Step
    state: NodeState
    action: FailureAction | None = None  # for GIVE_UP: what to do on chain


def backoff_s(streak: int, policy: RetryPolicy, base_s: float | None = None) -> float:
    """Wait after the `streak`-th unsuccessful attempt in a row: base, 2 base, 4 base, ... capped at max_s
    (`base_s`: another base than the policy's, e.g. its `unreachable_base_s`)."""
    if streak < 1:
        return 0.0
    base = policy.base_s if base_s is None else base_s
    return min(policy.max_s, base * 2.0 ** min(streak - 1, 62))


def retry_base_s(outcome: Outcome, reason: str, policy: RetryPolicy) -> float:
    """The base of the wait after an unsuccessful attempt: short for a miner that could not be reached (most
    often one whose API is not listening yet), the policy's `base_s` for anything else."""
    if outcome is Outcome.FAILED and reason == RunFailure.UNREACHABLE:
        return policy.unreachable_base_s
    return policy.base_s


def decide(state: NodeState, outcome: Outcome, reason: str, now: float, policy: RetryPolicy) -> Decision:
    seen = replace(state, last_outcome=outcome.value, last_reason=reason, last_at=now)
    if outcome is Outcome.ACCEPTED:
        return Decision(Step.VALIDATE, replace(seen, rejections=0, failures=0, next_at=0.0))
    if outcome is Outcome.REJECTED:
        seen = replace(seen, rejections=seen.rejections + 1, failures=0)
        if seen.rejections >= policy.max_attempts:
            return Decision(Step.GIVE_UP, replace(seen, given_up=True, next_at=0.0), policy.action)
    else:
        seen = replace(seen, failures=seen.failures + 1)
    wait_s = backoff_s(seen.streak, policy, retry_base_s(outcome, reason, policy))
    return Decision(Step.RETRY, replace(seen, next_at=now + wait_s))


def failed_again(state: NodeState, reason: str, now: float, policy: RetryPolicy) -> NodeState:
    """A step after an accepted challenge failed (e.g. validateNode reverted): retry like a failed run."""
    return decide(state, Outcome.FAILED, reason, now, policy).state
