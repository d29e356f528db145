"""yomitoki indexer: load, normalize, chunk, embed and index documents, and search them.

Sub-packages by stage, each naming its modules in its own docstring:

    text    files → normalized text, sentences, chunks, keyword terms
    embed   embedding models and the runtimes that run them
    store   search stores (embedded FAISS + SQLite, Milvus), generations, filters
    search  searching a generation: modes, fusion, highlights; open_index
    build   building and updating generations (locally, on Ray, one document, a watched folder)
    ner     named entities

Beside them: `errors` (the one error root), `cli` (the `yomitoki` indexer commands).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("yomitoki")  # the installed distribution's, from pyproject.toml
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"


def versions() -> dict[str, str]:
    """Versions of the libraries an index depends on, recorded in its manifest."""
    import sqlite3

    out = {"yomitoki": __version__, "sqlite": sqlite3.sqlite_version}
    for dist in ("sentence-transformers", "transformers", "torch", "faiss-cpu", "sudachipy", "onnxruntime"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out
