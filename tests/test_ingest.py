import json

import polars as pl
import pytest

from tests.conftest import age_files
from tuneline.ingest import ColumnMapping, ingest_file, ingest_product
from tuneline.synthetic import PlantedTruth, write_landing_zone


def _write_csv(path, rows):
    pl.DataFrame(rows).write_csv(path)


def test_csv_with_quoted_newlines_and_missing_reply_is_quarantined(tmp_path):
    path = tmp_path / "t.csv"
    _write_csv(path, [
        {"ticket_id": "a", "customer_message": "Line one\nline two, \"quoted\"", "agent_response": "Fixed it."},
        {"ticket_id": "b", "customer_message": "No answer yet", "agent_response": ""},
        {"ticket_id": "c", "customer_message": "", "agent_response": "Answer without question"},
    ])
    result = ingest_file(path, "billing")
    assert result.kept["ticket_id"].to_list() == ["a"]
    assert result.kept["messages"][0].to_list()[0]["content"] == "Line one\nline two, \"quoted\""
    assert dict(zip(result.rejected["ticket_id"], result.rejected["reason"], strict=True)) == {
        "b": "missing_assistant_text", "c": "missing_user_text"}
    assert result.records_in == result.kept.height + result.rejected.height == 3


def test_jsonl_malformed_line_non_object_and_multi_turn(tmp_path):
    path = tmp_path / "t.jsonl"
    multi = {"ticket_id": "m", "messages": [["customer", "hi, my order is late"], ["agent", "Checking now."],
                                            {"role": "user", "content": "thanks"},
                                            {"role": "assistant", "content": "It ships today."}]}
    path.write_text("\n".join([json.dumps(multi), '{"ticket_id": "x", "customer', json.dumps([1, 2]),
                               json.dumps({"ticket_id": "r", "messages": [{"role": "robot", "content": "?"}]})]))
    result = ingest_file(path, "shipping")
    assert result.kept["ticket_id"].to_list() == ["m"]
    roles = [t["role"] for t in result.kept["messages"][0].to_list()]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert sorted(result.rejected["reason"].to_list()) == ["invalid_messages", "malformed_json", "not_an_object"]
    assert result.rejected.filter(pl.col("reason") == "malformed_json")["raw"][0].startswith('{"ticket_id": "x"')
    assert result.records_in == 4


def test_unreadable_file_is_one_rejected_item_with_the_file_name(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not parquet \x00\xff")
    result = ingest_file(path, "billing")
    assert result.kept.height == 0
    assert result.rejected.height == 1 and result.records_in == 1
    row = result.rejected.row(0, named=True)
    assert row["reason"] == "unreadable_file" and row["source_file"] == "broken.parquet"


def test_duplicate_ticket_ids_across_files_keep_the_first(tmp_path):
    folder = tmp_path / "billing"
    folder.mkdir()
    _write_csv(folder / "a.csv", [{"ticket_id": "1", "customer_message": "q", "agent_response": "a"}])
    _write_csv(folder / "b.csv", [{"ticket_id": "1", "customer_message": "q2", "agent_response": "a2"}])
    result = ingest_product(folder, "billing")
    assert result.kept["source_file"].to_list() == ["a.csv"]
    assert result.rejected["reason"].to_list() == ["duplicate_ticket_id"]
    assert result.records_in == 2


def test_generated_landing_zone_conserves_every_record(tmp_path):
    truth = write_landing_zone(tmp_path, ["billing", "shipping"], 40)
    age_files(tmp_path)
    total_in = total_kept = total_rejected = 0
    for product in ("billing", "shipping"):
        result = ingest_product(tmp_path / product, product)
        total_in += result.records_in
        total_kept += result.kept.height
        total_rejected += result.rejected.height
    assert total_in == truth.rows_written == total_kept + total_rejected
    assert total_rejected == truth.malformed_rows


def test_column_mapping_on_real_bitext_csv(shared_data):
    mapping = ColumnMapping(id_column="none", user_column="instruction", assistant_column="response",
                            thread_column="none")
    result = ingest_file(shared_data / "bitext" / "tickets.csv", "bitext", mapping)
    assert result.records_in == 1801
    assert result.kept.height + result.rejected.height == 1801
    assert result.kept.height > 1700
    replies = [m.to_list()[1]["content"] for m in result.kept["messages"]]
    assert any("\n" in r for r in replies), "quoted multi-line responses must survive CSV parsing"


def test_planted_truth_counts_are_consistent():
    truth = PlantedTruth()
    from tuneline.synthetic import generate_product_tickets

    rows = generate_product_tickets("account", 50, seed=1, truth=truth)
    assert len(rows) == 50 + truth.exact_duplicates + truth.near_duplicates + truth.too_short + \
        truth.non_english + truth.malformed_rows
    assert len({r["ticket_id"] for r in rows}) == len(rows)


@pytest.mark.parametrize("value", [None, ""])
def test_missing_ticket_id_gets_a_stable_generated_id(tmp_path, value):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"ticket_id": value, "customer_message": "q?", "agent_response": "a."}) + "\n")
    first = ingest_file(path, "p").kept["ticket_id"][0]
    assert first and first == ingest_file(path, "p").kept["ticket_id"][0]


def test_parquet_multi_turn_and_csat_and_metadata(tmp_path):
    path = tmp_path / "export.parquet"
    pl.DataFrame({"ticket_id": ["p1", "p2"], "csat": ["4", "great"], "intent": ["refund", "x"],
                  "messages": [[{"role": "user", "content": "refund?"}, {"role": "assistant", "content": "Done."}],
                               [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]]}
                 ).write_parquet(path)
    result = ingest_file(path, "billing")
    row = result.kept.row(0, named=True)
    assert row["csat"] == 4.0 and json.loads(row["metadata"]) == {"intent": "refund"}
    assert row["source_kind"] == "ticket"
    assert result.rejected["reason"].to_list() == ["invalid_csat"]


def test_kb_markdown_becomes_tagged_question_answer_examples(tmp_path):
    path = tmp_path / "faq.md"
    path.write_text("# Billing FAQ\n\n## How do I get an invoice?\nGo to Settings > Billing > History.\n\n"
                    "## Can I pay yearly?\nYes, choose yearly billing under Plan.\n\n## Empty question\n")
    result = ingest_file(path, "billing")
    assert result.kept["source_kind"].to_list() == ["kb", "kb"]
    first = result.kept["messages"][0].to_list()
    assert first == [{"role": "user", "content": "How do I get an invoice?"},
                     {"role": "assistant", "content": "Go to Settings > Billing > History."}]
    assert result.rejected["reason"].to_list() == ["missing_assistant_text"]
    assert result.records_in == 3


def test_split_by_product_keeps_every_row(tmp_path, shared_data):
    from tuneline.ingest import split_by_product

    counts = split_by_product(shared_data / "bitext" / "tickets.csv", tmp_path, "category")
    age_files(tmp_path)
    assert len(counts) == 11 and sum(counts.values()) == 1801
    assert (tmp_path / "account" / "tickets.parquet").is_file()
