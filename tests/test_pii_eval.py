from types import SimpleNamespace as Detection

import pytest

from tuneline.pii_eval import load_conll_as_records, score_detections


def test_scoring_counts_tp_fn_fp_and_pii_free_flags():
    records = [
        {"full_text": "Call Ann at 555", "spans": [
            {"entity_type": "PERSON", "start_position": 5, "end_position": 8},
            {"entity_type": "PHONE_NUMBER", "start_position": 12, "end_position": 15}]},
        {"full_text": "nothing here", "spans": []},
        {"full_text": "Acme Corp", "spans": [{"entity_type": "ORGANIZATION", "start_position": 0,
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
    assert report.untargeted == {"ORGANIZATION": 1}
    assert report.pii_free_texts == 1 and report.pii_free_flagged == 1
    assert report.overall().recall == pytest.approx(0.5)
    assert report.by_type["PERSON"].f2 == pytest.approx(5 * 0.5 * 1 / (4 * 0.5 + 1))


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


def test_recall_targets_on_presidio_research_sample(redactor, shared_data):
    from tuneline.pii_eval import evaluate_records, load_presidio_json

    report = evaluate_records(redactor, load_presidio_json(shared_data / "presidio" / "generated_small.json"))
    for kind in ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IP_ADDRESS", "US_SSN"):
        assert report.by_type[kind].recall >= 0.95, kind
    assert report.by_type["PERSON"].recall >= 47 / 55  # the README's figure (0.855): 47 of 55 names
    assert report.pii_free_flagged == 0


def test_false_positive_rate_on_pii_free_social_media(redactor, shared_data):
    from tuneline.pii_eval import evaluate_records

    report = evaluate_records(redactor, load_conll_as_records(shared_data / "wnut17" / "emerging.dev.conll"))
    assert report.pii_free_flagged <= 18 and report.pii_free_texts == 381  # the README's 4.7% (18 of 381)
