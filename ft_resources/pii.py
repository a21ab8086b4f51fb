"""The PII engine as a resource: built once per process, offline spaCy model."""

from __future__ import annotations

import functools

import dagster as dg

from tuneline.pii import DEFAULT_ALLOW_LIST, DEFAULT_SPACY_MODEL, PLACEHOLDERS, PiiRedactor


class PiiEngine(dg.ConfigurableResource):
    """presidio analyzer + anonymizer; typed placeholders such as [EMAIL], [PHONE], [PERSON]."""

    entities: list[str] = list(PLACEHOLDERS)
    spacy_model: str = DEFAULT_SPACY_MODEL
    score_threshold: float = 0.35
    batch_size: int = 32
    allow_list: list[str] = list(DEFAULT_ALLOW_LIST)
    n_process: int = 1  # processes analysing text; >1 forks n_process - 1 workers that share the loaded model
    # the learned second opinion on name-like detections (tuneline.pii_name_filter); off: NER and rules alone
    name_filter: bool = True
    # key of the keyed hash that replaces ticket/thread ids after raw_tickets (dg.EnvVar TUNELINE_PSEUDONYM_KEY);
    # empty: a random per-installation key kept owner-only under the storage root
    pseudonym_key: str = ""

    def redactor(self) -> PiiRedactor:
        return cached_redactor(tuple(self.entities), self.spacy_model, self.score_threshold, self.batch_size,
                               tuple(self.allow_list), self.n_process, self.name_filter)


def pseudonym_key(pii: PiiEngine, storage) -> bytes:
    """The key of the keyed hash for ids: the configured one, else the storage root's own."""
    return pii.pseudonym_key.encode() if pii.pseudonym_key else storage.installation_key("pseudonym")


@functools.lru_cache(maxsize=4)
def cached_redactor(entities: tuple[str, ...], spacy_model: str, score_threshold: float, batch_size: int,
                    allow_list: tuple[str, ...], n_process: int = 1, name_filter: bool = True) -> PiiRedactor:
    """One engine per configuration and process: loading spaCy takes seconds."""
    return PiiRedactor(entities=entities, spacy_model=spacy_model, score_threshold=score_threshold,
                       batch_size=batch_size, allow_list=allow_list, n_process=n_process, name_filter=name_filter)
