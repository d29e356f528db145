"""Questions typed in kana: does keyword search still find the paragraph? (`indexer.search.readings`)

    python benchmarks/kana_queries.py [--questions 1000] [--model all-minilm-l6-v2]
    python benchmarks/kana_queries.py --mode hybrid --model multilingual-e5-small --backend onnx-int8

JSQuAD v1.3 validation: its 1,145 paragraphs indexed with yomitoki's own
builder, and a sample of its questions asked three ways, keyword search:

* **as written** (kanji and kana, as JSQuAD has them);
* **all in kana**: every word replaced by its reading in hiragana (Sudachi's
  `reading_form` in context; ASCII words and digits kept), as someone types
  who does not know or cannot type the kanji: 徳川家康はどこに… →
  とくがわいえやすはどこに…;
* **nouns in kana**: only the nouns written with kanji replaced (ばくふを開いた);
* **nouns in katakana**: the same nouns in katakana (バクフを開いた).

Katakana is mostly loanwords, so the script also counts the **loanwords the
index does not hold** that the conversion would read as kanji words anyway:
every katakana word of the Japanese NER set's Wikipedia sentences
(`ner-wikipedia-ja`, a text the index was not built from) whose terms are
not all in the index's vocabulary, searched alone.

Each kana form is searched with the conversion of kana into the index's words
and without it (`Searcher.kana_conversion = False`, the search before this
feature), on the same index in the same run. As written, the conversion
should change (almost) nothing: the script counts the questions whose first
ten results differ and prints some of them (`--show`). The readings come from the same analyser as the index's
dictionary, which is kinder than a person's typing (long vowels, rare
readings); the figure is an upper bound for queries typed with standard
readings. The embedding model plays no part in keyword search.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.retrieval import DATA, build_index, load_jsquad, metrics  # noqa: E402
from indexer.build.builder import document_id  # noqa: E402
from indexer.embed.loading import load_embedder  # noqa: E402
from indexer.search.readings import to_katakana  # noqa: E402
from indexer.search.searcher import Searcher  # noqa: E402


def to_hiragana(text: str) -> str:
    return "".join(chr(ord(c) - 0x60) if "\u30a1" <= c <= "\u30f6" else c for c in text)


def kana_forms(question: str, tokenizer: object) -> tuple[str, str, str]:
    """(all in kana, nouns with kanji in kana, those nouns in katakana) of a question, by Sudachi's
    readings in context."""
    everything, nouns, katakana = [], [], []
    for m in tokenizer.tokenize(question):  # type: ignore[attr-defined]
        surface, reading = m.surface(), m.reading_form()
        has_kanji = any("\u4e00" <= c <= "\u9fff" or c == "々" for c in surface)
        readable = bool(reading) and to_katakana(reading) == reading and not surface.isascii()
        everything.append(to_hiragana(reading) if readable else surface)
        noun = readable and has_kanji and m.part_of_speech()[0] == "名詞"
        nouns.append(to_hiragana(reading) if noun else surface)
        katakana.append(reading if noun else surface)
    return "".join(everything), "".join(nouns), "".join(katakana)


def loanwords(data: Path, tokenizer: object) -> list[str]:
    """The distinct katakana words (two or more characters) of the NER set's sentences, in order."""
    import json

    found: dict[str, None] = {}
    for record in json.loads((data / "ner-wikipedia-ja" / "train.json").read_text(encoding="utf-8")):
        for m in tokenizer.tokenize(record["text"]):  # type: ignore[attr-defined]
            word = m.surface()
            if len(word) >= 2 and all("\u30a1" <= c <= "\u30fa" or c == "ー" for c in word):
                found[word] = None
    return list(found)


def rank(searcher: Searcher, queries: list[str], ids: dict[str, str], mode: str) -> tuple[list[list[str]], float]:
    started = time.perf_counter()
    rankings = []
    for query in queries:
        ranked: list[str] = []
        for hit in searcher.search(query, mode=mode, k=50):
            if ids[hit.doc_id] not in ranked:
                ranked.append(ids[hit.doc_id])
        rankings.append(ranked[:10])
    return rankings, (time.perf_counter() - started) / max(len(queries), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=1000, help="questions sampled from JSQuAD (seed 0)")
    parser.add_argument("--model", default="all-minilm-l6-v2", help="embedding model of the index (not used by "
                        "keyword search; the smallest builds fastest)")
    parser.add_argument("--mode", default="keyword", choices=("keyword", "hybrid"),
                        help="hybrid: with the model's dense ranking fused in (use a model that reads Japanese)")
    parser.add_argument("--backend", default=None, help="embedding runtime (torch, onnx-int8…)")
    parser.add_argument("--show", type=int, default=10, help="changed questions to print")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()

    import sudachipy

    retrieval = load_jsquad(args.data, limit=args.questions)
    tokenizer = sudachipy.Dictionary(dict="core").create(mode=sudachipy.SplitMode.C)
    written = [q for _, q in retrieval.queries]
    forms = [kana_forms(q, tokenizer) for q in written]
    print(f"JSQuAD: {len(retrieval.documents)} paragraphs, {len(written)} questions; e.g.\n"
          f"  {written[0]}\n  {forms[0][0]}\n  {forms[0][1]}")
    with tempfile.TemporaryDirectory() as workdir:
        embedder = load_embedder(args.model, runtime=args.backend, bulk=True)
        directory, seconds = build_index(retrieval, embedder, Path(workdir))
        print(f"indexed in {seconds:.0f} s; searching in {args.mode} mode")
        generation = directory.current()
        searcher = Searcher(generation, load_embedder(args.model, runtime=args.backend))
        ids = {document_id(str(d["id"])): d["id"] for d in retrieval.documents}
        started = time.perf_counter()
        size = len(searcher.readings.get() or ())
        print(f"reading dictionary: {size} readings, built in {time.perf_counter() - started:.2f} s\n")
        print(f"{'questions':<20} {'conversion':<11} {'recall@1':>9} {'recall@5':>9} {'MRR@10':>8} {'ms/query':>9}")
        results = {}
        for name, queries in (("as written", written), ("all in kana", [f[0] for f in forms]),
                              ("nouns in kana", [f[1] for f in forms]), ("nouns in katakana", [f[2] for f in forms])):
            for converted in (False, True):
                searcher.kana_conversion = converted
                rankings, per_query = rank(searcher, queries, ids, args.mode)
                results[name, converted] = rankings
                m = metrics(rankings, retrieval)
                print(f"{name:<20} {'on' if converted else 'off':<11} {m['recall@1']:>9.4f} {m['recall@5']:>9.4f} "
                      f"{m['mrr@10']:>8.4f} {per_query * 1000:>9.2f}")
        changed = sum(a != b for a, b in zip(results["as written", False], results["as written", True], strict=True))
        print(f"\nas written: {changed} of {len(written)} questions have other first ten paragraphs with the "
              "conversion on; the first of them, with the words their hiragana was read as:")
        shown = [(q, searcher.kana_terms(q).terms) for q, a, b in zip(
            written, results["as written", False], results["as written", True], strict=True) if a != b]
        for question, terms in shown[: args.show]:
            print(f"  {question}  →  {' '.join(terms)}")

        searcher.kana_conversion = True
        vocabulary = searcher.search_store.keyword_vocabulary() or {}
        absent = [w for w in loanwords(args.data, tokenizer)
                  if not all(t.text in vocabulary for t in searcher.keywords.words(w))]
        read = [(w, searcher.kana_terms(w).text) for w in absent]
        read = [(w, text) for w, text in read if text != w]
        print(f"\nloanwords: {len(read)} of {len(absent)} katakana words of ner-wikipedia-ja that the index does "
              f"not hold are read as its words ({len(read) / max(len(absent), 1):.1%}), e.g.:")
        for word, text in read[: args.show]:
            print(f"  {word}  →  {text}")


if __name__ == "__main__":
    main()
