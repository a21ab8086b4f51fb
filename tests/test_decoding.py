"""Beam and MBR decoding: the choice rule, the choice on validation, and that evaluation and serving decode
alike."""

import json

import pytest

from tests.test_training import _chat_file
from tuneline.decoding import GREEDY, Decoding, mbr_choice, recorded_decoding, search_settings
from tuneline.training import TrainConfig, main


def test_mbr_keeps_the_reply_the_others_agree_with():
    typical = "I am sorry for the delay, your refund was issued and arrives within five days"
    candidates = ["Hello there, please send us a photo of the receipt first",  # the greedy reply, an outlier
                  typical,
                  "I am sorry for the delay, your refund was issued and will arrive in five days",
                  "Sorry for the delay: the refund was issued and arrives within five business days",
                  "We have shipped a new router to your address"]
    assert mbr_choice(candidates) == 1


def test_mbr_falls_back_to_the_greedy_reply():
    assert mbr_choice(["greedy reply", "a sample"]) == 0, "two candidates agree equally: the greedy one stays"
    assert mbr_choice(["same words here", "same words here", "same words here"]) == 0, "a tie: the first"


def test_decoding_settings_are_checked():
    with pytest.raises(ValueError, match="decoding method"):
        Decoding(method="nucleus")
    with pytest.raises(ValueError, match="at least one sample"):
        Decoding(method="mbr", samples=0)
    with pytest.raises(ValueError, match="at least two beams"):
        Decoding(method="beam", beams=1)
    assert search_settings(Decoding(method="beam", beams=3)) == {"num_beams": 3, "early_stopping": True,
                                                                 "length_penalty": 1.0}
    assert search_settings(Decoding(method="beam", length_penalty=0.5))["length_penalty"] == 0.5
    assert search_settings(GREEDY) == search_settings(Decoding(method="mbr")) == {}


@pytest.mark.parametrize("tried, refusal", [({"beams": 1}, "at least two beams"), ({"beams": -2}, "at least two beams"),
                                            ({"mbr_samples": -1}, "at least one sample")])
def test_a_decoding_to_try_that_decoding_refuses_is_refused_before_training(tiny_model_dir, tmp_path, tried, refusal):
    from tuneline.training import TrainingConfigError

    chats = _chat_file(tmp_path / "chats.jsonl")
    with pytest.raises(TrainingConfigError, match=refusal):
        main(TrainConfig(model=str(tiny_model_dir), train_file=str(chats), val_file=str(chats),
                         output_dir=str(tmp_path / "adapter"), max_steps=1, keep="best_val_rougeL", **tried))
    assert not (tmp_path / "adapter").exists(), "refused before any training"


def _direct_replies(model, tokenizer, prompts: list[str], max_new_tokens: int, **search) -> list[str]:
    """What transformers' own generate replies, one prompt at a time: the yardstick for the project's paths."""
    replies = []
    for prompt in prompts:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id, **search)
        replies.append(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    return replies


def test_beam_decoding_is_transformers_beam_search_and_greedy_is_reported_beside(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneline.evaluation import decode_replies

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    prompts = ["Where is my refund number 3?", "My router is broken"]
    records = [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": "ok"}]}
               for p in prompts]
    beam = Decoding(method="beam", beams=4)
    greedy, finished = [], []
    replies = decode_replies(model, tokenizer, records, 12, 1, beam, finished, greedy)
    assert replies == _direct_replies(model, tokenizer, prompts, 12, num_beams=4, early_stopping=True)
    assert greedy == _direct_replies(model, tokenizer, prompts, 12)
    assert replies != greedy, "on this model beam search and greedy reply differently: the test can tell them apart"
    assert len(finished) == len(prompts)
    assert decode_replies(model, tokenizer, records, 12, 1, beam) == replies, "without greedy asked for: one pass"


def test_an_adapter_without_a_recorded_decoding_decodes_greedily(tmp_path):
    assert recorded_decoding(None) == GREEDY and recorded_decoding(tmp_path) == GREEDY
    (tmp_path / "metadata.json").write_text(json.dumps({"decoding": {"method": "mbr", "samples": 3}}))
    assert recorded_decoding(tmp_path) == Decoding(method="mbr", samples=3)


@pytest.fixture(scope="module")
def mbr_adapter(tiny_model_dir, tmp_path_factory):
    """A tiny adapter trained with the decoding choice on; its metadata then forced to MBR (the choice itself
    is asserted separately), so evaluation and serving are seen decoding by MBR."""
    tmp = tmp_path_factory.mktemp("mbr")
    chats = _chat_file(tmp / "chats.jsonl")
    summary = main(TrainConfig(model=str(tiny_model_dir), train_file=str(chats), val_file=str(chats),
                               output_dir=str(tmp / "adapter"), max_steps=2, gradient_accumulation_steps=1,
                               learning_rate=5e-2, keep="best_val_rougeL", candidate_every_examples=4,
                               mbr_samples=3, beams=2))
    return {"summary": summary, "dir": tmp / "adapter", "chats": chats}


def test_the_decoding_that_replies_better_on_validation_is_recorded(mbr_adapter):
    summary = mbr_adapter["summary"]
    metadata = json.loads((mbr_adapter["dir"] / "metadata.json").read_text())
    assert summary["val_rougeL_greedy"] == summary["val_rougeL_after"]
    tried = ["greedy", "beam", "mbr"]  # in the order ties are broken
    best = max(tried, key=lambda method: (summary[f"val_rougeL_{method}"], -tried.index(method)))
    assert metadata["decoding"]["method"] == summary["decoding"]["method"] == best
    assert metadata["decoding"]["samples"] == 3 or best != "mbr"
    assert metadata["decoding"]["beams"] == 2 or best != "beam"


def test_the_decoding_is_chosen_when_there_is_one_candidate_only(tiny_model_dir, tmp_path):
    """No starting adapter and no snapshot: nothing to choose between for the weights, but MBR against greedy
    is still a choice to make and record."""
    chats = _chat_file(tmp_path / "chats.jsonl")
    summary = main(TrainConfig(model=str(tiny_model_dir), train_file=str(chats), val_file=str(chats),
                               output_dir=str(tmp_path / "adapter"), max_steps=1, gradient_accumulation_steps=1,
                               keep="best_val_rougeL", mbr_samples=2))
    metadata = json.loads((tmp_path / "adapter" / "metadata.json").read_text())
    assert summary["kept_examples_seen"] == 4 and list(summary["val_rougeL"]) == ["4"]
    assert metadata["decoding"]["method"] in ("greedy", "mbr") and "val_rougeL_mbr" in summary


def test_evaluation_decodes_as_the_adapter_records(mbr_adapter, tiny_model_dir):
    from tuneline.evaluation import EvalSettings, evaluate_adapter

    records = [json.loads(line) for line in mbr_adapter["chats"].read_text().splitlines()][:3]
    mbr = Decoding(method="mbr", samples=2)
    report = evaluate_adapter(str(tiny_model_dir), str(mbr_adapter["dir"]), records,
                              EvalSettings(max_new_tokens=6), decoding=mbr)
    assert report["tuned"]["decoding"] == mbr.to_dict() and report["base"]["decoding"] == GREEDY.to_dict()
    assert "greedy_rougeL" in report["tuned"] and "greedy_rougeL" not in report["base"]
    assert "decoding" not in report["delta"]
    again = evaluate_adapter(str(tiny_model_dir), str(mbr_adapter["dir"]), records,
                             EvalSettings(max_new_tokens=6), decoding=mbr)
    assert [s["tuned"] for s in again["all_samples"]] == [s["tuned"] for s in report["all_samples"]], \
        "the sampler is seeded: the same prompts get the same replies"


def test_serving_decodes_as_the_adapter_records(mbr_adapter, tiny_model_dir, tmp_path, monkeypatch):
    import shutil

    import tuneline.decoding
    from tuneline.serving import AdapterServer

    mbr_dir = tmp_path / "mbr-adapter"
    shutil.copytree(mbr_adapter["dir"], mbr_dir)
    metadata = json.loads((mbr_dir / "metadata.json").read_text())
    (mbr_dir / "metadata.json").write_text(json.dumps({**metadata, "decoding": {"method": "mbr", "samples": 4}}))
    greedy_dir = tmp_path / "greedy-adapter"
    shutil.copytree(mbr_adapter["dir"], greedy_dir)
    (greedy_dir / "metadata.json").write_text(json.dumps({**metadata, "decoding": None}))
    beam_dir = tmp_path / "beam-adapter"
    shutil.copytree(mbr_adapter["dir"], beam_dir)
    (beam_dir / "metadata.json").write_text(json.dumps({**metadata, "decoding": {"method": "beam", "beams": 3}}))
    sampled = []
    real_sample = tuneline.decoding.sample_replies
    monkeypatch.setattr(tuneline.decoding, "sample_replies",
                        lambda *a, **k: sampled.append(a[3]) or real_sample(*a, **k))
    server = AdapterServer(str(tiny_model_dir), {"billing": str(mbr_dir), "shipping": str(greedy_dir),
                                                 "returns": str(beam_dir)})
    searched = []
    real_generate = server.model.generate
    server.model.generate = lambda *a, **k: searched.append(k.get("num_beams", 1)) or real_generate(*a, **k)
    messages = [{"role": "user", "content": "Where is my refund number 3?"}]
    server.complete("shipping", messages, max_new_tokens=8)
    assert sampled == [] and searched == [1], "an adapter with no recorded decoding is served greedily"
    server.complete("returns", messages, max_new_tokens=8)
    assert sampled == [] and searched == [1, 3], "the beam adapter is served by beam search, its own beam count"
    first = server.complete("billing", messages, max_new_tokens=8)
    assert sampled == [8], "the MBR adapter samples its candidates with the request's budget"
    assert server.complete("billing", messages, max_new_tokens=8) == first, "seeded: the same reply again"
    _, _, completion_tokens, finish = first
    assert 0 < completion_tokens <= 8 and (finish == "stop" or completion_tokens == 8)
