"""Assets stored in parts: a new landing file costs one new part per stage, everything before it is carried
over unread; a changed file re-makes its part and the parts after it (first ticket id wins across files);
the manifest is the commit point and names only digests; parts no manifest lists are deleted."""

import json
import os

import dagster as dg
import polars as pl
import pytest

from ft_assets.cleaning import cleaned_conversations
from ft_assets.curation import near_duplicate_index
from ft_assets.ingest import ingest_tickets
from ft_assets.partitions import PRODUCTS_PARTITION_NAME
from ft_resources.io_manager import PartitionedFileIOManager, read_asset_frame
from ft_resources.landing import LocalLandingZone
from ft_resources.pii import PiiEngine
from ft_resources.storage import TunelineStorage
from tests.conftest import age_files
from tuneline.parts import PartedFrame

STAGES = [ingest_tickets, cleaned_conversations, near_duplicate_index]


def _tickets(path, ids, text="My invoice shows a double charge for this month, please check it."):
    path.write_text("".join(json.dumps({"ticket_id": i, "customer_message": f"{text} ({i})",
                                        "agent_response": f"I refunded the duplicate charge {i} today."}) + "\n"
                            for i in ids))


def _manifest(home, asset):
    return json.loads((home / "assets" / asset / "billing.parts.json").read_text())["parts"]


def _run(instance, home):
    resources = {"landing": LocalLandingZone(path=str(home / "landing"), min_age_seconds=0),
                 "storage": TunelineStorage(root=str(home)), "io_manager": PartitionedFileIOManager(root=str(home)),
                 "pii": PiiEngine()}
    age_files(home / "landing")
    result = dg.materialize(STAGES, instance=instance, partition_key="billing", resources=resources)
    assert result.success
    return {e.materialization.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()}


def test_a_new_file_costs_one_part_and_earlier_parts_are_carried_unread(tmp_path):
    home = tmp_path / "home"
    landing = home / "landing" / "billing"
    landing.mkdir(parents=True)
    _tickets(landing / "a.jsonl", ["T1", "T2", "T3"])
    _tickets(landing / "b.jsonl", ["T4", "T5"])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing"])
        first = _run(instance, home)
        assert first["raw_tickets"]["parts_ingested_now"] == 2
        parts_dir = home / "assets" / "cleaned_conversations" / "billing.parts"
        written = {p.name: p.stat().st_mtime_ns for p in parts_dir.iterdir()}

        _tickets(landing / "c.jsonl", ["T6", "T2"])  # one new ticket, one id that a.jsonl already has
        second = _run(instance, home)
        assert (second["raw_tickets"]["parts_ingested_now"], second["raw_tickets"]["parts_carried_over"]) == (1, 2)
        assert second["cleaned_conversations"]["parts_cleaned_now"] == 1
        assert second["cleaned_conversations"]["cleaned_now"] == 1  # only T6: T2 was rejected as a duplicate
        assert second["near_duplicate_index"]["parts_hashed_now"] == 1
        assert {p.name: p.stat().st_mtime_ns for p in parts_dir.iterdir() if p.name in written} == written, \
            "carried parts are neither read into a new file nor rewritten"
        raw = read_asset_frame(home, "raw_tickets", "billing")
        assert raw["ticket_id"].to_list() == ["T1", "T2", "T3", "T4", "T5", "T6"]
        rejected = read_asset_frame(home, "rejected_tickets", "billing")
        assert rejected.select("ticket_id", "reason").rows() == [("T2", "duplicate_ticket_id")]
        assert second["raw_tickets"]["records_in"] == 7

        _tickets(landing / "a.jsonl", ["T1", "T3"])  # an early file changes: it and every later part again
        third = _run(instance, home)
        assert third["raw_tickets"]["parts_ingested_now"] == 3
        assert read_asset_frame(home, "raw_tickets", "billing")["ticket_id"].to_list() == ["T1", "T3", "T4", "T5",
                                                                                            "T6", "T2"]
        # rows cleaned before are reused in the new parts; cleaned now: T3 (its row moved) and T2 (kept now)
        assert third["cleaned_conversations"]["cleaned_now"] == 2
        listed = {p["key"] for p in _manifest(home, "cleaned_conversations")}
        before = set(written) | {p.name for p in parts_dir.iterdir()}
        assert {p.stem for p in parts_dir.iterdir()} <= listed | {n.removesuffix(".parquet") for n in before}

        for file in parts_dir.iterdir():  # an hour later, parts no manifest lists are garbage
            os.utime(file, (file.stat().st_atime, file.stat().st_mtime - 7200))
        fourth = _run(instance, home)  # a second unchanged run: the previous generation's parts are deleted
        assert fourth["raw_tickets"]["parts_carried_over"] == 3
        assert {p.stem for p in parts_dir.iterdir()} == {p["key"] for p in _manifest(home, "cleaned_conversations")}


def test_a_manifest_names_digests_only():
    with pytest.raises(ValueError, match="no digests"):
        PartedFrame.from_manifest({"format": 1, "parts": [{"key": "../../etc/passwd", "rows": 1}]}, lambda k, c: None)
    parted = PartedFrame.from_manifest({"format": 1, "parts": [{"key": "ab" * 32, "rows": 2, "facts": {"kb": 1}}]},
                                       lambda key, columns: pl.DataFrame({"x": [1, 2]}).select(columns or ["x"]))
    assert parted.height == 2 and parted.fact_total("kb") == 1 and parted.collect()["x"].to_list() == [1, 2]


def test_scoring_a_new_part_equals_scoring_everything_again(tmp_path, home, tiny_model_dir):
    """Dedup of a new part against the carried parts (hashes and bands loaded from storage) decides exactly
    what a full rebuild decides: exact and near duplicates of old tickets, KB agreement, every status."""
    from ft_assets.definitions import Settings, all_assets, build_resources
    from ft_resources.io_manager import remove_asset_value
    from tuneline.synthetic import write_landing_zone

    write_landing_zone(home / "landing", ["billing"], 40, seed=3)
    landing = home / "landing" / "billing"
    old = pl.read_csv(landing / "tickets-0001.csv").head(3)
    question = ("Why was I charged twice for the Pro plan this month? I only have one account and one card on "
                "file, and the second payment went out two days after the first one. Please check what happened")
    answer = ("I checked your account and refunded the second charge of the Pro plan; the refund goes back to the "
              "same card and you will see it within five business days. I also turned off the duplicate renewal")
    rows = [{"ticket_id": "N1", "customer_message": question, "agent_response": answer},
            {"ticket_id": "N2", "customer_message": question, "agent_response": answer},
            {"ticket_id": "N3", "customer_message": question, "agent_response": answer + " today."}]
    rows += [{"ticket_id": f"copy-{i}", "customer_message": r["customer_message"],
              "agent_response": r["agent_response"]} for i, r in enumerate(old.iter_rows(named=True))]
    first = old.row(0, named=True)  # an old ticket with one more word: found through the bands loaded from storage
    rows.append({"ticket_id": "near-copy", "customer_message": first["customer_message"],
                 "agent_response": first["agent_response"] + " Thanks"})
    selection = ["raw_tickets", "rejected_tickets", "cleaned_conversations", "near_duplicate_index",
                 "scored_dataset"]
    resources = build_resources(Settings(home=str(home), model_source="local", model=str(tiny_model_dir)))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing"])
        age_files(home / "landing")
        assert dg.materialize(all_assets(), instance=instance, resources=resources, partition_key="billing",
                              selection=selection).success
        (landing / "zz-new.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        age_files(home / "landing")
        result = dg.materialize(all_assets(), instance=instance, resources=resources, partition_key="billing",
                                selection=selection)
        meta = {k: v.value for e in result.get_asset_materialization_events()
                if e.materialization.asset_key.to_user_string() == "scored_dataset"
                for k, v in e.materialization.metadata.items()}
        assert meta["parts_scored_now"] == 1 and meta["parts"] > 1
        incremental = read_asset_frame(home, "scored_dataset", "billing")
        remove_asset_value(home, "scored_dataset", "billing")
        assert dg.materialize(all_assets(), instance=instance, resources=resources, partition_key="billing",
                              selection=["scored_dataset"]).success
        full = read_asset_frame(home, "scored_dataset", "billing")
    assert incremental.equals(full)
    statuses = dict(zip(incremental["ticket_id"].to_list(), incremental["status"].to_list(), strict=True))
    new = incremental.filter(pl.col("source_file") == "zz-new.jsonl")["status"].to_list()
    assert new == ["kept", "exact_duplicate", "near_duplicate"] + ["exact_duplicate"] * 3 + ["near_duplicate"], new
    assert len(statuses) == incremental.height


def test_the_band_index_answers_as_datasketch_does():
    """Near-duplicate decisions through the band index (history loaded in bulk, or inserted one by one) are
    datasketch's MinHashLSH decisions, text for text."""
    import random

    import numpy

    from tuneline.curation import BandIndex, CurationRules, minhash_of, near_duplicate_of, new_lsh

    rules = CurationRules()
    rng = random.Random(7)
    words = [f"w{i}" for i in range(60)]
    base = [[rng.choice(words) for _ in range(40)] for _ in range(30)]
    texts = []
    for _ in range(300):  # variants of a few texts: some near, some far
        text = list(rng.choice(base))
        for _ in range(rng.choice([0, 1, 2, 4, 8, 16])):
            text[rng.randrange(len(text))] = rng.choice(words)
        texts.append(" ".join(text))
    expected = [d is not None for d in near_duplicate_of(texts, rules, new_lsh(rules))]
    assert 0 < sum(expected) < len(texts)
    assert [d is not None for d in near_duplicate_of(texts, rules, BandIndex(rules))] == expected

    history, rest = texts[:200], texts[200:]
    inserted = [t for t, dup in zip(history, expected[:200], strict=True) if not dup]
    signatures = numpy.array([minhash_of(t, rules).hashvalues for t in inserted], dtype=numpy.uint64)
    index, half = BandIndex(rules), len(inserted) // 2
    index.add_history(signatures[:half], list(range(half)))  # in two batches, with a query between them
    index.query(minhash_of(rest[0], rules))
    index.add_history(signatures[half:], list(range(half, len(inserted))))
    found = near_duplicate_of(rest, rules, index, first_key=len(inserted))
    assert [d is not None for d in found] == expected[200:]


def test_a_file_that_changes_between_hashing_and_parsing_is_not_ingested_under_the_old_digest(tmp_path):
    from tuneline.ingest import ChangedWhileIngesting, landing_sources, list_landing_files

    folder = tmp_path / "billing"
    folder.mkdir()
    _tickets(folder / "a.jsonl", ["T1"])
    (source,) = landing_sources(list_landing_files(folder), "billing")
    assert source.read().kept["ticket_id"].to_list() == ["T1"]
    _tickets(folder / "a.jsonl", ["T1", "T2"])  # rewritten after it was hashed
    with pytest.raises(ChangedWhileIngesting):
        source.read()


def test_a_large_file_becomes_several_parts_carried_together_and_new_parts_wait_on_disk(tmp_path):
    import gc

    from tuneline.ingest import ingest_in_parts, landing_sources, list_landing_files
    from tuneline.parts import Spill

    folder = tmp_path / "billing"
    folder.mkdir()
    _tickets(folder / "a.jsonl", [f"T{i}" for i in range(5)])
    spill = Spill(tmp_path / "work")
    kept, rejected = ingest_in_parts(landing_sources(list_landing_files(folder), "billing"), "seed", spill=spill,
                                     part_rows=2)
    assert [p.rows for p in kept.parts] == [2, 2, 1] and all(p.frame is None and p.spilled for p in kept.parts)
    assert kept.collect()["ticket_id"].to_list() == [f"T{i}" for i in range(5)]
    assert kept.fact_total("records_in") == 5 and rejected.height == 0

    def stored(value):  # as the IO manager gives it back: carried parts, read by key
        rows = {p.key: value.frame_of(p) for p in value.parts}
        return PartedFrame([p.carried() for p in value.parts], lambda key, columns: rows[key].select(columns or "*"))

    _tickets(folder / "b.jsonl", ["T9", "T0"])
    again, rejected = ingest_in_parts(landing_sources(list_landing_files(folder), "billing"), "seed", stored(kept),
                                      stored(rejected), part_rows=2)
    assert [p.is_new for p in again.parts] == [False, False, False, True]  # the three chunks carried together
    assert rejected.collect()["ticket_id"].to_list() == ["T0"]  # found among the carried chunks' ids
    directory = spill.directory
    del kept, rejected, again, spill
    gc.collect()
    assert not directory.exists(), "the spill directory goes with the run's value"


def test_a_landing_folder_emptied_by_retention_gives_empty_data_stages(tmp_path, home, tiny_model_dir):
    from ft_assets.definitions import Settings, all_assets, build_resources

    (home / "landing" / "billing").mkdir(parents=True)
    resources = build_resources(Settings(home=str(home), model_source="local", model=str(tiny_model_dir)))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing"])
        result = dg.materialize(all_assets(), instance=instance, resources=resources, partition_key="billing",
                                selection=["raw_tickets", "rejected_tickets", "cleaned_conversations",
                                           "near_duplicate_index", "scored_dataset", "dataset_splits"])
        assert result.success
    assert read_asset_frame(home, "dataset_splits", "billing").height == 0
    assert (home / "exports" / "billing" / "train.jsonl").read_text() == ""
