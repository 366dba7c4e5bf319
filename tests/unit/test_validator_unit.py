"""The validator's pure parts: retry policy, the claimed GPU and its throughput entry, discovery parsing, settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from primenet.cli.validator import validator_app
from primenet.core.discovery_client import ListedNode
from primenet.core.models import ComputeSpecs, GpuDevice, NodeRecord
from primenet.core.nodeaddr import AddressPolicy, AddressRefusedError
from primenet.validator.challenger import ChallengeResult, Outcome, Target, claimed_gpu
from primenet.validator.policy import NodeState, RetryPolicy, Step, backoff_s, decide
from primenet.validator.settings import FailureAction, ValidatorSettings
from primenet.validator.verifier import DEFAULT_TABLE

POLICY = RetryPolicy(max_attempts=3, base_s=10.0, max_s=100.0, action=FailureAction.INVALIDATE)
NODE = "0x" + "ab" * 20


def test_backoff_doubles_from_the_base_and_stops_at_the_cap() -> None:
    assert [backoff_s(streak, POLICY) for streak in range(6)] == [0.0, 10.0, 20.0, 40.0, 80.0, 100.0]
    assert backoff_s(10_000, POLICY) == 100.0  # no overflow for a node that failed for months


def test_acceptance_validates_and_clears_the_counts() -> None:
    state = NodeState(rejections=2, failures=1, next_at=5.0)
    decision = decide(state, Outcome.ACCEPTED, "ok", 50.0, POLICY)
    assert decision.step is Step.VALIDATE
    assert (decision.state.rejections, decision.state.failures, decision.state.next_at) == (0, 0, 0.0)
    assert (decision.state.last_outcome, decision.state.last_reason, decision.state.last_at) == ("accepted", "ok", 50.0)


def test_rejections_back_off_then_give_up_with_the_operators_action() -> None:
    state = NodeState()
    waits = []
    for _ in range(POLICY.max_attempts - 1):
        decision = decide(state, Outcome.REJECTED, "wrong_product", 1000.0, POLICY)
        assert decision.step is Step.RETRY
        waits.append(decision.state.next_at - 1000.0)
        state = decision.state
    assert waits == [10.0, 20.0]
    final = decide(state, Outcome.REJECTED, "wrong_product", 1000.0, POLICY)
    assert final.step is Step.GIVE_UP
    assert final.action is FailureAction.INVALIDATE
    assert final.state.given_up
    assert final.state.rejections == POLICY.max_attempts


def test_leave_is_the_action_when_the_operator_chose_it() -> None:
    policy = RetryPolicy(max_attempts=1, action=FailureAction.LEAVE)
    decision = decide(NodeState(), Outcome.REJECTED, "cr_mismatch", 0.0, policy)
    assert (decision.step, decision.action) == (Step.GIVE_UP, FailureAction.LEAVE)


def test_a_miner_that_cannot_be_reached_is_retried_but_never_given_up() -> None:
    state = NodeState()
    for _ in range(20):
        decision = decide(state, Outcome.FAILED, "unreachable", 0.0, POLICY)
        assert decision.step is Step.RETRY
        state = decision.state
    assert (state.failures, state.rejections, state.given_up) == (20, 0, False)
    assert state.next_at == POLICY.max_s


def test_an_unreachable_miner_is_retried_within_a_second_then_ever_later_up_to_the_cap() -> None:
    # Issue 16: a miner whose API is not listening yet (it just started) must not cost a whole `base_s`.
    policy = RetryPolicy(base_s=30.0, max_s=100.0, unreachable_base_s=0.25)
    state, waits = NodeState(), []
    for _ in range(12):
        state = decide(state, Outcome.FAILED, "unreachable", 0.0, policy).state
        waits.append(state.next_at)
    assert waits[:4] == [0.25, 0.5, 1.0, 2.0]
    assert waits[-1] == policy.max_s  # one that stays offline reaches the long waits within a few attempts
    assert waits == sorted(waits)


def test_failures_other_than_unreachable_and_rejections_keep_the_long_base() -> None:
    policy = RetryPolicy(base_s=30.0, max_s=100.0, unreachable_base_s=0.25)
    assert decide(NodeState(), Outcome.FAILED, "refused", 0.0, policy).state.next_at == 30.0
    assert decide(NodeState(), Outcome.FAILED, "stake_below_minimum", 0.0, policy).state.next_at == 30.0
    assert decide(NodeState(), Outcome.REJECTED, "unreachable", 0.0, policy).state.next_at == 30.0
    assert backoff_s(1, policy, policy.unreachable_base_s) == 0.25


def test_the_unreachable_base_is_a_setting_and_sub_second_by_default() -> None:
    assert ValidatorSettings().retry_unreachable_base_s < 1.0
    assert ValidatorSettings(retry_unreachable_base_s=2.0).retry_unreachable_base_s == 2.0
    with pytest.raises(ValidationError):
        ValidatorSettings(retry_unreachable_base_s=0)


def test_failures_do_not_reset_the_rejection_count_and_both_lengthen_the_wait() -> None:
    state = decide(NodeState(), Outcome.REJECTED, "wrong_product", 0.0, POLICY).state
    state = decide(state, Outcome.FAILED, "refused", 0.0, POLICY).state
    assert (state.rejections, state.failures) == (1, 1)
    assert state.next_at == 20.0  # second unsuccessful attempt in a row
    final = decide(decide(state, Outcome.REJECTED, "x", 0.0, POLICY).state, Outcome.REJECTED, "x", 0.0, POLICY)
    assert final.step is Step.GIVE_UP  # three rejections, an unreachable spell in between


@pytest.mark.parametrize(
    ("specs", "claimed", "entry"),
    [
        (ComputeSpecs(), "cpu", "cpu"),
        (ComputeSpecs(gpus=[GpuDevice(index=0, model="NVIDIA H100 80GB HBM3", memory_mib=81559)]), None, "h100 hbm3"),
        (
            ComputeSpecs(
                gpus=[
                    GpuDevice(index=0, model="NVIDIA A100-SXM4-80GB", memory_mib=81920),
                    GpuDevice(index=1, model="NVIDIA H100 PCIe", memory_mib=81559),
                ]
            ),
            "NVIDIA A100-SXM4-80GB",
            "a100",
        ),
        (ComputeSpecs(gpus=[GpuDevice(index=0, model="NVIDIA GeForce RTX 4090", memory_mib=24564)]), None, "rtx 4090"),
    ],
)
def test_the_claimed_model_is_the_first_gpu_and_maps_to_its_table_entry(
    specs: ComputeSpecs, claimed: str | None, entry: str
) -> None:
    name = claimed_gpu(specs)
    assert name == (claimed or specs.gpus[0].model)
    found = DEFAULT_TABLE.lookup(name)
    assert found is not None
    assert found[0] == entry


def test_the_cpu_default_challenge_is_allowed_seconds_not_milliseconds() -> None:
    """n = 256 float32 against the "cpu" entry: the allowance must leave an honest CPU miner ample room."""
    found = DEFAULT_TABLE.lookup("cpu")
    assert found is not None
    settings = ValidatorSettings()
    allowed = DEFAULT_TABLE.expected_seconds(settings.challenge_n, settings.challenge_dtype, found[1])
    assert allowed > 2.0
    assert settings.challenge_deadline_s > allowed


def test_targets_bracket_ipv6_and_pass_the_address_policy() -> None:
    def record(ip: str) -> NodeRecord:
        return NodeRecord(node=NODE, provider=NODE, ip=ip, port=8091, pool_id=0, specs=ComputeSpecs())

    lan = AddressPolicy(allow_loopback=True, allow_private=True)
    assert Target.of(record("10.0.0.5"), lan).url == "http://10.0.0.5:8091"
    assert Target.of(record("::1"), lan).url == "http://[::1]:8091"
    with pytest.raises(AddressRefusedError, match="loopback"):
        Target.of(record("127.0.0.1"), AddressPolicy())
    with pytest.raises(AddressRefusedError, match="link_local"):
        Target.of(record("169.254.169.254"), lan)


def test_a_listed_node_parses_from_discoverys_public_shape_with_extra_fields() -> None:
    record = NodeRecord(node=NODE, provider=NODE, ip="127.0.0.1", port=8091, pool_id=0, specs=ComputeSpecs())
    public = {
        **record.model_dump(mode="json"),
        "is_validated": False,
        "is_active": False,
        "is_whitelisted": True,
        "is_blacklisted": False,
        "created_at": 1.0,
        "updated_at": 2.0,
        "something_new": "ignored",
    }
    listed = ListedNode.parse(public)
    assert listed.record == record
    assert listed.is_validated is False


def test_settings_refuse_weak_admin_tokens_and_read_the_failure_action(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError):
        ValidatorSettings(admin_token="changeme")
    monkeypatch.setenv("PRIMENET_FAILURE_ACTION", "invalidate")
    monkeypatch.setenv("PRIMENET_DISCOVERY_URL", "http://d:8089/")
    settings = ValidatorSettings()
    assert settings.failure_action is FailureAction.INVALIDATE
    assert settings.discovery_url == "http://d:8089"
    with pytest.raises(ValidationError):
        ValidatorSettings(failure_action="slash")


def test_exit_codes_follow_the_outcome() -> None:
    base = {"node": NODE, "url": "http://x:1", "claimed_gpu": "cpu", "reason": "r", "detail": "d", "at": 0.0}
    codes = [ChallengeResult(outcome=outcome, **base).exit_code for outcome in Outcome]  # type: ignore[arg-type]
    assert codes == [0, 1, 2]


def test_cli_challenge_could_not_run_without_key_or_with_a_bad_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRIMENET_VALIDATOR_KEY", raising=False)
    monkeypatch.delenv("PRIMENET_VALIDATOR_KEY_FILE", raising=False)
    runner = CliRunner()
    bad = runner.invoke(validator_app, ["challenge", "nonsense"])
    assert bad.exit_code == 2
    keyless = runner.invoke(validator_app, ["challenge", NODE, "--url", "http://127.0.0.1:9"])
    assert keyless.exit_code == 2
    assert "PRIMENET_VALIDATOR_KEY" in keyless.output


def test_cli_run_could_not_run_without_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRIMENET_VALIDATOR_KEY", raising=False)
    monkeypatch.delenv("PRIMENET_VALIDATOR_KEY_FILE", raising=False)
    result = CliRunner().invoke(validator_app, ["run"])
    assert result.exit_code == 2
    assert "PRIMENET_VALIDATOR_KEY" in result.output
