"""bench.bitext_quality's model-free yardsticks: what a reply chosen among earlier replies can score."""

import json


def _chat(ask: str, reply: str, topic: str) -> dict:
    return {"messages": [{"role": "user", "content": ask}, {"role": "assistant", "content": reply}],
            "metadata": {"topic": topic}}


def test_same_type_yardsticks_average_and_best_over_the_tickets_own_type(tmp_path):
    """The random-reply yardstick averages over the ticket's own type only (the other type's reply, close to the
    reference, would raise it), and the oracle takes the best of them: here the exact reference, so 1.0."""
    from bench.bitext_quality import nearest_reply_rouge

    product = tmp_path / "exports" / "refund"
    product.mkdir(parents=True)
    train = [_chat("refund please", "refunds take five days", "get_refund"),
             _chat("money back", "we send your money back soon", "get_refund"),
             _chat("where is my parcel", "refunds take five days, tracking two", "track_order")]
    test = [_chat("I want a refund", "refunds take five days", "get_refund")]
    for name, rows in (("train", train), ("test", test)):
        (product / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    row = nearest_reply_rouge(tmp_path, eval_examples=10)["refund"]
    assert row["rougeL_same_type_oracle"] == 1.0
    assert row["rougeL_same_type_random"] == 0.5  # (1.0 + 0.0) / 2: the type's other reply shares no word
    assert row["rougeL_typical_reply"] == 1.0  # with two replies of the type, the first is its typical one
