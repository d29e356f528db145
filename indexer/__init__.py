"""yomitoki indexer: load, normalize, chunk, embed and index documents."""

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
