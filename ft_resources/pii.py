"""The PII engine as a resource: built once per process, offline spaCy model."""

from __future__ import annotations

import dagster as dg
from pydantic import PrivateAttr

from tuneline.pii import DEFAULT_SPACY_MODEL, PiiRedactor


class PiiEngine(dg.ConfigurableResource):
    """presidio analyzer + anonymizer; typed placeholders such as [EMAIL], [PHONE], [PERSON]."""

    spacy_model: str = DEFAULT_SPACY_MODEL
    score_threshold: float = 0.35
    batch_size: int = 32
    _redactor: PiiRedactor | None = PrivateAttr(default=None)

    def redactor(self) -> PiiRedactor:
        if self._redactor is None:
            self._redactor = PiiRedactor(spacy_model=self.spacy_model, score_threshold=self.score_threshold,
                                         batch_size=self.batch_size)
        return self._redactor
