"""The offline extractive reader: the best-supported sentence of the retrieved passages.

No extractive QA model ships on PyPI, so without `--qa-model` the answer is the
sentence that best supports the question: each sentence of the packed passages
is scored with `RelevanceScorer` (embedding similarity to the question mixed
with IDF-weighted keyword overlap), plus a small share of its passage's own
relevance so a sentence in a strong passage wins a tie. A sentence is scored in
its context, after its document's title and section headings, as its chunk was
indexed: 「固有表現の先頭トークンに `B-種類`…を付けます。」 under 「IOB2 方式の基本」
answers 「IOB2 タグの B は何を表しますか」 though it names neither IOB2 nor タグ
(README "/ask": measured with `python benchmarks/answering.py`). The
answer keeps exact offsets into the original document, like a QA model's span.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from indexer.text.chunking import embedding_text
from indexer.text.normalize import normalize
from indexer.text.sentences import split_sentences
from server.answering.passages import Extraction, Passage
from server.answering.relevance import QuestionProfile, RelevanceScorer

PASSAGE_SHARE = 0.15  # weight of the passage's relevance in a sentence's score
MAX_EMBEDDED = 8      # sentences embedded per question: the best by keywords (embedding is the cost)
_SKIPPED = re.compile(r"\s*(?:#|```|\||<!--)")  # headings, code fences, table rows, comments
_WORDY = re.compile(r"\w")
_FENCE = re.compile(r"^[ \t]*```", re.M)
MIN_WORD_CHARS = 4


class SentenceReader:
    """Answers with the sentence that best supports the question."""

    name = "sentence"

    def __init__(self, scorer: RelevanceScorer, passage_share: float = PASSAGE_SHARE,
                 max_embedded: int = MAX_EMBEDDED) -> None:
        self.scorer = scorer
        self.passage_share = passage_share
        self.max_embedded = max_embedded

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.scorer.searcher.embedder.count_tokens(texts)

    def read(self, profile: QuestionProfile, passages: Sequence[Passage]) -> Extraction | None:
        candidates = sentence_candidates(passages)
        if not candidates:
            return None
        texts = [in_context(*c) for c in candidates]
        if len(candidates) > self.max_embedded and profile.vector is not None:
            keyword = self.scorer.score(profile, texts, keyword_only=True)
            keep = sorted(sorted(range(len(candidates)), key=lambda i: (-keyword[i], i))[: self.max_embedded])
            candidates, texts = [candidates[i] for i in keep], [texts[i] for i in keep]
        scores = self.scorer.score(profile, texts)
        combined = [(1 - self.passage_share) * float(score) + self.passage_share * passage.relevance
                    for score, (passage, _, _) in zip(scores, candidates, strict=True)]
        best = max(range(len(candidates)), key=combined.__getitem__)
        passage, start, end = candidates[best]
        doc_start, doc_end = passage.document_span(start, end)
        return Extraction(passage=passage, start=doc_start, end=doc_end,
                          text=passage.original_text(doc_start, doc_end), score=round(combined[best], 6))


def in_context(passage: Passage, start: int, end: int) -> str:
    """A sentence of the passage (normalized offsets) after its document's title and section headings."""
    headings = dict.fromkeys(normalize(h).text.strip() for h in (passage.hit.title, *passage.hit.section))
    return embedding_text(" / ".join(h for h in headings if h), passage.normalized.text[start:end])


def sentence_candidates(passages: Sequence[Passage]) -> list[tuple[Passage, int, int]]:
    """Answer-worthy sentences as (passage, start, end) in normalized passage text, each span once.

    Headings (the document title and the chunk's section path), code blocks, table rows and
    fragments without words are not answers.
    """
    seen: set[tuple[str, int, int]] = set()
    out = []
    for passage in passages:
        text = passage.normalized.text
        headings = {normalize(h).text.strip() for h in (passage.hit.title, *passage.hit.section)}
        for start, end in split_sentences(text):
            start = _past_heading(text, start, end, headings)
            sentence = text[start:end]
            if (_SKIPPED.match(sentence) or len(_WORDY.findall(sentence)) < MIN_WORD_CHARS
                    or sentence.strip() in headings):
                continue
            key = (passage.hit.doc_id, *passage.document_span(start, end))
            if any(a < key[2] and key[1] < b for a, b in passage.code):
                continue
            if key not in seen:  # overlapping chunks of one document share sentences
                seen.add(key)
                out.append((passage, start, end))
    return out


def _past_heading(text: str, start: int, end: int, headings: set[str]) -> int:
    """Where a sentence starts once a heading line leading it is left out: a chunk that starts after a
    heading's `#` begins with the heading's bare text, which the next line then runs on from."""
    newline = text.find("\n", start, end)
    if newline == -1 or text[start:newline].strip() not in headings:
        return start
    while newline < end and text[newline].isspace():
        newline += 1
    return newline


def code_blocks(document: str) -> tuple[tuple[int, int], ...]:
    """Spans of a document's fenced code blocks (an unclosed fence runs to the end).

    Found in the whole document, where fences pair up, because a chunk may begin inside a block.
    """
    fences = [m.start() for m in _FENCE.finditer(document)]
    if len(fences) % 2:
        fences.append(len(document))
    return tuple(zip(fences[0::2], fences[1::2], strict=True))


def first_sentence(passages: Sequence[Passage]) -> Extraction | None:
    """The naive baseline: the first sentence of the top passage."""
    candidates = sentence_candidates(passages[:1])
    if not candidates:
        return None
    passage, start, end = candidates[0]
    doc_start, doc_end = passage.document_span(start, end)
    return Extraction(passage=passage, start=doc_start, end=doc_end,
                      text=passage.original_text(doc_start, doc_end), score=0.0)
