import json

import polars as pl

from tuneline.cleaning import clean_conversations, count_entities, normalize_text
from tuneline.ingest import MESSAGE_DTYPE
from tuneline.synthetic import PlantedTruth, generate_product_tickets


def test_normalize_text_unicode_html_whitespace():
    assert normalize_text("ﬁle  <b>now</b>&amp; \t then\r\n\r\n\r\n\r\nend\x00") == "file now & then\n\nend"
    assert normalize_text("  ＡＢＣ  ") == "ABC"


def _frame(rows):
    return pl.DataFrame({
        "ticket_id": [r["ticket_id"] for r in rows],
        "messages": pl.Series([[{"role": "user", "content": r["customer_message"]},
                                {"role": "assistant", "content": r["agent_response"] or "ok"}] for r in rows],
                              dtype=MESSAGE_DTYPE),
    })


def test_planted_pii_is_replaced_by_typed_placeholders(redactor):
    truth = PlantedTruth()
    rows = generate_product_tickets("billing", 120, seed=11, truth=truth)
    cleaned = clean_conversations(_frame(rows), redactor)
    text = "\n".join(t["content"] for conv in cleaned["messages"].to_list() for t in conv)
    for kind in ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD"):
        assert truth.pii_values[kind], kind
        leaked = [v for v in truth.pii_values[kind] if v in text]
        assert not leaked, f"{kind} leaked: {leaked[:3]}"
    names = truth.pii_values["PERSON"]
    recall = sum(1 for n in names if n not in text) / len(names)
    assert recall >= 0.9, recall
    for placeholder in ("[EMAIL]", "[PHONE]", "[PERSON]", "[CREDIT_CARD]"):
        assert placeholder in text
    counts = count_entities(cleaned)
    assert counts["EMAIL_ADDRESS"] >= len(set(truth.pii_values["EMAIL_ADDRESS"]))
    assert cleaned["pii_total"].sum() == sum(counts.values())


def test_text_without_pii_is_unchanged(redactor):
    text = "Go to Settings > Billing > History and choose Download PDF."
    assert redactor.redact_many([text])[0].text == text


def test_recall_on_presidio_research_sample(redactor, shared_data):
    records = json.loads((shared_data / "presidio" / "generated_small.json").read_text())
    results = redactor.analyze([r["full_text"] for r in records])
    found = {"CREDIT_CARD": [0, 0], "PERSON": [0, 0], "EMAIL_ADDRESS": [0, 0]}
    for record, detections in zip(records, results, strict=True):
        for span in record["spans"]:
            if span["entity_type"] in found:
                found[span["entity_type"]][1] += 1
                hit = any(d.start < span["end_position"] and span["start_position"] < d.end for d in detections)
                found[span["entity_type"]][0] += hit
    assert found["CREDIT_CARD"][0] == found["CREDIT_CARD"][1] > 0
    assert found["EMAIL_ADDRESS"][0] == found["EMAIL_ADDRESS"][1] > 0
    assert found["PERSON"][0] / found["PERSON"][1] >= 0.7


def test_high_confidence_rescan_finds_what_was_left(redactor):
    leftovers = redactor.find_high_confidence(["mail me at jane.doe@example.com", "nothing here"])
    assert [(i, kind) for i, kind, _ in leftovers] == [(0, "EMAIL_ADDRESS")]


def test_support_noise_is_removed():
    from tuneline.cleaning import clean_text

    text = ("My invoice is wrong.\n[internal] customer is on the legacy plan\n> previous reply quoted\n"
            "See https://example.com/billing?id=3 for acme-PRO.\n--\nJane\nSupport Lead\n")
    assert clean_text(text, {"acme-pro": "Acme Pro"}) == "My invoice is wrong.\nSee [URL] for Acme Pro."
    assert clean_text("Thanks!\nOn Tue, 3 Mar 2026 Bob <b@example.com> wrote:\n> hi") == "Thanks!"
    assert clean_text("Fixed.\nSent from my iPhone") == "Fixed."


def test_turn_empty_after_cleaning_is_dropped_but_the_row_is_kept(redactor):
    frame = pl.DataFrame({"ticket_id": ["1"], "messages": pl.Series(
        [[{"role": "user", "content": "Where is my refund?"}, {"role": "assistant", "content": "--\nSupport"}]],
        dtype=MESSAGE_DTYPE)})
    cleaned = clean_conversations(frame, redactor)
    assert cleaned.height == 1
    assert [t["role"] for t in cleaned["messages"][0].to_list()] == ["user"]


def test_pii_in_metadata_columns_and_file_names_is_redacted_too(redactor):
    frame = pl.DataFrame({
        "ticket_id": ["1"], "source_file": ["export-jane.doe@example.com.csv"],
        "metadata": [json.dumps({"intent": "refund", "agent_note": "call back on (212) 555-0147"})],
        "messages": pl.Series([[{"role": "user", "content": "Where is my refund?"},
                                {"role": "assistant", "content": "It is on its way."}]], dtype=MESSAGE_DTYPE)})
    cleaned = clean_conversations(frame, redactor)
    row = cleaned.row(0, named=True)
    assert "jane.doe" not in row["source_file"] and "[" in row["source_file"]
    metadata = json.loads(row["metadata"])
    assert metadata["intent"] == "refund" and "555-0147" not in metadata["agent_note"]
    assert row["pii_total"] == 2
