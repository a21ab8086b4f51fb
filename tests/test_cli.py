import json
from pathlib import Path

from tuneline.cli import build_parser, main, run_demo


def test_demo_code_path_on_a_reduced_config(tmp_path, monkeypatch, tiny_model_dir, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("TUNELINE_PSEUDONYM_KEY", "tuneline-demo-test-key")  # fixed splits: 1 test example, not 0
    for name in ("TUNELINE_HOME", "TUNELINE_MODEL_SOURCE", "TUNELINE_MODEL"):  # run_demo sets them: undone after
        monkeypatch.setenv(name, "")
    rows = run_demo(tmp_path / "home", ["account"], tickets_per_product=40, max_steps=2, eval_examples=3,
                    max_new_tokens=6, model_source="local", model=str(tiny_model_dir))
    assert [r["product"] for r in rows] == ["account"]
    row = rows[0]
    assert row["tickets_in"] > row["rejected"] > 0
    assert row["pii_replaced"] > 0
    assert row["train"] > 0 and row["test"] > 0
    # the shared adapter serves a product with fewer training examples than an adapter of its own needs (32);
    # 40 tickets land near that line, and the keyed split decides on which side
    assert row["source"] == "shared" if row["train"] < 32 else row["source"] in ("shared", "product")
    adapter = tmp_path / "home" / ("shared_adapter" if row["source"] == "shared" else "adapters/account")
    assert row["adapter"].startswith(str(adapter)) and (Path(row["adapter"]) / "adapter_model.safetensors").is_file()
    # runs persist in DAGSTER_HOME so `make dev` shows them
    import dagster as dg

    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        runs = instance.get_runs()
        assert runs and all(r.tags.get("tuneline/trigger") == "demo" for r in runs)
        # launched as named jobs through workspace.yaml's code location: the UI's Overview timeline lists them
        assert {r.job_name for r in runs} == {"prepare_product_data", "train_shared_adapter", "train_product",
                                              "compare_evaluations"}
        assert all(r.remote_job_origin.location_name == "ft_assets.definitions:defs" for r in runs)
        assert "account" in instance.get_dynamic_partitions("products")


def test_help_explains_each_command(capsys):
    parser = build_parser()
    text = parser.format_help()
    for command in ("demo", "generate", "train", "eval"):
        assert command in text


def test_generate_then_eval_base_only(tmp_path, tiny_model_dir, capsys):
    assert main(["generate", "--landing", str(tmp_path / "landing"), "--products", "billing",
                 "--tickets", "20"]) == 0
    assert (tmp_path / "landing" / "billing" / "tickets-0001.csv").is_file()
    data = tmp_path / "test.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "system", "content": "s"},
                                             {"role": "user", "content": "Where is my parcel?"},
                                             {"role": "assistant", "content": "It arrives Monday."}]}) + "\n")
    out = tmp_path / "report.json"
    assert main(["eval", "--base-only", "--base-model", str(tiny_model_dir), "--data", str(data),
                 "--max-new-tokens", "4", "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["examples"] == 1 and "tuned" not in report and report["base"]["perplexity"] > 1
    assert "perplexity" in capsys.readouterr().out


def test_eval_requires_exactly_one_of_adapter_or_base_only(tmp_path, capsys):
    assert main(["eval", "--data", str(tmp_path / "x.jsonl")]) == 2
