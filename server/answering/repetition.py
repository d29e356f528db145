"""Stopping a generator that has fallen into a loop.

Greedy decoding lets a small model repeat itself until `max_tokens` ("which is a
combination of Unicode Normalization Forms, which is a combination of …",
「！！！！…」): the rest of the answer is noise, and the time to write it is wasted.
The answer is read as words (runs of ASCII letters and digits) and single other
characters (a Japanese character, a punctuation mark), so it works without spaces
too; it loops when it ends in the same block of such units three times in a row,
and in at least `MIN_UNITS` units, so that "no, no, no" or 「ままま」 are not loops.
A block of punctuation alone is never a loop: a table's `|---|---|---|` or a rule of
dashes is formatting.
"""

from __future__ import annotations

import math
import re

MIN_UNITS = 12     # the repeated tail is at least this long
MIN_REPEATS = 3    # copies of the block, the last one complete
MAX_PERIOD = 60    # longest block looked for, in units

_UNIT = re.compile(r"[A-Za-z0-9]+|\S")


def units(text: str) -> list[str]:
    return _UNIT.findall(text)


def loops(text: str, repeats: int = MIN_REPEATS) -> bool:
    """Whether `text` ends in a block repeated `repeats` times or more (at least `MIN_UNITS` units)."""
    tail = units(text)[-(MAX_PERIOD * repeats + MIN_UNITS):]
    for period in range(1, MAX_PERIOD + 1):
        needed = max(repeats, math.ceil(MIN_UNITS / period))
        if needed * period > len(tail):
            break
        block = tail[-period:]
        if not any(unit.isalnum() for unit in block):
            continue
        if all(tail[-(i + 1) * period: len(tail) - i * period] == block for i in range(1, needed)):
            return True
    return False
