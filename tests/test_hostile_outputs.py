"""What tuneline writes, against hostile content: CSV files for people cannot run formulas, identifiers
never leave raw_tickets, the re-scan reads across line breaks."""

import csv
import io

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tuneline.cleaning import pseudonym, pseudonymize_identifiers
from tuneline.reporting import FORMULA_LEADS, spreadsheet_safe, write_people_csv


@settings(max_examples=500, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["a", "=b", "c"]), st.one_of(st.text(max_size=30), st.integers(),
                                                                          st.none()), min_size=1), min_size=1,
                max_size=5))
def test_no_cell_of_a_people_csv_starts_like_a_formula(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("csv") / "sheet.csv"
    fields = list(dict.fromkeys(k for row in rows for k in row))
    write_people_csv(path, [{f: row.get(f) for f in fields} for row in rows])
    for line in csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")):
        for cell in line:  # a plain negative number is data, not a formula
            assert not cell.startswith(FORMULA_LEADS) or _is_number(cell), cell


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_formula_cells_are_escaped_and_plain_ones_left_alone():
    for value in ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\uff1d1"]:
        assert spreadsheet_safe(value) == "'" + value
    assert spreadsheet_safe("Where is my order?") == "Where is my order?" and spreadsheet_safe(-3) == -3


def test_identifiers_are_keyed_hashes_and_dates_only_dates():
    frame = pl.DataFrame({"ticket_id": ["maria@example.com", "t2"], "thread_id": ["+1 415 555 0100", "t2"],
                          "created_at": ["2026-01-02T03:04:05Z", "call Maria on 555 0100"]})
    out = pseudonymize_identifiers(frame, b"k1")
    assert "maria" not in out.write_csv() and "415 555" not in out.write_csv()
    assert out["ticket_id"][0] == pseudonym("maria@example.com", b"k1") != pseudonym("maria@example.com", b"k2")
    assert out["created_at"].to_list() == ["2026-01-02T03:04:05+00:00", None]


def test_the_rescan_reads_across_line_breaks(redactor):
    texts = ["write to maria.gonzalez@exam\nple.com today", "my card is 4111 1111\n1111 1111", "no pii\nhere"]
    found = {i for i, _, _ in redactor.find_high_confidence(texts)}
    assert found == {0, 1}
