"""Search: one generation searched dense, keyword or hybrid, with filters, facets and highlights.

    opening   open_index(...): the one way to open an index for reading (model and runtime from the manifest)
    searcher  Searcher: modes, filters, paging, facets, collapse, highlights, the compound boost
    fusion    fusing dense and keyword rankings by each one's trust (FusionSettings)
    rerank    re-ordering a ranking's first chunks with a cross-encoder (Reranking, --reranker)
    readings  hiragana in a query read as the index's words that sound that way (けいたいそ → 形態素)
"""
