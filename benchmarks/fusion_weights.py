"""Hybrid search on JSQuAD at each Japanese trust for the dense ranking, beside keyword search alone.
  # noqa: E402
    python benchmarks/fusion_weights.py [--model multilingual-e5-small] [--backend onnx-int8] [--questions 1000]

Indexes the 1,145 JSQuAD v1.3 validation paragraphs with yomitoki's own builder,
searches each sampled question once per retriever (dense, keyword; 100 chunks
deep), then fuses the two rankings with `indexer.search.fusion.fuse` at several
Japanese trusts (the dense weight is the query's coverage times the trust, as
`Searcher` does). Trust 0 is keyword search alone. The figures behind the
README's "Hybrid search that never loses to its own parts".
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.retrieval import DATA, build_index, load_jsquad, metrics  # noqa: E402
from indexer.build.builder import document_id  # noqa: E402
from indexer.embed.base import embed_for  # noqa: E402
from indexer.embed.loading import load_embedder  # noqa: E402
from indexer.search.fusion import fuse  # noqa: E402
from indexer.search.searcher import Searcher  # noqa: E402
from indexer.text.normalize import normalize_query  # noqa: E402

TRUSTS = (0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", default="multilingual-e5-small")
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--questions", type=int, default=1000)
    args = parser.parse_args()
    retrieval = load_jsquad(args.data, args.questions)
    embedder = load_embedder(args.model, runtime=args.backend)
    with tempfile.TemporaryDirectory() as tmp:
        directory, _ = build_index(retrieval, embedder, Path(tmp))
        searcher = Searcher(directory.current(), embedder)
        documents = {document_id(f"{retrieval.name}.jsonl#{d['id']}"): d["id"] for d in retrieval.documents}
        texts = [normalize_query(q).strip() for _, q in retrieval.queries]
        vectors = embed_for(embedder, texts, "query")
        runs = []
        for text, vector in zip(texts, vectors, strict=True):
            dense = searcher.search(text, mode="dense", k=100, query_vector=vector)
            keyword = searcher.search(text, mode="keyword", k=100)
            chunk_docs = {h.chunk_id: documents[h.doc_id] for h in [*dense, *keyword]}
            runs.append(([(h.chunk_id, h.score) for h in dense], [(h.chunk_id, h.score) for h in keyword],
                         embedder.coverage(text), chunk_docs))
        print(f"JSQuAD: {len(retrieval.documents)} paragraphs, {len(texts)} questions; {args.model} ({args.backend})")
        print(f"{'Japanese trust':>15} {'recall@1':>9} {'recall@5':>9} {'MRR@10':>8}")
        for trust in TRUSTS:
            rankings = []
            for dense, keyword, coverage, chunk_docs in runs:
                weight = coverage * trust if coverage >= searcher.fusion.coverage_floor else 0.0
                fused = fuse(dense, keyword, weight, searcher.fusion)
                rankings.append(list(dict.fromkeys(chunk_docs[cid] for cid, _ in fused))[:10])
            result = metrics(rankings, retrieval)
            print(f"{trust:>15} {result['recall@1']:>9.4f} {result['recall@5']:>9.4f} {result['mrr@10']:>8.4f}")
        searcher.close()


if __name__ == "__main__":
    main()
