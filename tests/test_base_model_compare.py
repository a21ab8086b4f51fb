import json

import pytest

ROW = {"train": 10, "test": 2, "val_rougeL_greedy": 0.3, "val_rougeL_beam": 0.3, "decoding": "greedy",
       "rougeL_base": 0.1, "rougeL_tuned_greedy": 0.5, "rougeL_tuned": 0.5, "delta": 0.4, "ci": "[+0.1, +0.6]",
       "eot_count": 2, "gate": True, "train_seconds": 1, "val_choice_seconds": 1, "eval_seconds": 1}


def _home(root, replies, references=("reset your password now", "refunds take five days")):
    (root / "reports" / "account").mkdir(parents=True)
    samples = [{"prompt": f"ticket {i}", "reference": ref, "tuned": reply, "base": ""}
               for i, (ref, reply) in enumerate(zip(references, replies, strict=True))]
    (root / "reports" / "account" / "generations.json").write_text(json.dumps(samples))
    (root / "bitext_quality.json").write_text(json.dumps({"evaluate": {"rows": [{"product": "account", **ROW}]}}))
    return root


def test_two_base_models_are_compared_ticket_by_ticket(tmp_path):
    """The pooled interval pairs each ticket's served replies of the two homes, second minus first: both answer the
    first ticket exactly, only the second home the other one, so the second is ahead by half a point per ticket."""
    from bench.base_model_compare import compare

    first = _home(tmp_path / "a", ["reset your password now", "no"])
    second = _home(tmp_path / "b", ["reset your password now", "refunds take five days"])
    text = compare(first, "small", second, "large")
    assert "| account | small |" in text and "| account | large |" in text
    assert "All 2 test tickets pooled, large minus small, paired bootstrap: +0.500" in text


def test_homes_with_other_splits_are_refused(tmp_path):
    from bench.base_model_compare import compare

    first = _home(tmp_path / "a", ["a", "b"])
    second = _home(tmp_path / "b", ["a", "b"], references=("another ticket", "refunds take five days"))
    with pytest.raises(SystemExit, match="same pseudonym key"):
        compare(first, "small", second, "large")


def test_a_failed_run_is_not_compared(tmp_path):
    """`evaluate` records a failed product run without scores; the comparison leaves that product out."""
    from bench.base_model_compare import compare

    first = _home(tmp_path / "a", ["reset your password now", "no"])
    results = json.loads((first / "bitext_quality.json").read_text())
    results["evaluate"]["rows"].append({"product": "order", "run_ok": False, "failed_steps": ["lora_adapter"]})
    (first / "bitext_quality.json").write_text(json.dumps(results))
    second = _home(tmp_path / "b", ["reset your password now", "refunds take five days"])
    (second / "bitext_quality.json").write_text(json.dumps(results | {"evaluate": {"rows": [
        {"product": "account", **ROW}, {"product": "order", **ROW}]}}))
    text = compare(first, "small", second, "large")
    assert "| order |" not in text and "Products in both homes: 1;" in text


def test_a_product_name_from_the_results_file_never_leaves_the_home(tmp_path):
    from bench.base_model_compare import served_scores
    from tuneline.names import InvalidName

    with pytest.raises(InvalidName):
        served_scores(_home(tmp_path / "a", ["a", "b"]), "../../etc")
