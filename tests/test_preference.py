import json

import polars as pl
import pytest

from tests.test_training import _chat_file
from tuneline.ingest import MESSAGE_DTYPE
from tuneline.preference import PreferenceConfig, build_preference_pairs, low_quality_replies, main
from tuneline.training import TrainConfig
from tuneline.training import main as sft_main


def _splits(topics, statuses=None):
    n = len(topics)
    return pl.DataFrame({
        "content_hash": [f"h{i}" for i in range(n)], "topic": topics,
        "split": ["train"] * n, "status": statuses or ["kept"] * n,
        "messages": pl.Series([[{"role": "system", "content": "s"}, {"role": "user", "content": f"q{i}"},
                                {"role": "assistant", "content": f"reply about {t} {i}"}]
                               for i, t in enumerate(topics)], dtype=MESSAGE_DTYPE)})


def test_pairs_use_low_quality_replies_when_there_are_some():
    splits = _splits(["refund", "login"])
    scored = pl.concat([splits, _splits(["refund"], ["low_quality"]).with_columns(
        pl.lit("hx").alias("content_hash"))])
    pairs = build_preference_pairs(splits, low_quality_replies(scored))
    assert len(pairs) == 2
    assert all(p["rejected_source"] == "low_quality_reply" for p in pairs)
    assert pairs[0]["chosen"][0]["content"] == "reply about refund 0"
    assert pairs[0]["prompt"][-1] == {"role": "user", "content": "q0"}


def test_pairs_fall_back_to_another_topics_reply():
    splits = _splits(["refund", "refund", "login"])
    pairs = build_preference_pairs(splits, low_quality_replies(splits))
    for pair in pairs:
        assert pair["rejected_source"] == "other_topic_reply"
        assert pair["rejected"][0]["content"] != pair["chosen"][0]["content"]
    refund_pair = pairs[0]
    assert "login" in refund_pair["rejected"][0]["content"]


def test_one_topic_falls_back_to_any_different_reply_and_equal_replies_make_no_pair():
    pairs = build_preference_pairs(_splits(["refund"] * 3), [])
    assert len(pairs) == 3
    assert all(p["rejected"][0]["content"] != p["chosen"][0]["content"] for p in pairs)
    same = _splits(["refund", "refund"]).with_columns(pl.Series("messages", [[
        {"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "the same reply"}] for i in range(2)],
        dtype=MESSAGE_DTYPE))
    assert build_preference_pairs(same, []) == []


@pytest.mark.parametrize("method", ["dpo", "orpo", "grpo"])
def test_preference_training_on_top_of_the_sft_adapter(tiny_model_dir, tmp_path, method):
    sft = sft_main(TrainConfig(model=str(tiny_model_dir), train_file=str(_chat_file(tmp_path / "t.jsonl", 8)),
                               output_dir=str(tmp_path / "sft"), max_steps=1, gradient_accumulation_steps=1))
    pairs = tmp_path / "pairs.jsonl"
    pair = {"prompt": [{"role": "user", "content": "Where is my refund?"}],
            "chosen": [{"role": "assistant", "content": "It was issued and arrives in 5 days."}],
            "rejected": [{"role": "assistant", "content": "Please reset your password."}]}
    pairs.write_text("".join(json.dumps(pair) + "\n" for _ in range(4)))
    summary = main(PreferenceConfig(model=str(tiny_model_dir), sft_adapter=sft["adapter_dir"],
                                    pairs_file=str(pairs), output_dir=str(tmp_path / method), method=method,
                                    max_steps=2, learning_rate=1e-3, max_completion_length=8, num_generations=2))
    assert summary["global_steps"] == 2 and summary["method"] == method
    assert (tmp_path / method / "adapter_model.safetensors").is_file()
    if method == "grpo":  # the rule-based reward was computed on sampled replies
        assert 0.0 <= summary["reward_last"] <= 1.0


def test_grpo_reward_scores_what_the_gate_checks():
    from tuneline.preference import support_reply_reward

    reward = support_reply_reward(eos_token_id=2)
    prompt = [{"role": "user", "content": "Where is order {{Order Number}}?"}]
    reference = "Your order {{Order Number}} ships tomorrow."
    good = [{"role": "assistant", "content": "Your order {{Order Number}} ships today."}]
    broken = [{"role": "assistant", "content": "Your order {{Order [ORDER_ID]}} ships today."}]
    leaking = [{"role": "assistant", "content": "Mail [EMAIL] or jo@corp.example today"}]
    scores = reward([prompt] * 4, [good, good, broken, leaking], [[5, 2], [5, 6], [5, 2], [5, 2]], [reference] * 4)
    assert scores[0] > 0.9 and scores[1] == pytest.approx(scores[0] - 0.25)  # no end-of-turn: a quarter less
    assert scores[2] < scores[0] and scores[3] < scores[0]
