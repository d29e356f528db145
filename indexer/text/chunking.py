"""Split a document into token-sized chunks along sentence boundaries.

Chunks are measured in the embedding model's own tokens, never cut inside a
sentence (unless one sentence alone is longer than a chunk), overlap by whole
sentences, and record their span in the original, un-normalized text.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from indexer.errors import InputError
from indexer.text.loaders import SourceDocument
from indexer.text.normalize import NormalizedText, normalize
from indexer.text.sentences import split_sentences


class TokenCounter(Protocol):
    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def token_spans(self, text: str) -> list[tuple[int, int]]: ...


@dataclass(frozen=True)
class ChunkSettings:
    max_tokens: int = 200
    overlap: int = 40

    def __post_init__(self) -> None:
        if self.max_tokens < 8:
            raise InputError("max_tokens must be at least 8")
        if not 0 <= self.overlap < self.max_tokens // 2:
            raise InputError("overlap must be between 0 and half of max_tokens")

    strategy: ClassVar[str] = "sentences"  # recorded in the manifest
    # recorded in the manifest too: raise it whenever the same text would be split into other chunks (this file,
    # `indexer.text.sentences`) or embedded as other text (`embedding_text`), so an index built before re-chunks
    # every document at its next build instead of keeping the old chunks of those it finds unchanged
    version: ClassVar[int] = 1


@dataclass(frozen=True)
class Chunk:
    text: str                     # normalized text: what is embedded and keyword-indexed
    start: int                    # span in the document's original text
    end: int
    norm_start: int               # span in the normalized text
    norm_end: int
    section: tuple[str, ...]
    tokens: int


@dataclass(frozen=True)
class _Piece:
    """A sentence (or a window of an over-long sentence) in normalized text."""

    start: int
    end: int
    tokens: int
    group: int                    # index of the section group it belongs to
    section: tuple[str, ...] = field(default=())


def _section_groups(doc: SourceDocument, norm: NormalizedText) -> list[tuple[int, int, tuple[str, ...]]]:
    """Sections mapped into normalized text, in order."""
    starts = norm.starts
    spans = []
    for section in doc.sections:
        ns = bisect_left(starts, section.start)
        ne = bisect_left(starts, section.end)
        if ne > ns:
            spans.append((ns, ne, section.path))
    if not spans and norm.text.strip():
        spans.append((0, len(norm.text), ()))
    return spans


def _pieces(norm: NormalizedText, doc: SourceDocument, counter: TokenCounter, limit: int) -> list[_Piece]:
    sentences: list[tuple[int, int, int, tuple[str, ...]]] = []
    for group, (ns, ne, path) in enumerate(_section_groups(doc, norm)):
        sentences.extend((s, e, group, path) for s, e in split_sentences(norm.text, ns, ne))
    counts = counter.count_tokens([norm.text[s:e] for s, e, _, _ in sentences])
    pieces: list[_Piece] = []
    for (s, e, group, path), count in zip(sentences, counts, strict=True):
        if count <= limit:
            pieces.append(_Piece(s, e, count, group, path))
        else:
            pieces.extend(_windows(norm.text, s, e, counter, limit, group, path))
    return pieces


def _windows(
    text: str, start: int, end: int, counter: TokenCounter, limit: int, group: int, path: tuple[str, ...]
) -> list[_Piece]:
    """Cut an over-long sentence at token boundaries into windows of at most `limit` tokens, never inside
    a character cluster (an emoji joined by ZWJ, a letter and its combining marks)."""
    spans = counter.token_spans(text[start:end])
    out: list[_Piece] = []
    for i in range(0, len(spans), limit):
        window = spans[i : i + limit]
        ws = max(start + window[0][0], out[-1].end) if out else start + window[0][0]
        we = _cluster_end(text, start + window[-1][1], end) if i + limit < len(spans) else end
        if we > ws:
            out.append(_Piece(ws, we, len(window), group, path))
    return out


def _cluster_end(text: str, pos: int, end: int) -> int:
    """`pos`, or past the characters from it on that still belong to the cluster before it."""
    while pos < end and (text[pos - 1] == "\u200d" or _joins_previous(text[pos])):
        pos += 1
    return pos


def _joins_previous(char: str) -> bool:
    """A zero-width joiner, variation selector, skin-tone modifier or combining mark: part of the cluster before."""
    code = ord(char)
    return (code == 0x200D or 0xFE00 <= code <= 0xFE0F or 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F
            or unicodedata.combining(char) != 0)


def _pack(pieces: list[_Piece], settings: ChunkSettings) -> list[list[_Piece]]:
    """Greedy packing of pieces into chunks, with whole-piece overlap.

    A new section starts a new chunk unless the chunk so far is small (a lone
    heading, say) and the section that follows lies within its own, which it then travels with.
    A small section never joins its sibling (one slide the next), so a chunk has one section's text.
    """
    chunks: list[list[_Piece]] = []
    current: list[_Piece] = []
    used = 0
    small = settings.max_tokens // 4
    for piece in pieces:
        new_section = bool(current) and piece.group != current[-1].group and (
            used >= small or piece.section[: len(current[-1].section)] != current[-1].section)
        if current and (used + piece.tokens > settings.max_tokens or new_section):
            chunks.append(current)
            current = [] if new_section else _overlap(current, settings.overlap)
            used = sum(p.tokens for p in current)
            if used + piece.tokens > settings.max_tokens:
                current, used = [], 0
        current.append(piece)
        used += piece.tokens
    if current:
        chunks.append(current)
    return chunks


def _overlap(chunk: list[_Piece], budget: int) -> list[_Piece]:
    tail: list[_Piece] = []
    used = 0
    for piece in reversed(chunk[1:]):
        if used + piece.tokens > budget:
            break
        tail.insert(0, piece)
        used += piece.tokens
    return tail


def chunk_document(
    doc: SourceDocument,
    counter: TokenCounter,
    settings: ChunkSettings | None = None,
    norm: NormalizedText | None = None,
) -> list[Chunk]:
    """Chunks of one document, each with its original-text span and section path."""
    settings = settings or ChunkSettings()
    norm = norm or normalize(doc.text)
    chunks = []
    for group in _pack(_pieces(norm, doc, counter, settings.max_tokens), settings):
        ns, ne = group[0].start, group[-1].end
        start, end = norm.to_original(ns, ne)
        section = max((p.section for p in group), key=len)  # a lone heading's chunk: the section it leads into
        chunks.append(
            Chunk(
                text=norm.text[ns:ne],
                start=start,
                end=end,
                norm_start=ns,
                norm_end=ne,
                section=section,
                tokens=sum(p.tokens for p in group),
            )
        )
    return chunks


def embedding_text(title: str, chunk_text: str) -> str:
    """What is embedded and keyword-indexed for a chunk: its title as context, then its text."""
    title = normalize(title).text.strip()
    if not title or chunk_text.startswith(title) or chunk_text.lstrip("# ").startswith(title):
        return chunk_text
    return f"{title}\n{chunk_text}"
