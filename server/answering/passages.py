"""A retrieved passage as a reader sees it: numbered, counted, scored, mappable to its document."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from indexer.search.searcher import Hit
from indexer.text.normalize import NormalizedText, normalize


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk shown to a reader, numbered as the prompt numbers it (`[n]`)."""

    n: int
    hit: Hit
    tokens: int        # length in the reader's own tokens
    relevance: float   # question–passage relevance, see `relevance.py`
    code: tuple[tuple[int, int], ...] = ()  # fenced code blocks of its document, in document offsets

    @cached_property
    def normalized(self) -> NormalizedText:
        """The passage text as readers read it (NFKC), with a map back to `hit.text`."""
        return normalize(self.hit.text)

    def document_span(self, start: int, end: int) -> tuple[int, int]:
        """A span of the normalized passage text as offsets into the original document."""
        local_start, local_end = self.normalized.to_original(start, end)
        return self.hit.start + local_start, self.hit.start + local_end

    def original_text(self, doc_start: int, doc_end: int) -> str:
        """The document's original text between two document offsets inside this passage."""
        return self.hit.text[doc_start - self.hit.start : doc_end - self.hit.start]


@dataclass(frozen=True)
class Extraction:
    """An answer copied from a passage: `text` is the document's original text[start:end]."""

    passage: Passage
    start: int          # offsets into the original document text
    end: int
    text: str
    score: float        # the reader's confidence, in [0, 1]
    windows: int = 1    # how many overlapping windows proposed this same span (QA reader)
