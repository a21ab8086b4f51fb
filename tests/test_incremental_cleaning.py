"""New tickets cost in proportion to the new tickets: cleaned_conversations reuses what it already cleaned
under the same rules (content-addressed by the raw row and a digest of every rule), gives exactly what a
full rebuild gives, and cleans everything again when a rule changes."""

import json
import shutil

import dagster as dg
import polars as pl

from ft_assets.definitions import Settings, all_assets, build_resources
from ft_assets.partitions import PRODUCTS_PARTITION_NAME
from ft_resources.io_manager import remove_asset_value
from tests.conftest import age_files
from tuneline.synthetic import write_landing_zone


def _clean(instance, resources, config=None):
    result = dg.materialize(all_assets(), instance=instance, resources=resources, partition_key="billing",
                            selection=["raw_tickets", "rejected_tickets", "cleaned_conversations",
                                       "near_duplicate_index"],
                            run_config={"ops": {"cleaned_conversations": {"config": config or {}}}})
    assert result.success
    event = next(e for e in result.get_asset_materialization_events()
                 if e.materialization.asset_key.to_user_string() == "cleaned_conversations")
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    return (result.output_for_node("cleaned_conversations").collect(), meta["cleaned_now"],
            meta["reused_from_previous"], result.output_for_node("near_duplicate_index").collect())


def test_only_new_tickets_are_cleaned_and_the_result_equals_a_full_rebuild(home, tiny_model_dir, tmp_path):
    write_landing_zone(tmp_path / "first", ["billing"], 40, seed=1)
    landing = home / "landing" / "billing"
    landing.mkdir(parents=True)
    for path in (tmp_path / "first" / "billing").iterdir():
        shutil.copy(path, landing / f"a-{path.name}")
    age_files(home / "landing")
    resources = build_resources(Settings(home=str(home), model_source="local", model=str(tiny_model_dir)))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing"])
        first, cleaned_now, reused, _ = _clean(instance, resources)
        assert (cleaned_now, reused) == (first.height, 0)

        (landing / "b-new.jsonl").write_text("".join(json.dumps({  # new tickets arrive in a new file
            "ticket_id": f"NEW-{i}", "customer_message": f"Hi, I am Rosa Delgado, invoice {i} shows a double charge.",
            "agent_response": "Sorry Rosa, I refunded the duplicate payment today."}) + "\n" for i in range(6)))
        age_files(home / "landing")
        second, cleaned_now, reused, index = _clean(instance, resources)
        assert reused == first.height and cleaned_now == second.height - first.height > 0
        assert second.head(first.height).equals(first)  # what was cleaned before is kept as it was

        for asset in ("cleaned_conversations", "near_duplicate_index"):  # a full rebuild
            remove_asset_value(home, asset, "billing")
        rebuilt, cleaned_now, reused, rebuilt_index = _clean(instance, resources)
        assert reused == 0 and rebuilt.equals(second)  # incremental == full, row for row, in order
        assert rebuilt_index.equals(index)  # the signatures too

        changed, cleaned_now, reused, _ = _clean(instance, resources, {"company_names": ["Acme Cloud"]})
        assert reused == 0 and cleaned_now == changed.height  # a rule change cleans everything again
    assert pl.Series(second["raw_digest"]).n_unique() == second.height


def _split(instance, resources, pii_config=None):
    result = dg.materialize(all_assets(), instance=instance, resources=resources, partition_key="billing",
                            selection=["raw_tickets", "rejected_tickets", "cleaned_conversations",
                                       "near_duplicate_index", "scored_dataset", "dataset_splits"])
    assert result.success
    check = next(c for c in result.get_asset_check_evaluations() if c.check_name == "no_pii_in_exports")
    meta = {k: v.value for k, v in check.metadata.items()}
    return result.output_for_node("dataset_splits").collect(), meta["texts_scanned"], meta["texts_known_clean"]


def test_splits_measure_and_rescan_only_what_changed_and_equal_a_full_rebuild(home, tiny_model_dir, tmp_path):
    """Token lengths and the exports' PII re-scan are reused by content (the example's messages, the exported
    string) under the same tokenizer and PII rules; new tickets are measured and scanned; the result is the
    one a full rebuild gives; other PII rules scan everything again."""
    write_landing_zone(home / "landing", ["billing"], 40, seed=1)
    age_files(home / "landing")
    resources = build_resources(Settings(home=str(home), model_source="local", model=str(tiny_model_dir)))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing"])
        first, scanned, known = _split(instance, resources)
        assert scanned > 0 and known == 0
        assert first["pii_scanned_with"].n_unique() == 1 and first["pii_scanned_with"].null_count() == 0

        again, scanned, known = _split(instance, resources)
        assert scanned == 0 and known > 0  # nothing new: nothing scanned twice
        assert again.equals(first)

        (home / "landing" / "billing" / "b-new.jsonl").write_text("".join(json.dumps({
            "ticket_id": f"NEW-{i}", "customer_message": f"My parcel {i} never arrived and the tracking page is empty.",
            "agent_response": f"I reshipped parcel {i} with express delivery; it arrives on Friday."}) + "\n"
            for i in range(6)))
        age_files(home / "landing")
        second, scanned, known = _split(instance, resources)
        assert 0 < scanned < known  # only the new tickets' strings are scanned
        assert second.height > first.height

        remove_asset_value(home, "dataset_splits", "billing")  # a full rebuild
        rebuilt, scanned, known = _split(instance, resources)
        assert known == 0 and rebuilt.equals(second)

        pii = resources["pii"]
        other_rules = {**resources, "pii": type(pii)(**{**pii.model_dump(), "score_threshold": 0.5})}
        _, scanned, known = _split(instance, other_rules)
        assert known == 0 and scanned > 0  # other PII rules: every string is scanned again
