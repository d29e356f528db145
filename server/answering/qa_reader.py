"""Extractive question answering with any transformers question-answering model.

Each passage is read in overlapping windows (`max_length` tokens, `stride`
tokens shared between neighbours), so a long passage is never cut off
silently. In each window the start and end logits are turned into
probabilities over the window's context tokens plus the no-answer token
([CLS]); a span's score is p(start)·p(end), and only spans whose end does not
come before their start and that are at most `max_answer_tokens` long are kept.
The same document span proposed by several windows (or by overlapping chunks)
is merged into one, keeping its best score. The answer is refused when its
score is below `no_answer_threshold` or below the best window's no-answer score.
Token offsets point into the normalized passage and are mapped back through
the normalization's offset map to the original document text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from indexer.embed.locations import locate_model, reach_hub
from server.answering.passages import Extraction, Passage
from server.answering.relevance import QuestionProfile

MIN_SPAN_SCORE = 1e-6  # spans less likely than this are not worth keeping


@dataclass(frozen=True)
class QASettings:
    max_length: int = 384            # tokens per window, question included
    stride: int = 128                # tokens shared by neighbouring windows
    max_answer_tokens: int = 30
    top_n: int = 20                  # best starts and ends tried per window
    no_answer_threshold: float = 0.1
    max_question_tokens: int = 64
    batch_size: int = 8


@dataclass(frozen=True)
class QAReading:
    """Everything a read found: merged spans best first, and the no-answer score."""

    spans: list[Extraction]
    no_answer: float
    windows: int


class QAReader:
    def __init__(self, model: Any, tokenizer: Any, name: str, settings: QASettings | None = None) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(f"QA model {name!r} needs a fast tokenizer (for character offsets)")
        self.model, self.tokenizer, self.model_name = model.eval(), tokenizer, name
        self.settings = settings or QASettings()
        limit = min(self.settings.max_length, int(getattr(model.config, "max_position_embeddings", 512)))
        self.max_length = min(limit, int(tokenizer.model_max_length or limit))
        self.name = f"extractive-qa:{name}"

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def read(self, profile: QuestionProfile, passages: Sequence[Passage]) -> Extraction | None:
        """The best span, or None when the passages do not answer the question."""
        reading = self.read_all(profile.text, passages)
        if not reading.spans:
            return None
        best = reading.spans[0]
        if best.score < self.settings.no_answer_threshold or best.score <= reading.no_answer:
            return None
        return best

    def read_all(self, question: str, passages: Sequence[Passage]) -> QAReading:
        if not passages:
            return QAReading(spans=[], no_answer=1.0, windows=0)
        question = self._short_question(question)
        encoded = self._encode(question, [p.normalized.text for p in passages])
        starts, ends = self._logits(encoded)
        merged: dict[tuple[str, int, int], Extraction] = {}
        no_answer = 1.0
        for window in range(len(starts)):
            passage = passages[int(encoded["overflow_to_sample_mapping"][window])]
            found, null = self._window_spans(encoded, window, starts[window], ends[window], passage)
            no_answer = min(no_answer, null)
            for span in found:
                key = (passage.hit.doc_id, span.start, span.end)
                old = merged.get(key)
                if old is None:
                    merged[key] = span
                else:
                    best = span if span.score > old.score else old
                    merged[key] = Extraction(best.passage, best.start, best.end, best.text, best.score,
                                             windows=old.windows + 1)
        spans = sorted(merged.values(), key=lambda s: (-s.score, s.passage.n, s.start))
        return QAReading(spans=spans, no_answer=no_answer, windows=len(starts))

    def _short_question(self, question: str) -> str:
        encoded = self.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoded["offset_mapping"]
        limit = min(self.settings.max_question_tokens, self.max_length // 3)
        return question if len(offsets) <= limit else question[: offsets[limit - 1][1]]

    def _encode(self, question: str, contexts: list[str]) -> Any:
        question_tokens = len(self.tokenizer(question, add_special_tokens=False)["input_ids"])
        room = self.max_length - question_tokens - self.tokenizer.num_special_tokens_to_add(pair=True)
        return self.tokenizer(
            [question] * len(contexts), contexts, truncation="only_second", max_length=self.max_length,
            stride=max(0, min(self.settings.stride, room // 2)), return_overflowing_tokens=True,
            return_offsets_mapping=True, padding=True, return_tensors="pt",
        )

    def _logits(self, encoded: Any) -> tuple[np.ndarray, np.ndarray]:
        import torch

        names = [n for n in self.tokenizer.model_input_names if n in encoded]
        size = self.settings.batch_size
        starts, ends = [], []
        with torch.inference_mode():
            for offset in range(0, len(encoded["input_ids"]), size):
                output = self.model(**{n: encoded[n][offset : offset + size] for n in names})
                starts.append(output.start_logits.float().numpy())
                ends.append(output.end_logits.float().numpy())
        return np.concatenate(starts), np.concatenate(ends)

    def _window_spans(self, encoded: Any, window: int, start_logits: np.ndarray, end_logits: np.ndarray,
                      passage: Passage) -> tuple[list[Extraction], float]:
        """Valid spans of one window with p(start)·p(end), and the window's no-answer score."""
        context = np.array([i for i, s in enumerate(encoded.sequence_ids(window)) if s == 1])
        if not len(context):
            return [], 1.0
        ids = encoded["input_ids"][window].tolist()
        cls = ids.index(self.tokenizer.cls_token_id) if self.tokenizer.cls_token_id in ids else 0
        p_start, p_end = _softmax(start_logits[[*context, cls]]), _softmax(end_logits[[*context, cls]])
        null = float(p_start[-1] * p_end[-1])
        top = self.settings.top_n
        offsets = encoded["offset_mapping"][window].tolist()
        spans = []
        for a in np.argsort(-p_start[:-1])[:top]:
            for b in np.argsort(-p_end[:-1])[:top]:
                score = float(p_start[a] * p_end[b])
                if score < MIN_SPAN_SCORE or not 0 <= context[b] - context[a] < self.settings.max_answer_tokens:
                    continue
                char_start, char_end = offsets[context[a]][0], offsets[context[b]][1]
                if char_end <= char_start:
                    continue
                doc_start, doc_end = passage.document_span(char_start, char_end)
                spans.append(Extraction(passage=passage, start=doc_start, end=doc_end,
                                        text=passage.original_text(doc_start, doc_end),
                                        score=round(score, 6)))
        return spans, null


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def load_qa_reader(name: str, settings: QASettings | None = None) -> QAReader:
    """A QA model by local path or hub id (the hub only where it is reachable)."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    location = locate_model(name)
    location = reach_hub(location)
    tokenizer = AutoTokenizer.from_pretrained(location.reference, use_fast=True)
    model = AutoModelForQuestionAnswering.from_pretrained(location.reference)
    return QAReader(model, tokenizer, name, settings)
