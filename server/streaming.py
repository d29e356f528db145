"""Streaming a blocking iterator (an answer being written) to an async response, one worker-thread hop per item."""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Iterator
from typing import TypeVar

import anyio.to_thread

T = TypeVar("T")


async def in_thread(items: Iterator[T], cancel: threading.Event) -> AsyncGenerator[T | Exception, None]:
    """Each item of `items`, taken in a worker thread; a failure is yielded as the exception and ends the stream.

    Leaving early (the client went away) sets `cancel` and closes `items`, which stops the work behind them.
    """
    try:
        while True:
            try:
                item = await anyio.to_thread.run_sync(next, items, None)
            except Exception as exc:
                yield exc
                return
            if item is None:
                return
            yield item
    finally:
        cancel.set()
        close = getattr(items, "close", None)
        if close is not None:
            close()
