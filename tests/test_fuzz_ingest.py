"""Generated hostile input (hypothesis): whatever lands, ingestion never raises, never loses a record
(in = kept + rejected), keeps what is usable with its text intact, and names the reason for the rest."""

import csv
import io
import json
import string
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuneline.ingest import REJECTED_SCHEMA, SUPPORTED_SUFFIXES, ingest_file, ingest_product

REASONS = {"unreadable_file", "malformed_json", "not_an_object", "missing_user_text", "missing_assistant_text",
           "invalid_messages", "invalid_csat", "duplicate_ticket_id"}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# text a customer could type: any unicode but surrogates, including RTL, emoji, quotes, commas and newlines
ticket_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ticket_text
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(ticket_text, inner, max_size=3), max_leaves=8)
fields = st.sampled_from(["ticket_id", "customer_message", "agent_response", "csat", "thread_id", "messages",
                          "category", "extra"])
records = st.dictionaries(fields, json_values, max_size=6)


def _ingest_bytes(name: str, payload: bytes):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(payload)
        return ingest_file(path, "fuzz")


def _conserved(result):
    assert result.records_in == result.kept.height + result.rejected.height
    assert set(result.rejected["reason"].to_list()) <= REASONS, set(result.rejected["reason"].to_list())
    assert result.rejected.schema == REJECTED_SCHEMA


@FUZZ
@given(suffix=st.sampled_from(SUPPORTED_SUFFIXES), payload=st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash_ingest(suffix, payload):
    result = _ingest_bytes(f"drop{suffix}", payload)
    _conserved(result)
    if result.records_in == 1 and result.rejected.height == 1 and result.rejected["reason"][0] == "unreadable_file":
        assert result.rejected["source_file"][0] == f"drop{suffix}"


@FUZZ
@given(lines=st.lists(records | ticket_text.map(lambda t: "{" + t) | json_values, min_size=1, max_size=20))
def test_jsonl_every_nonblank_line_is_kept_or_rejected(lines):
    text = "\n".join(line if isinstance(line, str) and line.startswith("{") else json.dumps(line) for line in lines)
    result = _ingest_bytes("drop.jsonl", text.encode())
    _conserved(result)
    if result.rejected.height and result.rejected["reason"][0] == "unreadable_file":
        return
    assert result.records_in == sum(1 for line in text.splitlines() if line.strip())


usable = st.text(string.ascii_letters + string.digits + " ,.;:'\"\n?!éü😀مرحبا", min_size=1, max_size=120).filter(
    lambda t: t.strip() != "")


@FUZZ
@given(rows=st.lists(st.tuples(usable, usable), min_size=1, max_size=15),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]))
def test_csv_with_quotes_newlines_and_unicode_keeps_text_exactly(rows, encoding):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["ticket_id", "customer_message", "agent_response"])
    for number, (question, answer) in enumerate(rows):
        writer.writerow([f"t{number}", question, answer])
    result = _ingest_bytes("drop.csv", buffer.getvalue().encode(encoding))
    _conserved(result)
    assert result.rejected.height == 0 and result.kept.height == len(rows)
    for (question, answer), messages in zip(rows, result.kept["messages"].to_list(), strict=True):
        assert [m["content"] for m in messages] == [question, answer]


@FUZZ
@given(ids=st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=12))
def test_redelivered_ids_keep_the_first_and_quarantine_the_rest(ids):
    with tempfile.TemporaryDirectory() as folder:
        product = Path(folder) / "p"
        product.mkdir()
        half = len(ids) // 2
        for name, chunk in (("a.jsonl", ids[:half]), ("b.jsonl", ids[half:])):
            if not chunk:
                continue  # an empty file would be one more (correctly) quarantined item
            (product / name).write_text("".join(
                json.dumps({"ticket_id": i, "customer_message": "where is my order?", "agent_response": "here"}) + "\n"
                for i in chunk))
        result = ingest_product(product, "p")
    _conserved(result)
    assert sorted(result.kept["ticket_id"].to_list()) == sorted(set(ids))
    assert result.rejected["reason"].to_list() == ["duplicate_ticket_id"] * (len(ids) - len(set(ids)))
