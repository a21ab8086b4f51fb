"""A/B tests of a product's champion and challenger adapters on live traffic: which arm a conversation gets,
per-arm outcomes with intervals, significance tests for proportions (statsmodels), and the rollout policy.

The arm is a stable hash of the conversation id: the same conversation always meets the same arm, and
raising the challenger's share only moves champion conversations over (a bucket below the share is the
challenger's at every share above it), so a rollout never flips a conversation back and forth."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

ARMS = ("champion", "challenger")


def arm_for(conversation_id: str, challenger_share: float, salt: str = "") -> str:
    """"challenger" for a stable `challenger_share` of conversation ids, else "champion"."""
    if not 0.0 <= challenger_share <= 1.0:
        raise ValueError(f"challenger_share must be within [0, 1], got {challenger_share}")
    digest = hashlib.sha256(f"{salt}\x00{conversation_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") / 2**64
    return "challenger" if bucket < challenger_share else "champion"


@dataclass(frozen=True)
class Outcome:
    """One served response and, when it came, its feedback."""

    arm: str
    latency_seconds: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: bool = False
    resolved: bool | None = None
    escalated: bool | None = None
    csat: int | None = None


@dataclass(frozen=True)
class RolloutPolicy:
    """When the challenger's share moves. Decisions need `min_feedback` responses with feedback per arm;
    guard rails (errors, P95 latency) apply from `min_guard_requests` requests on."""

    steps: tuple[float, ...] = (0.1, 0.5, 1.0)
    min_feedback: int = 200
    min_guard_requests: int = 50
    alpha: float = 0.05
    max_error_rate: float = 0.02
    max_p95_latency_ratio: float = 1.5
    price_per_1k_tokens: float = 0.0


def nearest_rank(ordered: list[float], q: float) -> float | None:
    """The nearest-rank `q`th percentile of already sorted values (None for none): what the server's
    /metrics.json reports too. Sorted once by the caller, read at several q."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def _rate(flags: list[bool], alpha: float) -> dict:
    from statsmodels.stats.proportion import proportion_confint

    n, k = len(flags), sum(flags)
    if not n:
        return {"n": 0, "rate": None, "ci_low": None, "ci_high": None}
    low, high = proportion_confint(k, n, alpha=alpha, method="wilson")
    return {"n": n, "rate": round(k / n, 4), "ci_low": round(float(low), 4), "ci_high": round(float(high), 4)}


def arm_summary(outcomes: list[Outcome], policy: RolloutPolicy = RolloutPolicy()) -> dict:
    latencies = sorted(o.latency_seconds for o in outcomes if not o.error)
    tokens = [o.prompt_tokens + o.completion_tokens for o in outcomes]
    csats = [o.csat for o in outcomes if o.csat is not None]
    n = len(outcomes)
    mean_tokens = sum(tokens) / n if n else 0.0
    return {
        "requests": n,
        "error_rate": round(sum(o.error for o in outcomes) / n, 4) if n else None,
        "resolved": _rate([o.resolved for o in outcomes if o.resolved is not None], policy.alpha),
        "escalated": _rate([o.escalated for o in outcomes if o.escalated is not None], policy.alpha),
        "csat_mean": round(sum(csats) / len(csats), 3) if csats else None,
        "csat_n": len(csats),
        "p50_seconds": nearest_rank(latencies, 50), "p95_seconds": nearest_rank(latencies, 95),
        "p99_seconds": nearest_rank(latencies, 99),
        "tokens_per_request": round(mean_tokens, 1),
        "cost_per_request": round(mean_tokens / 1000 * policy.price_per_1k_tokens, 6),
    }


def compare_proportions(champion: list[bool], challenger: list[bool], alpha: float = 0.05) -> dict:
    """challenger - champion: the difference, its Newcombe interval and the Agresti-Caffo test's p-value."""
    from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep

    n_a, n_b = len(champion), len(challenger)
    if not n_a or not n_b:
        return {"diff": None, "ci_low": None, "ci_high": None, "p_value": None, "significant": False}
    k_a, k_b = sum(champion), sum(challenger)
    test = test_proportions_2indep(k_b, n_b, k_a, n_a, method="agresti-caffo")
    low, high = confint_proportions_2indep(k_b, n_b, k_a, n_a, method="newcomb", alpha=alpha)
    p_value = float(test.pvalue) if math.isfinite(test.pvalue) else 1.0
    return {"diff": round(k_b / n_b - k_a / n_a, 4), "ci_low": round(float(low), 4), "ci_high": round(float(high), 4),
            "p_value": round(p_value, 6), "significant": p_value < alpha}


def compare_means(champion: list[float], challenger: list[float], alpha: float = 0.05) -> dict:
    """challenger - champion for CSAT: Welch's t-test (scipy)."""
    from scipy.stats import ttest_ind

    if len(champion) < 2 or len(challenger) < 2:
        return {"diff": None, "p_value": None, "significant": False}
    result = ttest_ind(challenger, champion, equal_var=False)
    p_value = float(result.pvalue) if math.isfinite(result.pvalue) else 1.0
    diff = sum(challenger) / len(challenger) - sum(champion) / len(champion)
    return {"diff": round(diff, 4), "p_value": round(p_value, 6), "significant": p_value < alpha}


def ab_report(outcomes: list[Outcome], policy: RolloutPolicy = RolloutPolicy()) -> dict:
    by_arm = {arm: [o for o in outcomes if o.arm == arm] for arm in ARMS}

    def flags(arm, field):
        return [getattr(o, field) for o in by_arm[arm] if getattr(o, field) is not None]

    return {
        "arms": {arm: arm_summary(by_arm[arm], policy) for arm in ARMS},
        "resolution": compare_proportions(flags("champion", "resolved"), flags("challenger", "resolved"),
                                          policy.alpha),
        "escalation": compare_proportions(flags("champion", "escalated"), flags("challenger", "escalated"),
                                          policy.alpha),
        "csat": compare_means(flags("champion", "csat"), flags("challenger", "csat"), policy.alpha),
    }


def rollout_decision(report: dict, share: float, policy: RolloutPolicy = RolloutPolicy()) -> dict:
    """The challenger's next share and why: rollback (0) on a guard rail or a significantly worse outcome;
    advance one step (promote at 1.0) when resolution is significantly better and nothing significantly
    worse; otherwise hold. Every decision carries the numbers it was made on."""
    champion, challenger = report["arms"]["champion"], report["arms"]["challenger"]
    numbers = {"share": share, "resolution": report["resolution"], "escalation": report["escalation"],
               "csat": report["csat"], "challenger_error_rate": challenger["error_rate"],
               "p95_seconds": {"champion": champion["p95_seconds"], "challenger": challenger["p95_seconds"]}}

    def decide(action: str, new_share: float, reason: str) -> dict:
        return {"action": action, "share": new_share, "reason": reason, "numbers": numbers}

    if challenger["requests"] >= policy.min_guard_requests:
        if challenger["error_rate"] > policy.max_error_rate:
            return decide("rollback", 0.0, f"challenger error rate {challenger['error_rate']:.1%} above "
                                           f"{policy.max_error_rate:.1%}")
        if champion["p95_seconds"] and challenger["p95_seconds"] and \
                challenger["p95_seconds"] > policy.max_p95_latency_ratio * champion["p95_seconds"]:
            return decide("rollback", 0.0, f"challenger P95 latency {challenger['p95_seconds']:.2f} s above "
                                           f"{policy.max_p95_latency_ratio}x the champion's "
                                           f"{champion['p95_seconds']:.2f} s")
    feedback = min(champion["resolved"]["n"], challenger["resolved"]["n"])
    if feedback < policy.min_feedback:
        return decide("hold", share, f"{feedback} responses with feedback in the smaller arm, "
                                     f"{policy.min_feedback} needed before a decision")
    resolution, escalation, csat = report["resolution"], report["escalation"], report["csat"]
    worse = [name for name, test, sign in (("resolution", resolution, -1), ("escalation", escalation, 1),
                                           ("csat", csat, -1))
             if test["significant"] and test["diff"] is not None and sign * test["diff"] > 0]
    if worse:
        return decide("rollback", 0.0, f"challenger significantly worse on {', '.join(worse)}")
    if resolution["significant"] and resolution["diff"] > 0:
        later = [s for s in policy.steps if s > share]
        if not later:
            return decide("hold", share, "challenger already serves all traffic")
        action = "promote" if later[0] >= 1.0 else "advance"
        return decide(action, later[0], f"resolution {resolution['diff']:+.1%} "
                                        f"[{resolution['ci_low']:+.1%}, {resolution['ci_high']:+.1%}], "
                                        f"p={resolution['p_value']:.3g}; no guard metric worse")
    return decide("hold", share, f"no significant difference in resolution (p={resolution['p_value']:.3g})")


def load_outcomes(responses: list[dict], feedback: list[dict]) -> list[Outcome]:
    """Served responses joined with their feedback (the latest for a response wins), as the server's
    ResponseLog writes them."""
    return outcomes_from_rows(served_rows(responses, feedback))


LOG_FILE = re.compile(r"(responses|feedback)-\d{4}-\d{2}-\d{2}\.jsonl")


def read_response_log(folder: Path) -> tuple[list[dict], list[dict], int]:
    """(responses, feedback, unreadable lines) from one product's folder of the server's ResponseLog. Only
    files named as the log names them are read (a name is compared, never used as a pattern); a line cut
    short by a crash is counted, not fatal."""
    found: dict[str, list[dict]] = {"responses": [], "feedback": []}
    unreadable = 0
    if not folder.is_dir():
        return [], [], 0
    for path in sorted(folder.iterdir()):
        match = LOG_FILE.fullmatch(path.name)
        if not match or not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                unreadable += 1
                continue
            if isinstance(entry, dict) and isinstance(entry.get("response_id"), str):
                found[match.group(1)].append(entry)
            else:
                unreadable += 1
    return found["responses"], found["feedback"], unreadable


SERVED_COLUMNS = {"response_id": str, "arm": str, "adapter_dir": str, "conversation": str, "created": float,
                  "latency_seconds": float, "prompt_tokens": int, "completion_tokens": int, "finish_reason": str,
                  "error": bool, "resolved": bool, "escalated": bool, "csat": int, "thumbs": str,
                  "corrected_reply": str, "prompt": str, "reply": str, "messages_json": str}


def served_rows(responses: list[dict], feedback: list[dict]) -> list[dict]:
    """One row per served response with its latest feedback (None where none came): the table the A/B
    report and the next training read. Texts are as the log wrote them, already redacted."""
    latest = {f["response_id"]: f for f in sorted(feedback, key=lambda f: f.get("created", 0))}
    rows = []
    for r in responses:
        f = latest.get(r["response_id"], {})
        messages = r.get("messages") or []
        rows.append({
            "response_id": r["response_id"], "arm": r.get("arm", "champion"), "adapter_dir": r.get("adapter_dir"),
            "conversation": r.get("conversation"), "created": r.get("created"),
            "latency_seconds": r.get("latency_seconds"), "prompt_tokens": r.get("prompt_tokens", 0),
            "completion_tokens": r.get("completion_tokens", 0), "finish_reason": r.get("finish_reason"),
            "error": bool(r.get("error", False)), "resolved": f.get("resolved"), "escalated": f.get("escalated"),
            "csat": f.get("csat"), "thumbs": f.get("thumbs"), "corrected_reply": f.get("corrected_reply"),
            "prompt": next((m["content"] for m in reversed(messages) if m.get("role") == "user"), None),
            "reply": r.get("reply"), "messages_json": json.dumps(messages)})
    return rows


def served_frame(responses: list[dict], feedback: list[dict]):
    """`served_rows` as a polars frame typed by SERVED_COLUMNS (an empty log gives an empty, typed frame)."""
    import polars as pl

    types = {str: pl.String, float: pl.Float64, int: pl.Int64, bool: pl.Boolean}
    return pl.DataFrame(served_rows(responses, feedback), schema={c: types[t] for c, t in SERVED_COLUMNS.items()},
                        orient="row")


def outcomes_from_rows(rows: list[dict]) -> list[Outcome]:
    return [Outcome(arm=r["arm"], latency_seconds=r["latency_seconds"] or 0.0,
                    prompt_tokens=r["prompt_tokens"] or 0, completion_tokens=r["completion_tokens"] or 0,
                    error=bool(r["error"]), resolved=r["resolved"], escalated=r["escalated"], csat=r["csat"])
            for r in rows]
