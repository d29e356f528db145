"""Searching one generation: dense, keyword and hybrid, with filters and highlights.

    query ─ normalize ─┬─ embed ─ backend dense top-n ───┐
                       └─ terms ─ backend keyword top-n ─┴─ fuse ─ hits (+ highlight spans)

The store (`indexer.store.base`: FAISS + SQLite, or Milvus) only returns
candidate ids and stored rows; fusion, highlights and offsets are computed here.

Every offset in a hit points into the original, un-normalized document text.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from indexer.embed.base import Embedder, embed_for
from indexer.errors import ConflictError, InputError
from indexer.search.fusion import FusionSettings, fuse
from indexer.search.readings import Conversion, LazyReadings, has_stretches, is_kanji, kana_stretches
from indexer.search.rerank import Reranking, rerank
from indexer.store.base import KeywordQuery, SearchStore
from indexer.store.embedded import EmbeddedStore
from indexer.store.factory import open_store
from indexer.store.generations import Generation
from indexer.store.identity import document_id
from indexer.store.manifest import ModelEntry
from indexer.store.milvus import NO_ENTITIES
from indexer.store.sqlite import EntityFilterError, Filters, SqliteStore, StoredChunk, StoredDocument
from indexer.store.vectors import VectorIndex
from indexer.text.chunking import embedding_text
from indexer.text.keywords import KeywordTokenizer, Term, load_keyword_tokenizer, match_expression
from indexer.text.language import detect_language
from indexer.text.normalize import normalize_query
from indexer.text.pages import PAGE_STARTS, page_starts, pages_of

MODES = ("dense", "keyword", "hybrid")
# A paged or faceted search ranks this deep, so every page of one query comes from one ranking.
MAX_RESULTS = 1000
RELATED_CHUNKS = 64  # the chunks of a document that `Searcher.related` averages (a long one: its start)
MAX_GRAMS_AROUND = 500  # bigrams a one-kanji query stands for (a common kanji is in thousands)
MAX_FACET_VALUES = 100


class IndexMismatchError(ConflictError):
    """The index was built with another model than the one loaded."""


class QueryError(InputError):
    """A query that cannot be searched (empty after normalization, unknown mode)."""


@dataclass(frozen=True)
class Hit:
    doc_id: str
    chunk_id: int
    title: str
    source: str
    section: tuple[str, ...]
    text: str                            # the chunk's original text: document.text[start:end]
    start: int
    end: int
    score: float
    highlights: tuple[tuple[int, int], ...]  # spans in the original document text
    language: str
    metadata: dict[str, Any]
    key: str = ""                        # the document's own key: a record's id, a file's path, an upload's key
    pages: tuple[int, ...] = ()          # 1-based pages the chunk lies on (paged formats only)

    @property
    def page(self) -> int | None:
        """The page the hit's first highlight is on (where the match is), else the chunk's first page."""
        if not self.pages:
            return None
        return self.page_at(*self.highlights[0]) if self.highlights else self.pages[0]

    def page_at(self, start: int, end: int) -> int | None:
        """The page a span of the document's text (within this hit) begins on, or None without pages."""
        if not self.pages:
            return None
        return self.pages[0] + sum(1 for page in self.pages[1:] if self.page_starts[page] <= start)

    page_starts: dict[int, int] = field(default_factory=dict)  # page -> its start, for pages after the first
    more: int = 0                        # collapsed: the document's other chunks in the results
    rerank_score: float | None = None    # the cross-encoder's score, for a chunk it read (`reranking`)


@dataclass(frozen=True)
class Results:
    """One page of a result set, with the set's size and facet counts."""

    hits: list[Hit]
    total: int                                        # chunks in the result set (documents when collapsed)
    facets: dict[str, list[tuple[Any, int]]]          # field -> (value, documents) most first
    read_as: str | None = None                        # the query with its kana read as the index's words,
                                                      # when that changed it (けいたいそかいせき → 形態素解析)


def _paging(starts: list[int], start: int, end: int) -> dict[str, Any]:
    """A hit's `pages` and the starts of those after the first."""
    pages = pages_of(starts, start, end)
    return {"pages": pages, "page_starts": {page: starts[page - 1] for page in pages[1:]}}


def check_model(generation: Generation, embedder: Embedder) -> None:
    """Refuse to search an index with a model other than the one it was built with."""
    built = generation.manifest.model
    loaded = ModelEntry.described(embedder.describe())
    for key in ("name", "dimension", "revision"):
        if getattr(built, key) != getattr(loaded, key):
            raise IndexMismatchError(
                f"index {generation.path} was built with model {built.name!r} "
                f"({key} {getattr(built, key)!r}), but {loaded.name!r} ({key} {getattr(loaded, key)!r}) "
                f"is loaded: serve it with `--model {built.name}` or rebuild it with "
                f"`yomitoki index CORPUS --index {generation.path.parent} --rebuild --model {loaded.name}`"
            )
    backend = built.backend or loaded.backend  # indexes from before runtimes were recorded: any
    if backend != loaded.backend:
        raise IndexMismatchError(
            f"index {generation.path} was built with the {backend!r} backend of {built.name!r}, but the "
            f"{loaded.backend!r} backend is loaded: load it with runtime={backend!r} (`yomitoki serve` does "
            f"when it starts: restart it to serve this index) or rebuild with `yomitoki index CORPUS --index "
            f"{generation.path.parent} --rebuild --backend {loaded.backend}`"
        )


class Searcher:
    """Read-only search over one generation; safe to call from several threads."""

    def __init__(self, generation: Generation, embedder: Embedder, search_store: SearchStore | None = None) -> None:
        check_model(generation, embedder)
        self.generation = generation
        self.embedder = embedder
        self.keywords: KeywordTokenizer = load_keyword_tokenizer(generation.manifest.keywords)
        self.fusion = FusionSettings.from_entry(generation.manifest.fusion)
        self.search_store: SearchStore = search_store if search_store is not None else open_store(generation)
        # Rank chunks holding a split compound of the query as typed higher (a phrase term with its own IDF).
        # On JSQuAD (4,442 questions, keyword) it moved recall@1 0.9088 → 0.9104 and MRR@10 0.9333 → 0.9343
        # (benchmarks/retrieval.py --compounds); English queries have no such compounds and never change.
        self.compound_boost = True
        self.compounds = functools.lru_cache(maxsize=1024)(self._compounds)  # ranking and highlights both ask
        # words typed in kana also search the index's words read that way (けいたいそ → 形態素);
        # benchmarks/kana_queries.py measures it against kana_conversion = False
        self.kana_conversion = True
        self.readings = LazyReadings(self.search_store.keyword_vocabulary, self.keywords.reading)
        self._conversions = functools.lru_cache(maxsize=1024)(self._convert)
        self.grams_around = functools.lru_cache(maxsize=1024)(self._grams_around)

    @property
    def store(self) -> SqliteStore:
        """The SQLite store of an embedded generation (this thread's connection)."""
        if not isinstance(self.search_store, EmbeddedStore):
            raise AttributeError(f"generation {self.generation.name} is not kept in SQLite: use Searcher.document")
        return self.search_store.store

    def entity_counts(self, entity_type: str | None = None, limit: int = 50,
                      filters: Filters | None = None) -> list[tuple[str, str, int]]:
        """The entity facets (`SqliteStore.entity_counts`); an index in Milvus holds none: a 400 that says so."""
        if not isinstance(self.search_store, EmbeddedStore):
            raise EntityFilterError(NO_ENTITIES)
        return self.store.entity_counts(entity_type, limit, filters)

    @property
    def vectors(self) -> VectorIndex:
        """The FAISS index of an embedded generation."""
        if not isinstance(self.search_store, EmbeddedStore):
            raise AttributeError(f"generation {self.generation.name} is not kept in FAISS")
        return self.search_store.vectors

    def document(self, doc_id: str) -> StoredDocument | None:
        """A document with its original text, or None."""
        return self.search_store.document(doc_id)

    def documents_named(self, id_or_key: str) -> Iterator[StoredDocument]:
        """The documents a name can mean, read one at a time as asked for: the one with that id, then the
        one with that key."""
        for doc_id in (id_or_key, document_id(id_or_key)):
            doc = self.document(doc_id)
            if doc is not None:
                yield doc

    def close(self) -> None:
        self.search_store.close()

    def embed_query(self, query: str) -> np.ndarray:
        return embed_for(self.embedder, [normalize_query(query)], "query")[0]

    def search(
        self,
        query: str,
        *,
        mode: str = "hybrid",
        k: int = 10,
        filters: Filters | None = None,
        query_vector: np.ndarray | None = None,
        reranking: Reranking | None = None,
    ) -> list[Hit]:
        """The k best chunks for a query; `query_vector` may be given if already embedded."""
        return self.find(query, mode=mode, k=k, filters=filters, query_vector=query_vector,
                         reranking=reranking).hits

    def find(
        self,
        query: str,
        *,
        mode: str = "hybrid",
        k: int = 10,
        offset: int | None = None,
        filters: Filters | None = None,
        facets: Sequence[str] = (),
        collapse: bool = False,
        query_vector: np.ndarray | None = None,
        reranking: Reranking | None = None,
    ) -> Results:
        """A page of hits (`offset`, `k`), with the result set's size and `facets` counted over all of it.

        Without `offset` and facets the ranking goes `fusion.candidates` deep, as
        a plain search always has; with either it goes `MAX_RESULTS` deep, so
        that every page of a query is cut from the same ranking. `reranking`
        re-orders the ranking's first chunks with a cross-encoder (before
        collapsing, so a document's best chunk is the cross-encoder's choice
        among those it read). `collapse` keeps each document's best chunk,
        with the count of its others.
        """
        paged = offset is not None or bool(facets)
        depth = MAX_RESULTS if paged else max(k, self.fusion.candidates)
        ranked = self._rank(query, mode, depth, filters or Filters(), query_vector)
        text = normalize_query(query).strip()
        scope = (filters or Filters()).statistics
        read = self.kana_terms(text, scope).text
        reranked: dict[int, float] = {}
        if reranking is not None:  # the cross-encoder reads the query as the embedding model does
            ranked, reranked = rerank(read, ranked, reranking, self.search_store)
        owners = self.search_store.chunk_documents([cid for cid, _ in ranked]) if collapse or facets else {}
        more: dict[int, int] = {}
        if collapse:
            best: dict[str, int] = {}
            kept = []
            for cid, score in ranked:
                doc = owners.get(cid)
                if doc is None:
                    continue
                if doc in best:
                    more[best[doc]] += 1
                else:
                    best[doc], more[cid] = cid, 0
                    kept.append((cid, score))
            ranked = kept
        start = offset or 0
        hits = self._hits(text, ranked[start : start + k], scope)
        if more or reranked:
            hits = [replace(hit, more=more.get(hit.chunk_id, 0), rerank_score=reranked.get(hit.chunk_id))
                    for hit in hits]
        counts = self._facets(facets, set(owners.values())) if facets else {}
        return Results(hits=hits, total=len(ranked), facets=counts, read_as=read if read != text else None)

    def related(self, doc_id: str, *, k: int = 5, filters: Filters | None = None) -> list[Hit]:
        """Other documents on the subject of this one, in any language the model reads: the mean of its
        chunks' vectors (its first `RELATED_CHUNKS`; embedded again where the index cannot give
        vectors back), searched densely among the chunks that pass `filters`. Each document once, by
        its closest chunk, best first; [] for an unknown document."""
        ids = self.search_store.document_chunk_ids(doc_id)[:RELATED_CHUNKS]
        if not ids:
            return []
        vectors = self.search_store.stored_vectors(ids)
        if vectors is None:  # embedded again as the build embedded them: title, then text
            texts = self.search_store.chunk_texts(ids)
            title = self.search_store.documents_brief([doc_id])[doc_id][0]
            vectors = embed_for(self.embedder, [embedding_text(title, texts[i]) for i in ids], "passage")
        centre = vectors.mean(axis=0)
        centre = (centre / max(float(np.linalg.norm(centre)), 1e-12)).astype(np.float32)
        depth = 20 * k + len(ids)
        while True:  # deeper until k other documents show (long ones fill a ranking with their chunks)
            ranked = self.search_store.dense(centre, min(depth, MAX_RESULTS), filters or Filters())
            owners = self.search_store.chunk_documents([cid for cid, _ in ranked])
            best: dict[str, tuple[int, float]] = {}
            for cid, score in ranked:
                owner = owners.get(cid)
                if owner is not None and owner != doc_id and owner not in best:
                    best[owner] = (cid, score)
            if len(best) >= k or len(ranked) < min(depth, MAX_RESULTS) or depth >= MAX_RESULTS:
                return self._hits("", list(best.values())[:k])
            depth *= 4

    def _facets(self, fields: Sequence[str], doc_ids: set[str]) -> dict[str, list[tuple[Any, int]]]:
        """Per field, how many of these documents hold each value (each element of a list)."""
        docs = self.search_store.documents_brief(sorted(doc_ids))
        out = {}
        for name in dict.fromkeys(fields):
            counter: Counter[Any] = Counter()
            for doc_id, (_, source, language, metadata, key) in docs.items():
                counter.update(facet_values(name, source, language, metadata, doc_id=doc_id, key=key))
            ordered = sorted(counter.items(), key=lambda item: (-item[1], str(item[0])))
            out[name] = ordered[:MAX_FACET_VALUES]
        return out

    def _rank(self, query: str, mode: str, depth: int, filters: Filters,
              query_vector: np.ndarray | None) -> list[tuple[int, float]]:
        if mode not in MODES:
            raise QueryError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        text = normalize_query(query).strip()
        if not text:
            raise QueryError("query is empty after normalization")
        dense: list[tuple[int, float]] = []
        keyword: list[tuple[int, float]] = []
        weight = 1.0
        if mode in ("keyword", "hybrid"):
            keyword = self._keyword(text, depth, filters)
            compounds = [text[s:e] for s, e in self.compounds(text)] if self.compound_boost else []
            if compounds and keyword:
                keyword = self._boost_compounds(keyword, compounds, filters.statistics)
        if mode == "hybrid":
            weight = self.fusion.dense_weight(self.embedder.coverage(text), detect_language(text))
        if mode == "dense" or (mode == "hybrid" and (weight > 0 or not keyword)):
            written = self.kana_terms(text, filters.statistics).text  # kana read as the words, for the model too
            if query_vector is None or written != text:
                query_vector = embed_for(self.embedder, [written], "query")[0]
            vector = query_vector
            dense = self._dense(vector, depth, filters)
        if mode == "dense":
            return dense
        if mode == "keyword":
            return keyword
        return fuse(dense, keyword, weight, self.fusion)

    def _compounds(self, text: str) -> tuple[tuple[int, int], ...]:
        """Spans of the query where the analyser split one written word into pieces, one a single character.

        二文 becomes 二 / 文 and 三行 becomes 3 / 行: alone, 文 matches every
        sentence and 3 every ③. The pieces are adjacent in the query, so the
        run they cover is the word as typed. Digits count as pieces beside
        Japanese (3月 is 3 / 月, 第3条 is 第 / 3 / 条), Latin words never (iPhone15).
        """
        def piece(term: Term) -> bool:
            typed = text[term.start : term.end]
            return not typed.isascii() or typed.isdigit()

        spans: list[tuple[int, int]] = []
        run: list[Term] = []
        for term in [*self.keywords.words(text), None]:
            if term is not None and piece(term) and run and term.start == run[-1].end:
                run.append(term)
                continue
            if (len(run) > 1 and any(t.end - t.start == 1 for t in run)
                    and not text[run[0].start : run[-1].end].isascii()):
                spans.append((run[0].start, run[-1].end))
            run = [term] if term is not None and piece(term) else []
        return tuple(spans)

    def _boost_compounds(self, ranked: list[tuple[int, float]], compounds: list[str],
                         scope: Filters | None = None) -> list[tuple[int, float]]:
        """Score each split compound as one more BM25 term (a phrase): its IDF for the chunks holding it.

        A compound's document frequency is that of its rarest character
        bigram (an upper bound of the phrase's own), so a rare compound such
        as 二文 lifts its chunks far, a common one such as 何年 barely. Only the
        list's first `fusion.candidates` are read and reordered. `scope`: the
        chunks the statistics count (`Filters.statistics`; None: all).
        """
        head = ranked[: self.fusion.candidates]
        texts = {cid: text.lower() for cid, text in self.search_store.chunk_texts([cid for cid, _ in head]).items()}
        total = max(self.search_store.vector_count(scope), 1)
        weights = []
        for compound in compounds:
            frequency = self._compound_frequency(compound, scope)
            weights.append(max(math.log((total - frequency + 0.5) / (frequency + 0.5)), 1e-6))
        patterns = [_as_typed(compound.lower()) for compound in compounds]
        boosted = [(cid, score + sum(w for pattern, w in zip(patterns, weights, strict=True)
                                     if pattern.search(texts.get(cid, ""))))
                   for cid, score in head]
        boosted.sort(key=lambda item: (-item[1], item[0]))
        return boosted + ranked[len(head):]

    def _compound_frequency(self, compound: str, scope: Filters | None) -> int:
        """An upper bound of how many chunks hold a compound: the document frequency of its rarest character
        bigram (二文), or of its rarest piece where it has no bigram the index keeps (3月, 第3条: the grams hold
        Japanese letters only)."""
        grams = [gram for gram in (compound[i : i + 2] for i in range(len(compound) - 1))
                 if not any(char.isascii() for char in gram)]
        if grams:
            return min(self.search_store.document_frequency("grams", gram, scope) for gram in grams)
        pieces = {term.text for term in self.keywords.words(compound)}
        return min((self.search_store.document_frequency("words", piece, scope) for piece in pieces), default=0)

    def _dense(self, vector: np.ndarray, depth: int, filters: Filters) -> list[tuple[int, float]]:
        return self.search_store.dense(vector, depth, filters)

    def prepare(self) -> int | None:
        """Build what a first query would otherwise wait for: the reading dictionary (a second or
        more for a large Japanese vocabulary). Its number of readings; None where there is none."""
        dictionary = self.readings.get()
        return None if dictionary is None else len(dictionary)

    def kana_terms(self, text: str, scope: Filters | None = None) -> Conversion:
        """The index's words that the query's kana stretches read as (`indexer.search.readings`); with `scope`
        (`Filters.statistics`: an API key's documents), only the words of the chunks that pass it."""
        return self._conversions(text, scope) if self.kana_conversion else Conversion((), (), text)

    def _convert(self, text: str, scope: Filters | None) -> Conversion:
        dictionary = self.readings.get() if has_stretches(text) else None
        if dictionary is None:
            return Conversion((), (), text)
        if scope is not None:
            dictionary = dictionary.within(lambda term: self.search_store.document_frequency("words", term, scope))
        # the noun gate is for hiragana only: a query of katakana (loanwords, mostly) is not analysed for it
        nouns = self.keywords.noun_spans(text) if kana_stretches(text) else ()
        return dictionary.expand(text, self.keywords.words(text), nouns=nouns)

    def _keyword(self, text: str, depth: int, filters: Filters) -> list[tuple[int, float]]:
        kana = self.kana_terms(text, filters.statistics)

        def typed(terms: list[Term]) -> list[str]:  # the query's own terms, less those of converted kana
            return [t.text for t in terms if not any(s <= t.start and t.end <= e for s, e in kana.spans)]

        words = tuple(dict.fromkeys([*typed(self.keywords.words(text)), *kana.terms]))
        grams = tuple(dict.fromkeys(typed(self.keywords.grams(text))))
        if len(grams) == 1 and is_kanji(grams[0]) and not self.compounds(text):
            # the query's Japanese is one kanji: 駅, or 株 price; not the 月 of 3月, a word with its number
            grams += self.grams_around(grams[0])
        query = KeywordQuery(match=match_expression(words, grams), words=words, grams=grams)
        if query.empty:
            return []
        return self.search_store.keyword(query, depth, filters, self.grams_weight)

    @functools.cached_property
    def _gram_vocabulary(self) -> dict[str, int]:
        return self.search_store.keyword_vocabulary("grams") or {}

    def _grams_around(self, char: str) -> tuple[str, ...]:
        """The index's bigrams holding a kanji (駅: 京駅, 駅前…), most frequent first, for a query whose Japanese is
        that one kanji. The index keeps a character alone only where nothing Japanese stands beside it, so a
        query of one kanji (駅, 株, 税) would otherwise find 駅 in 東京駅 nowhere. Only then: in a longer query
        a lone kanji (the 年 of 1990年、) is one clue among others, and a lone kana is a particle (の, は)."""
        vocabulary = self._gram_vocabulary
        around = [gram for gram in vocabulary if char in gram and gram != char]
        return tuple(sorted(around, key=lambda gram: (-vocabulary[gram], gram))[:MAX_GRAMS_AROUND])

    @property
    def grams_weight(self) -> float:
        return float(self.keywords.settings.get("grams_weight", 1.0))  # type: ignore[arg-type]

    def _hits(self, query: str, ranked: list[tuple[int, float]], scope: Filters | None = None) -> list[Hit]:
        chunks = self.search_store.chunks([cid for cid, _ in ranked])
        docs = self.search_store.documents_brief(list({c.doc_id for c in chunks.values()}))
        originals = self.search_store.chunk_originals(list(chunks.values()))
        terms = self._query_terms(query, scope)
        hits = []
        for cid, score in ranked:
            chunk = chunks.get(cid)
            if chunk is None:
                continue
            title, source, language, metadata, key = docs[chunk.doc_id]
            hits.append(Hit(
                doc_id=chunk.doc_id, chunk_id=cid, title=title, source=source,
                section=chunk.section, text=originals[cid], start=chunk.start, end=chunk.end,
                score=round(score, 6), highlights=self.highlights(chunk, terms),
                language=language, key=key,
                metadata={name: value for name, value in metadata.items() if name != PAGE_STARTS},
                **_paging(page_starts(metadata), chunk.start, chunk.end),
            ))
        return hits

    def _query_terms(self, query: str, scope: Filters | None = None) -> QueryTerms:
        """The query's terms as they can appear in a chunk's text.

        English terms match the words of the text that have the same stem (run → running, not
        rune), Japanese words by their surface, and the query's character bigrams as they are:
        the same evidence the keyword index ranks by, found with one regular expression and a
        stemmer instead of re-analysing every hit.
        """
        parts, stems = set(), set()
        forms: dict[str, str] = {}  # a Japanese word's form in the index -> how the query has it
        compounds = self.compounds(query)
        kana = self.kana_terms(query, scope)

        def searched(term: Term) -> bool:  # not a piece of kana read as the index's words (as `_keyword`)
            return not any(s <= term.start and term.end <= e for s, e in kana.spans)

        def alone(term: Term) -> bool:  # not a digit or a single character of a compound (3 or 月 of 3月)
            return not (any(s <= term.start < e for s, e in compounds)
                        and (term.end - term.start == 1 or query[term.start : term.end].isdigit()))

        for term in filter(searched, self.keywords.words(query)):
            typed = query[term.start : term.end]
            if not alone(term):
                continue
            if typed.isascii():
                stems.add(term.text)
            else:
                parts.add(re.escape(typed.lower()))  # as typed, never the analyser's form (二 → 2)
                if len(typed) > 1:
                    forms[term.text] = typed
        parts.update(_as_typed(query[s:e].lower()).pattern for s, e in compounds)
        parts.update(re.escape(gram.text) for gram in self.keywords.grams(query) if searched(gram) and alone(gram))
        parts.update(re.escape(term) for term in kana.terms)
        forms.update((term, term) for term in kana.terms)
        # matched at every position, as a lookahead: matches may overlap (の弱 and 弱点 in の弱点; a plain scan
        # would resume after の弱 and never see 弱点), and `highlights` merges them
        pattern = re.compile(f"(?=({'|'.join(sorted(parts, key=len, reverse=True))}))", re.IGNORECASE) \
            if parts else None
        return QueryTerms(pattern, frozenset(stems), forms)

    def highlights(self, chunk: StoredChunk, terms: QueryTerms) -> tuple[tuple[int, int], ...]:
        """Spans of the chunk where query terms occur, merged, in original-text offsets."""
        spans = [match.span(1) for match in terms.pattern.finditer(chunk.text)] if terms.pattern else []
        if terms.stems:
            spans += [match.span() for match in _LATIN_WORD.finditer(chunk.text)
                      if self.keywords.stem(match.group()) in terms.stems]
        if any(typed not in chunk.text for typed in terms.forms.values()):
            # a word the chunk may write another way that the index reads as the same (附属 for 付属, 打合せ for
            # 打ち合わせ, 吾輩 for 我が輩): the chunk's own words, analysed only then
            spans += [(word.start, word.end) for word in self.keywords.words(chunk.text) if word.text in terms.forms]
        merged: list[list[int]] = []
        for start, end in sorted(spans):
            if end == start:
                continue
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return tuple(chunk.to_original(s, e) for s, e in merged)


@dataclass(frozen=True)
class QueryTerms:
    """What `Searcher.highlights` marks: Japanese words, compounds, bigrams and kana readings (`pattern`), the
    stems of the query's English words (`stems`), and words written another way that the index reads as the
    query's (`forms`)."""

    pattern: re.Pattern[str] | None
    stems: frozenset[str]
    forms: dict[str, str] = field(default_factory=dict)  # Japanese words: the index's form -> as the query has it


def _as_typed(compound: str) -> re.Pattern[str]:
    """A compound where it stands in a text, its numbers whole: 1月 is not found in 11月, nor 第1 in 第10."""
    before = "(?<![0-9])" if compound[:1].isdigit() else ""
    after = "(?![0-9])" if compound[-1:].isdigit() else ""
    return re.compile(f"{before}{re.escape(compound)}{after}")


# A word of Latin letters and digits: one English term of the index (BM25 in BM25のk1, API in APIキー). Python's
# \w would run on into the Japanese after it.
_LATIN_WORD = re.compile(r"[0-9A-Za-z\u00c0-\u024f]+")


def facet_values(field: str, source: str, language: str, metadata: dict[str, Any], *, doc_id: str = "",
                 key: str = "") -> list[Any]:
    """The values a document holds in a facet field: any field a filter takes (`source`, `language`, `doc_id`,
    `key`, `tags` or `metadata.KEY…`)."""
    if field in ("doc_id", "key"):
        return [doc_id if field == "doc_id" else key]
    if field == "source":
        return [source]
    if field == "language":
        return [language]
    value: Any = metadata
    for key in (["tags"] if field == "tags" else field.split(".")[1:]):
        value = value.get(key) if isinstance(value, dict) else None
    items = value if isinstance(value, list) else [value]
    return list(dict.fromkeys(v for v in items if isinstance(v, str | int | float | bool)))
