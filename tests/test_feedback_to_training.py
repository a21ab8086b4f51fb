"""Corrected answers from live traffic become training data: the server's response log is a source of
raw_tickets (source_kind "correction", ticket id = the response id), goes through the same cleaning, PII
and dedup path as tickets, and a correction in the training split yields a preference pair whose rejected
side is the answer that was served. No PII from the conversation or the correction survives."""

import dagster as dg
import polars as pl

from ft_assets.definitions import Settings, all_assets, build_resources
from ft_assets.partitions import PRODUCTS_PARTITION_NAME
from ft_resources.pii import PiiEngine
from tests.conftest import age_files
from tuneline.serving import Feedback, ResponseLog
from tuneline.synthetic import write_landing_zone

SECRETS = ("Dana Whitfield", "Whitfield", "212-555-0187", "dana.whitfield@mail.example", "4111 1111 1111 1111")
QUESTIONS = [
    "I was charged twice for my March invoice, my card 4111 1111 1111 1111 shows both payments. Please fix it.",
    "My package was supposed to arrive last Tuesday and the tracking page has not changed since then.",
    "How do I change the email address on my account? I no longer use dana.whitfield@mail.example.",
    "The discount code from your newsletter was rejected at checkout even though it has not expired yet.",
    "I want to cancel my subscription before the next billing date, what happens to my saved projects?",
    "Your app logs me out every few minutes on my phone since the last update, I am Dana Whitfield.",
]
CORRECTIONS = [
    "Sorry about the double charge. I refunded the second payment today; it reaches your card in 3-5 business "
    "days. Call me, Dana Whitfield, on 212-555-0187 if it does not.",
    "I checked with the carrier: the parcel is held at the local depot. It will be delivered tomorrow and you "
    "will get an updated tracking link by email within the hour.",
    "Open Settings, then Profile, choose Change email, enter the new address and confirm the link we send to "
    "it. The old address stops working for sign-in right away.",
    "The code only applies to annual plans, which is why checkout refused it. I added the same discount to "
    "your monthly plan manually; you will see it on the next invoice.",
    "You can cancel under Billing, Cancel subscription. Your projects stay readable for 90 days after the "
    "billing date, and you can export them as a zip at any time.",
    "This is a known issue in version 4.2 that logs out users with battery saver on. Version 4.3 fixes it and "
    "ships on Thursday; until then, turning battery saver off avoids it.",
]


def test_corrected_answers_reach_the_training_set_without_pii(home, tiny_model_dir):
    write_landing_zone(home / "landing", ["billing"], 40)
    age_files(home / "landing")
    log = ResponseLog(home / "serving" / "responses", PiiEngine().redactor())
    for i, (question, correction) in enumerate(zip(QUESTIONS, CORRECTIONS, strict=True)):
        response_id = f"chatcmpl-{i:024d}"
        log.record({"response_id": response_id, "product": "billing", "arm": "challenger", "adapter_dir": "/a",
                    "conversation": f"{i:016d}", "created": 1.0e9 + i, "latency_seconds": 0.2,
                    "prompt_tokens": 30, "completion_tokens": 12, "finish_reason": "stop"},
                   [{"role": "user", "content": question}], "I cannot help with that, Dana Whitfield.")
        log.flush()
        log.feedback("billing", Feedback(response_id=response_id, resolved=False, csat=2, corrected_reply=correction))
    log.flush()
    resources = build_resources(Settings(home=str(home), model_source="local", model=str(tiny_model_dir)))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing"])
        result = dg.materialize(all_assets(), instance=instance, resources=resources, partition_key="billing",
                                selection=["raw_tickets", "rejected_tickets", "cleaned_conversations",
                                           "near_duplicate_index", "scored_dataset", "dataset_splits",
                                           "preference_pairs"])
        assert result.success
        raw = result.output_for_node("ingest_tickets", "raw_tickets").collect()
        corrections = raw.filter(pl.col("source_kind") == "correction")
        assert sorted(corrections["ticket_id"]) == [f"served:chatcmpl-{i:024d}" for i in range(6)]  # lineage
        splits = result.output_for_node("dataset_splits").collect()
        kept = splits.filter(pl.col("source_kind") == "correction")
        assert kept.height >= 4, splits.group_by("source_kind", "status").len()
        assert all(m[-1]["content"] in {c.split(" Call me")[0] for c in CORRECTIONS} or "Sorry" in m[-1]["content"]
                   for m in kept["messages"].to_list())
        pairs = result.output_for_node("preference_pairs")
        served = pairs.filter(pl.col("rejected_source") == "served_reply")
        assert served.height == kept.filter(pl.col("split") == "train").height >= 1
        splits_event = next(e for e in result.get_asset_materialization_events()
                            if e.materialization.asset_key.to_user_string() == "dataset_splits")
        assert splits_event.materialization.metadata["train_corrections"].value == served.height
        assert all(r[0]["content"].startswith("I cannot help with that") for r in served["rejected"].to_list())
    written = "".join(p.read_text(errors="replace") for p in (home / "serving").rglob("*.jsonl"))
    text = written + "".join(str(row) for frame in (raw, splits, pairs) for row in frame.iter_rows())
    assert "[PERSON]" in text  # redacted, not lost
    for secret in SECRETS:
        assert secret not in text, secret
