import json

import pytest

from tests.openai_stub import OpenAIStub
from tuneline.evaluation import (
    distinct_2,
    echoes,
    exact_match,
    generation_budget,
    human_eval_sample,
    leaks,
    paired_bootstrap,
    token_f1,
)
from tuneline.registry import GatePolicy, promotion_gate


def test_text_metrics():
    assert token_f1("refund in 5 days", "your refund arrives in 5 days") == pytest.approx(2 * 1 * 4 / 6 / (1 + 4 / 6))
    assert token_f1("", "") == 1.0 and token_f1("x", "y") == 0.0
    assert exact_match("Done!", "done") == 1.0
    assert distinct_2("a b a b a b") == pytest.approx(2 / 5)
    assert leaks("mail me at a.b@example.com") and leaks("Thanks [PERSON]!") and leaks("call (212) 555-1234")
    assert not leaks("Your refund arrives in 5 business days.")
    assert not leaks("Here is the bill from [PERSON].", prompt="where is the bill from [PERSON]?")
    assert leaks("Thanks [PERSON], the bill from [EMAIL] is ready.", prompt="bill from [PERSON]?")
    assert leaks("write to help@corp.example", prompt="my mail is me@home.example")
    assert echoes("the bill from [PERSON]", "bill from [PERSON]?") and not echoes("the bill", "from [PERSON]")
    # every placeholder the redactor writes counts, not a hand-kept subset
    assert leaks("we moved it to [DATE] in [LOCATION]") and leaks("your [SECRET] was reset")
    assert not leaks("press [Enter] to continue")


def test_paired_bootstrap_interval_excludes_zero_only_for_a_real_gain():
    gain = paired_bootstrap([0.5 + 0.01 * i for i in range(30)], [0.2 + 0.01 * i for i in range(30)])
    assert gain["delta"] == pytest.approx(0.3) and gain["ci_low"] > 0
    noise = paired_bootstrap([0.1, 0.9, 0.2, 0.8] * 5, [0.9, 0.1, 0.8, 0.2] * 5)
    assert noise["ci_low"] < 0 < noise["ci_high"]


def _report(rouge_low=0.05, eot=0.9, leak=0.0, tuned_rouge=0.3):
    return {"tuned": {"rougeL": tuned_rouge, "ended_with_eot": eot, "leak_rate": leak},
            "bootstrap": {"rougeL": {"delta": 0.1, "ci_low": rouge_low, "ci_high": 0.2}}}


def test_promotion_gate():
    assert promotion_gate(_report(), None)["passed"]
    failing = promotion_gate(_report(rouge_low=-0.01), None)
    assert not failing["passed"] and "does not lie above 0" in failing["reasons"][0]
    assert not promotion_gate(_report(tuned_rouge=0.3), {"rougeL": 0.4})["passed"]
    assert promotion_gate(_report(tuned_rouge=0.39), {"rougeL": 0.4})["passed"]  # within the 0.02 margin
    assert not promotion_gate(_report(eot=0.2), None)["checks"]["hygiene"]
    assert not promotion_gate(_report(leak=0.2), None)["checks"]["no_leaks"]
    assert promotion_gate(_report(leak=0.2), None, GatePolicy(max_leak_rate=0.5))["passed"]
    cut_short = {**_report(), "generation": {"max_new_tokens": 64, "reference_tokens_p95": 170, "covers_p95": False}}
    assert promotion_gate(cut_short, None)["reasons"] == [
        "generated at most 64 tokens, below the references' 95th percentile (170): replies could not finish"]
    judged = {**_report(), "judge": {"tuned_win_rate": 0.4}}
    assert not promotion_gate(judged, None)["checks"]["judge_prefers_tuned"]
    assert promotion_gate({**_report(), "judge": {"tuned_win_rate": 0.6}}, None)["passed"]
    assert promotion_gate({**_report(), "judge": {"tuned_win_rate": None}}, None)["passed"]  # nothing decided


def test_mangled_template_placeholders_are_counted_and_gate_promotion():
    from tuneline.evaluation import broken_placeholder

    assert not broken_placeholder("Download it from {{Website Name}} with {{Order Number}}.")
    assert not broken_placeholder("No placeholders at all, [PERSON].")
    for mangled in ("from {[PERSON]}}", "order {{Order [ORDER_ID]}}", "visit {Website Name}}", "see {{Account"):
        assert broken_placeholder(mangled), mangled
    report = {**_report(), "tuned": {**_report()["tuned"], "broken_placeholders": 0.1}}
    assert promotion_gate(report, None)["reasons"] == ["10% of replies mangle a template placeholder"]


def test_generation_budget_covers_the_references_with_headroom():
    lengths = list(range(1, 101))  # nearest-rank 95th percentile: 95
    budget = generation_budget(lengths, 0, 512, headroom=1.5)
    assert (budget["max_new_tokens"], budget["reference_tokens_p95"], budget["covers_p95"]) == (143, 95, True)
    assert generation_budget(lengths, 64, 512)["covers_p95"] is False
    capped = generation_budget(lengths, 0, 80)
    assert (capped["max_new_tokens"], capped["covers_p95"]) == (80, False)
    assert generation_budget([3, 4], 0, 512)["max_new_tokens"] == 16  # never fewer than 16


def test_a_tiny_test_split_is_sized_by_every_reference_of_the_product():
    """CANCELLATION_FEE had 3 test tickets: their p95 (133) cut every reply; the product's 62 references
    (train and val too) say how long its replies run."""
    test = [128, 132, 133]
    product = test + [150] * 40 + [200] * 19  # p95 of the 62: 200
    budget = generation_budget(test, 0, 512, sizing_tokens=product, headroom=1.5)
    assert budget["max_new_tokens"] == 300 and budget["sizing_references"] == 62
    assert budget["reference_tokens_p95"] == 133 and budget["covers_p95"]
    # the test references' own p95 is a floor even when the product's other replies are short
    assert generation_budget([400], 0, 512, sizing_tokens=[10] * 50)["max_new_tokens"] == 400


def test_human_eval_sample_is_stratified_and_blind():
    samples = [{"topic": "a" if i < 90 else "b", "prompt": f"q{i}", "reference": "r", "base": "B", "tuned": "T"}
               for i in range(100)]
    rows = human_eval_sample(samples, size=20, seed=3)
    assert len(rows) == 20 and sum(r["topic"] == "b" for r in rows) == 10
    for row in rows:
        assert (row["reply_a"], row["reply_b"]) == (("T", "B") if row["a_is"] == "tuned" else ("B", "T"))


def test_judge_pairwise_randomises_order_and_counts_malformed():
    from tuneline.evaluation import judge_pairwise
    from tuneline.judge import Judge

    rubric = json.dumps({"helpfulness": 4, "accuracy": 4, "tone": 5, "completeness": 3})
    samples = [{"prompt": f"q{i}", "reference": "r", "base": "base reply", "tuned": "tuned reply"} for i in range(4)]
    with OpenAIStub() as stub:
        # per sample: rubric(base), rubric(tuned), verdict
        stub.chat_replies = [rubric, rubric, '{"winner": "A"}', rubric, "garbage", '{"winner": "B"}',
                             rubric, rubric, '{"winner": "tie"}', rubric, rubric, "not json"]
        result = judge_pairwise(Judge(stub.base_url, "judge", api_key=""), samples, seed=1)
        prompts = [r["body"]["messages"][0]["content"] for r in stub.requests if "Reply A" in
                   r["body"]["messages"][0]["content"]]
    assert result["pairwise"]["malformed"] == 1 and result["pairwise"]["tie"] == 1
    assert result["pairwise"]["tuned"] + result["pairwise"]["base"] == 2
    assert result["malformed"] == 2 and result["rubric"]["base"]["tone"] == 5.0
    firsts = {p.split("Reply A: ")[1].split("\n")[0] for p in prompts}
    assert firsts == {"base reply", "tuned reply"}, "the order of the two replies must vary"
    assert len(result["prompt_sha256"]) == 16


def test_registry_registers_promotes_and_rolls_back(tmp_path, tiny_model_dir):
    from tests.test_training import _chat_file
    from tuneline.cli import main as cli
    from tuneline.registry import champion_version, register_adapter, rollback
    from tuneline.training import TrainConfig
    from tuneline.training import main as train

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    adapter = train(TrainConfig(model=str(tiny_model_dir), train_file=str(_chat_file(tmp_path / "t.jsonl", 8)),
                                output_dir=str(tmp_path / "adapter"), max_steps=1))["adapter_dir"]
    first = register_adapter(uri, "tuneline-billing", adapter, {"rougeL": 0.3}, promote=True)
    second = register_adapter(uri, "tuneline-billing", adapter, {"rougeL": 0.2}, promote=False)
    assert champion_version(uri, "tuneline-billing")["version"] == first["version"] == 1
    third = register_adapter(uri, "tuneline-billing", adapter, {"rougeL": 0.4}, promote=True)
    champion = champion_version(uri, "tuneline-billing")
    assert champion["version"] == third["version"] == 3 and champion["rougeL"] == 0.4 and second["version"] == 2
    rollback(uri, "tuneline-billing", 1)
    assert champion_version(uri, "tuneline-billing")["version"] == 1
    assert cli(["registry", "rollback", "--product", "billing", "--version", "3", "--tracking-uri", uri]) == 0
    assert champion_version(uri, "tuneline-billing")["version"] == 3
    assert champion_version(uri, "tuneline-shipping") is None

    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model("models:/tuneline-billing@champion")
    replies = model.predict(pd.DataFrame({"messages": [[{"role": "user", "content": "Where is my refund?"}]]}),
                            params={"max_new_tokens": 4})
    assert len(replies) == 1 and isinstance(replies[0], str)
