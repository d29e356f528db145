"""Search stores: where a generation's vectors, chunks and keyword index live, and how they are searched.

    base          the SearchStore / IndexWriter / BuildTarget interfaces, KeywordQuery, store_kind
    factory       open_store(generation), open_writer(...), open_target(index dir or Milvus)
    embedded      the embedded store: FAISS vectors + SQLite in a generation folder
    milvus        the Milvus store: a collection pair per generation, an alias as the live pointer
    generations   the index directory: generations, the live pointer, manifests, build locks
    manifest      a generation's manifest as typed structs (Manifest, ModelEntry, …) and its JSON
    integrity     sizes and checksums of a generation on disk
    sqlite        documents, chunks and FTS5 in SQLite (SqliteStore, Filters)
    vectors, ann  FAISS: flat, HNSW and IVF-PQ over normalized vectors keyed by chunk id
    full_vectors  full float32 vectors on disk for IVF-PQ re-scoring
    bm25          FTS5's BM25 from postings in memory
    visible_bm25  BM25 with the statistics of the rows a filter lets through (API keys' access filters)
    where         the `where` filter language (parse, evaluate, to SQL, to Milvus)
    identity      a document's id from its key
"""
