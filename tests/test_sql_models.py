import polars as pl
import pytest

from ft_assets.sql_models import SQL_DIR, load_sql_assets, run_sql_model, upstream_tables
from tests.conftest import age_files
from tuneline.cleaning import clean_conversations
from tuneline.curation import score_conversations
from tuneline.ingest import ingest_product
from tuneline.splits import assign_splits
from tuneline.synthetic import write_landing_zone


def test_upstream_tables_ignore_ctes():
    sql = "with source as (select * from raw_tickets), x as (select * from source join scored_dataset using (id)) " \
          "select * from x"
    assert upstream_tables(sql) == ["raw_tickets", "scored_dataset"]


def test_every_sql_file_is_one_asset_with_parsed_deps():
    assets = {a.key.to_user_string(): a for a in load_sql_assets()}
    files = sorted(p.stem for p in SQL_DIR.glob("*.sql"))
    assert sorted(assets) == files and len(files) >= 2
    deps = {k: sorted(d.to_user_string() for d in a.asset_deps[a.key]) for k, a in assets.items()}
    assert deps["product_ticket_stats"] == ["raw_tickets"]
    assert deps["curation_funnel"] == ["scored_dataset"]
    assert deps["split_stats"] == ["dataset_splits"]
    assert deps["stg_tickets"] == ["raw_tickets"]


@pytest.fixture(scope="module")
def upstream_parquet(tmp_path_factory, redactor):
    root = tmp_path_factory.mktemp("sql")
    write_landing_zone(root / "landing", ["billing"], 40)
    age_files(root / "landing")
    raw = ingest_product(root / "landing" / "billing", "billing").kept
    scored = score_conversations(clean_conversations(raw, redactor))
    paths = {"raw_tickets": root / "raw.parquet", "scored_dataset": root / "scored.parquet",
             "dataset_splits": root / "splits.parquet"}
    raw.write_parquet(paths["raw_tickets"])
    scored.write_parquet(paths["scored_dataset"])
    assign_splits(scored).write_parquet(paths["dataset_splits"])
    return paths, raw, scored


@pytest.mark.parametrize("sql_file", sorted(SQL_DIR.glob("*.sql")), ids=lambda p: p.stem)
def test_every_model_runs_on_fixtures(sql_file, upstream_parquet):
    paths, _, _ = upstream_parquet
    sql = sql_file.read_text()
    result = run_sql_model(sql, {t: paths[t] for t in upstream_tables(sql)})
    assert result.height > 0
    assert "product" in result.columns


def test_models_compute_the_right_numbers(upstream_parquet):
    paths, raw, scored = upstream_parquet
    stats = run_sql_model((SQL_DIR / "product_ticket_stats.sql").read_text(), {"raw_tickets": paths["raw_tickets"]})
    assert stats.row(0, named=True)["tickets"] == raw.height
    funnel = run_sql_model((SQL_DIR / "curation_funnel.sql").read_text(),
                           {"scored_dataset": paths["scored_dataset"]})
    assert funnel["conversations"].sum() == scored.height
    kept = funnel.filter(pl.col("status") == "kept")["conversations"][0]
    assert kept == scored.filter(pl.col("status") == "kept").height
    split_stats = run_sql_model((SQL_DIR / "split_stats.sql").read_text(),
                                {"dataset_splits": paths["dataset_splits"]})
    assert split_stats["examples"].sum() == kept
    staging = run_sql_model((SQL_DIR / "stg_tickets.sql").read_text(), {"raw_tickets": paths["raw_tickets"]})
    assert staging.height == raw.height and staging["turns"].min() == 2


def test_a_model_over_parts_scans_their_files_and_equals_the_whole(upstream_parquet, tmp_path):
    """A parted asset reaches DuckDB as its parquet files (streamed, no part read through polars); a store
    that is not on this machine has each part written to scratch first; the result equals the whole frame's."""
    from tuneline.parts import Part, PartedFrame, parquet_part_reader

    paths, raw, _ = upstream_parquet
    halves = [raw.slice(0, raw.height // 2), raw.slice(raw.height // 2)]
    store = tmp_path / "store"
    store.mkdir()
    keys = [f"{i:016x}" for i in range(len(halves))]
    for key, half in zip(keys, halves, strict=True):
        half.write_parquet(store / f"{key}.parquet")
    local = parquet_part_reader(lambda key: store / f"{key}.parquet")
    reads = []

    def counting(key, columns):
        reads.append(key)
        return local(key, columns)

    counting.locate = local.locate
    parts = [Part(key, half.height) for key, half in zip(keys, halves, strict=True)]
    sql = (SQL_DIR / "stg_tickets.sql").read_text()
    whole = run_sql_model(sql, {"raw_tickets": paths["raw_tickets"]}).sort("ticket_id")
    scratch = tmp_path / "work" / "billing"  # not made yet, as on a worker that made no part of this product
    assert run_sql_model(sql, {"raw_tickets": PartedFrame(parts, counting)}, scratch).sort("ticket_id").equals(whole)
    assert reads == [], "DuckDB scanned the stored files; no part went through polars"
    remote = PartedFrame(parts, lambda key, columns: pl.read_parquet(store / f"{key}.parquet", columns=columns))
    assert run_sql_model(sql, {"raw_tickets": remote}, scratch).sort("ticket_id").equals(whole)
    assert not list(scratch.iterdir()), "the scratch copies go with the query"
