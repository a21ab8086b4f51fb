"""PII never leaves the cleaning stage, whatever path it came in by: ticket text, metadata columns,
knowledge-base articles and file names. The whole graph runs; then every file written after cleaning
(curated parquet, JSONL/Alpaca/HF exports, adapters, eval reports and generations, MLflow store, the
Dagster event log and compute logs) is searched for the planted values."""

import dagster as dg
import polars as pl

from ft_assets.definitions import Settings, build_resources, product_assets
from ft_assets.partitions import PRODUCTS_PARTITION_NAME
from ft_resources.io_manager import read_asset_frame
from tests.conftest import age_files
from tuneline.synthetic import write_landing_zone

KB_EMAIL, KB_PHONE = "escalations.lead@acme-support.example", "+1 415 555 0199"
META_EMAIL, META_CARD = "meta.owner@example.net", "4111 1111 1111 1111"
FILE_EMAIL = "maria.gonzalez@example.com"
# the quarantine and the raw input keep what arrived, by design: they are upstream of cleaning
UPSTREAM_OF_CLEANING = ("landing", "assets/raw_tickets", "assets/rejected_tickets", "assets/stg_tickets")


def _plant(landing):
    truth = write_landing_zone(landing, ["billing"], 40)
    (landing / "billing" / "faq.md").write_text(
        "# Billing FAQ\n\n## Who handles disputed invoices?\n\n"
        f"Our escalation lead does: write to {KB_EMAIL} or call {KB_PHONE} during office hours.\n\n"
        "## Can I pay by bank transfer?\n\nYes, use the reference printed on your invoice.\n")
    rows = [{"ticket_id": f"m{i}", "customer_message": f"Why was I charged twice on invoice {i}?",
             "agent_response": "The duplicate charge is reversed; you will see it in 3-5 days.",
             "category": f"billing issue reported by {META_EMAIL}", "intent": f"card {META_CARD}"}
            for i in range(6)]
    pl.DataFrame(rows).write_csv(landing / "billing" / f"export-from-{FILE_EMAIL}.csv")
    planted = [KB_EMAIL, KB_PHONE, META_EMAIL, META_CARD, FILE_EMAIL]
    planted += [v for kind in ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD") for v in truth.pii_values[kind]]
    age_files(landing)
    return planted


def test_planted_pii_appears_nowhere_after_cleaning(tmp_path, tiny_model_dir):
    home = tmp_path / "home"
    planted = _plant(home / "landing")
    (tmp_path / "dagster_home").mkdir()
    settings = Settings(home=str(home), model_source="local", model=str(tiny_model_dir), trainer="local")
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing"])
        result = dg.materialize(product_assets(), instance=instance, resources=build_resources(settings),
                                partition_key="billing", raise_on_error=False, run_config={"ops": {
                                    "lora_adapter": {"config": {"max_steps": 2, "gradient_accumulation_steps": 1}},
                                    "eval_report": {"config": {"max_examples": 3, "max_new_tokens": 8}},
                                    "preference_adapter": {"config": {"max_steps": 1}}}})
    materialized = {e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"raw_tickets", "dataset_splits", "lora_adapter", "eval_report"} <= materialized

    raw = read_asset_frame(home, "raw_tickets", "billing")
    assert (raw["source_kind"] == "kb").sum() == 2, "the KB article was ingested"
    assert FILE_EMAIL in "".join(raw["source_file"].to_list()), "the PII-named file was ingested"
    splits = read_asset_frame(home, "dataset_splits", "billing")
    cleaned = read_asset_frame(home, "cleaned_conversations", "billing")
    kb_text = " ".join(t["content"] for conv, kind in zip(cleaned["messages"].to_list(), cleaned["source_kind"],
                                                          strict=True) if kind == "kb" for t in conv)
    assert "[EMAIL]" in kb_text and "[PHONE]" in kb_text, "the KB article travelled on, redacted"
    assert splits.height > 0

    searched = []
    for path in sorted(p for p in tmp_path.rglob("*") if p.is_file()):
        relative = path.relative_to(home).as_posix() if path.is_relative_to(home) else ""
        if relative.startswith(UPSTREAM_OF_CLEANING) or relative.startswith("work/billing/landing"):
            continue
        data = path.read_bytes()
        searched.append(path)
        for value in planted:
            assert value.encode() not in data, f"{value!r} leaked into {path}"
    names = {p.name for p in searched}
    assert {"train.jsonl", "alpaca.json", "billing.parquet", "generations.json", "evaluation_results.json",
            "adapter_model.safetensors"} <= names
    assert any(n.endswith(".db") for n in names), "the Dagster event log / MLflow store were searched"
