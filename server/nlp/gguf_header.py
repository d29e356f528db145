"""The metadata and tensor shapes of a GGUF file, read from its header without loading weights.

`gguf.GGUFReader` parses every value into numpy views (seconds for a 49k-token
vocabulary); /models only needs a few scalars, the special tokens and the
parameter count, so this walks the header with `struct` and skips the rest.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAGIC = b"GGUF"
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_KEEP_ARRAYS = {"tokenizer.ggml.tokens"}  # the only array whose items /models needs


@dataclass
class GGUFHeader:
    metadata: dict[str, Any] = field(default_factory=dict)  # scalars and strings; arrays as lengths
    parameters: int = 0
    tokens: list[str] = field(default_factory=list)


class _Cursor:
    def __init__(self, data: mmap.mmap) -> None:
        self.data, self.pos = data, 0

    def scalar(self, fmt: str) -> Any:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.scalar("<Q")
        text = bytes(self.data[self.pos : self.pos + length]).decode("utf-8", errors="replace")
        self.pos += length
        return text

    def value(self, kind: int, keep: bool) -> Any:
        if kind in _SCALARS:
            return self.scalar(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind != _ARRAY:
            raise ValueError(f"unknown GGUF value type {kind}")
        item_kind, count = self.scalar("<I"), self.scalar("<Q")
        if item_kind in _SCALARS and not keep:
            self.pos += count * struct.calcsize(_SCALARS[item_kind])
            return count
        items = [self.value(item_kind, keep) for _ in range(count)]
        return items if keep else count


def read_gguf_header(path: Path) -> GGUFHeader:
    """Metadata, token strings and parameter count of a GGUF file (versions 2 and 3)."""
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[:4] != MAGIC:
            raise ValueError(f"{path} is not a GGUF file")
        cursor = _Cursor(data)
        cursor.pos = 4
        cursor.scalar("<I")  # version
        tensors, entries = cursor.scalar("<Q"), cursor.scalar("<Q")
        header = GGUFHeader()
        for _ in range(entries):
            key = cursor.string()
            value = cursor.value(cursor.scalar("<I"), keep=key in _KEEP_ARRAYS)
            if key in _KEEP_ARRAYS:
                header.tokens = value
            else:
                header.metadata[key] = value
        for _ in range(tensors):
            cursor.string()
            dims = [cursor.scalar("<Q") for _ in range(cursor.scalar("<I"))]
            cursor.pos += 4 + 8  # ggml type, data offset
            count = 1
            for dim in dims:
                count *= dim
            header.parameters += count
        return header
