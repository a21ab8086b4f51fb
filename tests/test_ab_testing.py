"""The A/B arithmetic and the rollout policy on seeded traffic whose truth is known."""

import random

import pytest

from tuneline.ab_testing import Outcome, RolloutPolicy, ab_report, arm_for, rollout_decision


def test_arms_are_stable_proportional_and_only_move_forward_as_the_share_grows():
    ids = [f"conv-{i}" for i in range(20_000)]
    at_10 = {c: arm_for(c, 0.1) for c in ids}
    assert at_10 == {c: arm_for(c, 0.1) for c in ids}, "same conversation, same arm"
    share = sum(a == "challenger" for a in at_10.values()) / len(ids)
    assert share == pytest.approx(0.1, abs=0.01)
    at_50 = {c: arm_for(c, 0.5) for c in ids}
    assert all(at_50[c] == "challenger" for c in ids if at_10[c] == "challenger"), "nobody moves back"
    assert {arm_for(c, 0.0) for c in ids[:500]} == {"champion"} and {arm_for(c, 1.0) for c in ids[:500]} == {
        "challenger"}
    assert arm_for("conv-1", 0.5, salt="billing") in ("champion", "challenger")
    with pytest.raises(ValueError):
        arm_for("x", 1.5)


def _traffic(n: int, resolved: dict[str, float], share: float = 0.5, errors: dict[str, float] | None = None,
             seed: int = 3) -> list[Outcome]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        arm = arm_for(f"c{i}", share)
        failed = rng.random() < (errors or {}).get(arm, 0.0)
        ok = rng.random() < resolved[arm]
        escalated = not ok and rng.random() < 0.5
        out.append(Outcome(arm=arm, latency_seconds=rng.uniform(0.8, 1.2), prompt_tokens=100,
                           completion_tokens=60, error=failed, resolved=None if failed else ok,
                           escalated=None if failed else escalated,
                           csat=None if failed else (5 if ok else rng.choice([1, 2, 3]))))
    return out


def test_a_truly_better_challenger_is_detected_with_the_right_sign_and_advanced():
    report = ab_report(_traffic(2000, {"champion": 0.55, "challenger": 0.70}))
    assert report["resolution"]["diff"] > 0 and report["resolution"]["significant"]
    assert report["resolution"]["ci_low"] > 0
    assert report["arms"]["challenger"]["resolved"]["rate"] > report["arms"]["champion"]["resolved"]["rate"]
    decision = rollout_decision(report, 0.1)
    assert (decision["action"], decision["share"]) == ("advance", 0.5), decision
    assert rollout_decision(report, 0.5)["action"] == "promote"
    assert rollout_decision(report, 0.5)["share"] == 1.0


def test_no_decision_below_the_minimum_sample_and_none_without_a_difference():
    small = ab_report(_traffic(100, {"champion": 0.5, "challenger": 0.9}))
    assert rollout_decision(small, 0.1)["action"] == "hold"
    same = ab_report(_traffic(2000, {"champion": 0.6, "challenger": 0.6}))
    assert rollout_decision(same, 0.1)["action"] == "hold"


def test_a_worse_or_failing_challenger_is_rolled_back_with_its_numbers():
    worse = rollout_decision(ab_report(_traffic(2000, {"champion": 0.7, "challenger": 0.5})), 0.5)
    assert (worse["action"], worse["share"]) == ("rollback", 0.0) and "resolution" in worse["reason"]
    failing = ab_report(_traffic(400, {"champion": 0.6, "challenger": 0.6}, errors={"challenger": 0.2}))
    decision = rollout_decision(failing, 0.1, RolloutPolicy())
    assert decision["action"] == "rollback" and "error rate" in decision["reason"]
    assert decision["numbers"]["challenger_error_rate"] > 0.02


def test_costs_and_latency_percentiles_per_arm():
    report = ab_report(_traffic(200, {"champion": 0.5, "challenger": 0.5}),
                       RolloutPolicy(price_per_1k_tokens=0.002))
    arm = report["arms"]["champion"]
    assert arm["tokens_per_request"] == 160 and arm["cost_per_request"] == pytest.approx(0.00032)
    assert 0.8 <= arm["p50_seconds"] <= arm["p95_seconds"] <= arm["p99_seconds"] <= 1.2
