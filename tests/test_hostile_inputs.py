"""Hostile landing files: each is ingested correctly or quarantined with a reason; in = kept + rejected."""

import json

import polars as pl
import pytest

from tuneline.ingest import ingest_file, ingest_product

ROW = {"ticket_id": "1", "customer_message": "Mein Paket ist beschädigt — was nun?",
       "agent_response": "Ersatz ist unterwegs."}


def _csv(rows):
    return pl.DataFrame(rows).write_csv()


@pytest.mark.parametrize(("name", "payload", "kept", "reasons"), [
    ("latin1.csv", _csv([ROW]).encode("cp1252"), 1, []),
    ("utf16.csv", _csv([ROW]).encode("utf-16"), 1, []),
    ("bom.jsonl", b"\xef\xbb\xbf" + json.dumps(ROW, ensure_ascii=False).encode(), 1, []),
    ("nulls.csv", _csv([ROW]).replace("Paket", "Pa\x00ket").encode(), 1, []),
    ("empty.csv", b"", 0, ["unreadable_file"]),
    ("empty.jsonl", b"\n\n", 0, ["unreadable_file"]),
    ("quotes.csv", b'ticket_id,customer_message,agent_response\n1,"he said ""hi""\nthen left","ok, fixed"\n', 1, []),
    ("missing.csv", b"ticket_id,customer_message\n1,hello there\n", 0, ["missing_assistant_text"]),
    ("extra.csv", b"ticket_id,customer_message,agent_response,foo\n1,q?,a.,bar\n", 1, []),
    ("types.jsonl", json.dumps({"ticket_id": 5, "customer_message": 3, "agent_response": ["x"]}).encode(), 0,
     ["missing_user_text"]),
    ("emoji_rtl.jsonl", json.dumps({"ticket_id": "e", "customer_message": "طلبي متأخر 😡 <b>help</b>",
                                    "agent_response": "Sorry! 🙏"}).encode(), 1, []),
    ("ragged.csv", b"a,b\n1,2,3,4\n\xff", 0, ["unreadable_file"]),
])
def test_hostile_file(tmp_path, name, payload, kept, reasons):
    path = tmp_path / name
    path.write_bytes(payload)
    result = ingest_file(path, "p")
    assert result.kept.height == kept
    assert sorted(result.rejected["reason"].to_list()) == reasons
    assert result.records_in == result.kept.height + result.rejected.height
    if reasons == ["unreadable_file"]:
        assert result.rejected["source_file"][0] == name


def test_decoded_text_is_right(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(_csv([ROW]).encode("cp1252"))
    assert ingest_file(path, "p").kept["messages"][0].to_list()[0]["content"] == ROW["customer_message"]


def test_huge_row_and_the_same_file_delivered_twice(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    big = {**ROW, "ticket_id": "big", "customer_message": "x " * 5_000_000}
    (folder / "a.jsonl").write_text(json.dumps(ROW) + "\n" + json.dumps(big) + "\n")
    (folder / "b.jsonl").write_text(json.dumps(ROW) + "\n")  # redelivered
    result = ingest_product(folder, "p")
    assert sorted(result.kept["ticket_id"].to_list()) == ["1"]
    assert sorted(result.rejected["reason"].to_list()) == ["duplicate_ticket_id", "too_long"]
    assert result.records_in == 3
