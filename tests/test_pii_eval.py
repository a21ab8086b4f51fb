from types import SimpleNamespace as Detection

import pytest

from tests.conftest import PROJECT_ROOT
from tuneline.pii_eval import load_conll_as_records, score_detections

FLAGGED_WNUT_DEV = 43  # README: 41 of 527 (7.8%); +2 for NER ties that fall the other way on another CPU


def test_scoring_counts_tp_fn_fp_and_pii_free_flags():
    records = [
        {"full_text": "Call Ann at 555", "spans": [
            {"entity_type": "PERSON", "start_position": 5, "end_position": 8},
            {"entity_type": "PHONE_NUMBER", "start_position": 12, "end_position": 15}]},
        {"full_text": "nothing here", "spans": []},
        {"full_text": "Norwegian", "spans": [{"entity_type": "NRP", "start_position": 0,
                                               "end_position": 9}]},
    ]
    detections = [
        [Detection(entity_type="PERSON", start=5, end=8), Detection(entity_type="LOCATION", start=0, end=4)],
        [Detection(entity_type="PERSON", start=0, end=7)],
        [Detection(entity_type="PERSON", start=0, end=4)],  # over an untargeted gold span: not counted as FP
    ]
    report = score_detections(records, detections)
    assert (report.by_type["PERSON"].tp, report.by_type["PERSON"].fn, report.by_type["PERSON"].fp) == (1, 0, 1)
    assert (report.by_type["PHONE_NUMBER"].tp, report.by_type["PHONE_NUMBER"].fn) == (0, 1)
    assert report.by_type["LOCATION"].fp == 1
    assert report.untargeted == {"NRP": 1}
    assert report.pii_free_texts == 1 and report.pii_free_flagged == 1
    assert report.overall().recall == pytest.approx(0.5)
    assert report.by_type["PERSON"].f2 == pytest.approx(5 * 0.5 * 1 / (4 * 0.5 + 1))


def test_pii_free_flags_are_counted_once_per_text_under_each_type_that_made_them():
    records = [{"full_text": "Ann and Bob, 555 1234", "spans": []}, {"full_text": "quiet", "spans": []},
               {"full_text": "Eve", "spans": [{"entity_type": "PERSON", "start_position": 0, "end_position": 3}]}]
    detections = [[Detection(entity_type="PERSON", start=0, end=3), Detection(entity_type="PERSON", start=8, end=11),
                   Detection(entity_type="PHONE_NUMBER", start=13, end=21)], [],
                  [Detection(entity_type="PERSON", start=0, end=3)]]  # a text with PII is not counted
    report = score_detections(records, detections)
    assert (report.pii_free_texts, report.pii_free_flagged) == (2, 1)
    assert report.to_dict()["pii_free_flagged_by_type"] == {"PERSON": 1, "PHONE_NUMBER": 1}


def test_masked_recall_counts_any_type_and_half_the_characters():
    """The privacy reviewer's view: a span is found when >= half its characters are masked, by any type."""
    records = [{"full_text": "Mrs Teresa Lopez, 64 years old, works at Acme Corp in Paris", "spans": [
        {"entity_type": "PERSON", "start_position": 4, "end_position": 16},
        {"entity_type": "AGE", "start_position": 18, "end_position": 30},
        {"entity_type": "ORG", "start_position": 41, "end_position": 50},
        {"entity_type": "GPE", "start_position": 54, "end_position": 59}]}]
    detections = [[Detection(entity_type="LOCATION", start=4, end=11),   # 7 of 12 name chars, wrong type
                   Detection(entity_type="PERSON", start=41, end=45),    # 4 of 9 organisation chars
                   Detection(entity_type="LOCATION", start=54, end=59)]]
    report = score_detections(records, detections)
    person, age, org, location = (report.by_type[t] for t in ("PERSON", "AGE", "ORGANIZATION", "LOCATION"))
    assert (person.masked, person.tp) == (1, 0), "masked by a LOCATION hit, but not typed recall"
    assert age.masked == 0 and age.masked_recall == 0.0 and age.fn == 1, "ages are targeted"
    assert org.masked == 0 and org.chars_masked == 4, "4 of 9 characters is less than half"
    assert location.masked == location.tp == 1, "GPE is mapped to LOCATION, not dropped"
    overall = report.overall()
    assert overall.masked_recall == 0.5 and overall.char_share == (7 + 4 + 5) / (12 + 12 + 9 + 5)


def test_pii_eval_scores_what_the_pipeline_masks(redactor):
    """A name found once is masked wherever it appears in the text (the pipeline's one decision per entity),
    and the evaluation counts that, not the detector's raw hits."""
    from tuneline.pii_eval import evaluate_records

    text = "Ms. Ilse Vandewalle wrote again; Vandewalle wants a refund"
    first, second = text.index("Ilse"), text.rindex("Vandewalle")
    records = [{"full_text": text, "spans": [
        {"entity_type": "PERSON", "start_position": first, "end_position": first + len("Ilse Vandewalle")},
        {"entity_type": "PERSON", "start_position": second, "end_position": second + len("Vandewalle")}]}]
    assert "Vandewalle" not in redactor.redact_many([text])[0].text
    assert evaluate_records(redactor, records).by_type["PERSON"].masked == 2


def test_conll_spans_point_at_the_entity_text(tmp_path):
    path = tmp_path / "x.conll"
    path.write_text("I\tO\nmet\tO\nJohn\tB-person\nSmith\tI-person\nin\tO\nRome\tB-location\n\nok\tO\n")
    records = load_conll_as_records(path)
    text = records[0]["full_text"]
    assert [text[s["start_position"]:s["end_position"]] for s in records[0]["spans"]] == ["John Smith", "Rome"]
    assert records[1]["spans"] == []


def test_support_recognizers_find_addresses_order_ids_accounts_and_phones(redactor):
    text = ("Ship it to 6821 1st Ave, Suite 12, San Mateo, NY 75227. Order #A1B2C3D4 on account number 123456789. "
            "Call +44 20 7946 0958 or (96) 627-277. IBAN DE89 3704 0044 0532 0130 00, IP 192.168.10.4.")
    redacted = redactor.redact_many([text])[0]
    for value in ("6821 1st Ave", "A1B2C3D4", "123456789", "7946 0958", "627-277", "DE89", "192.168.10.4"):
        assert value not in redacted.text, (value, redacted.text)
    for placeholder in ("[ADDRESS]", "[ORDER_ID]", "[ACCOUNT_NUMBER]", "[PHONE]", "[IBAN]", "[IP_ADDRESS]"):
        assert placeholder in redacted.text, (placeholder, redacted.text)


def test_lowercase_names_and_common_words(redactor):
    assert "[PERSON]" in redactor.redact_many(["hi, this is crystal minh from the support chat"])[0].text
    for sentence in ("Funny how the update broke my login", "love ya guys, the new app is great", "LMAOO this app"):
        assert redactor.redact_many([sentence])[0].text == sentence


def test_figures_on_the_untuned_presidio_set_hold(redactor, shared_data):
    """The README's held-out column (presidio-research generated_small, never tuned on) must not drop."""
    from tuneline.pii_eval import evaluate_records, load_presidio_json

    report = evaluate_records(redactor, load_presidio_json(shared_data / "presidio" / "generated_small.json"))
    for kind in ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IP_ADDRESS", "US_SSN"):
        assert report.by_type[kind].masked_recall >= 0.95, kind
    overall = report.overall()
    assert overall.char_share >= 0.915, overall.char_share  # README: 0.926 of all gold PII characters masked
    assert report.by_type["PERSON"].masked >= 50, report.by_type["PERSON"]  # README: 51 of 55 names (1 for ties)
    assert report.by_type["ADDRESS"].masked >= 43, report.by_type["ADDRESS"]  # README: 44 of 46 addresses
    assert report.pii_free_flagged == 0


def test_figures_on_a_generated_set_never_tuned_on_hold(redactor):
    """The README's column for a fresh draw of presidio-research's generator (seed 12, `bench.pii_generated`,
    1,500 texts in 17 types, kept in tests/data): the family of set issue 17 was measured on. The
    recognizers were tuned on seed 11's draw and the shared dev sets, never on this one."""
    from tuneline.pii_eval import evaluate_records, load_presidio_json

    generated = PROJECT_ROOT / "tests" / "data" / "pii_generated_seed12.json"
    report = evaluate_records(redactor, load_presidio_json(generated))
    assert report.overall().char_share >= 0.903, report.overall()  # README: 0.910 (a few NER ties either way)
    # README: 0.821, 0.973, 1.000, 0.989, 1.000, 1.000, 0.923, 0.914 (32 of 35), 0.941, 0.833, 0.945
    minimum = {"TITLE": 0.8, "ADDRESS": 0.965, "AGE": 0.98, "PHONE_NUMBER": 0.97, "CREDIT_CARD": 1.0,
               "EMAIL_ADDRESS": 1.0, "PERSON": 0.915, "ZIP_CODE": 0.88, "DOMAIN_NAME": 0.94, "ORGANIZATION": 0.82,
               "LOCATION": 0.935}
    for kind, least in minimum.items():
        assert report.by_type[kind].masked_recall >= least, (kind, report.by_type[kind])
    assert report.pii_free_flagged == 0


def test_false_positive_rate_on_pii_free_social_media(redactor, shared_data):
    from tuneline.pii_eval import evaluate_records

    report = evaluate_records(redactor, load_conll_as_records(shared_data / "wnut17" / "emerging.dev.conll"))
    assert report.pii_free_texts == 527
    assert report.pii_free_flagged <= FLAGGED_WNUT_DEV, report.pii_free_flagged  # the README's figure
    assert report.pii_free_flagged_by["CREDENTIAL"] == 1  # "the password was thepassionatecerealkiller": a secret


def test_support_conversations_without_pii_stay_unflagged(redactor, shared_data):
    """ABCD's customer and agent turns (held out): only the customer's own name, email and phone are gold."""
    from tuneline.pii_eval import abcd_records, evaluate_records

    report = evaluate_records(redactor, abcd_records(shared_data / "abcd" / "abcd_sample.json"))
    assert report.pii_free_texts == 57 and report.pii_free_flagged <= 4, report.pii_free_flagged  # README: 3 (+1)
    assert report.pii_free_flagged_by["USERNAME"] == 1  # "Username: cminh730": personal, though ABCD has no label
    assert report.by_type["EMAIL_ADDRESS"].masked == 2 and report.by_type["PHONE_NUMBER"].masked == 1
