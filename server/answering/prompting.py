"""The generator's prompt, and the `[n]` citations in what it writes.

The prompt gives the passages numbered `[1]…[n]` and tells the model to answer
only from them and to cite them (through the model's chat template). Citations are checked as the text streams:
`CitationFilter` holds back a bracketed group until it closes, rewrites
`[Passage 2]` or `[1,2]` to the plain form, and drops numbers that name no
passage the model was shown, so every `[n]` a client sees resolves.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from server.answering.passages import Passage

INSTRUCTIONS = ("Answer the question using only the passages above, and cite the passage number "
                "in square brackets like [1].")
_CITATION = re.compile(r"\[\s*(?:passages?\s*)?(\d{1,3}(?:\s*(?:,|and)\s*(?:passages?\s*)?\d{1,3})*)\s*\]", re.I)
_CITATION_PREFIX = re.compile(r"\[\s*(?:p(?:a(?:s(?:s(?:a(?:g(?:e(?:s)?)?)?)?)?)?)?\s*)?[\d\s,and]*$", re.I)
_MAX_HELD = 40  # characters held back while waiting for a bracket to close


def passage_block(passage: Passage) -> str:
    text = " ".join(passage.hit.text.split())
    title = passage.hit.title.strip()
    return f"[{passage.n}] {title}: {text}" if title and not text.startswith(title) else f"[{passage.n}] {text}"


def build_prompt(question: str, passages: Sequence[Passage], earlier: str = "") -> list[dict[str, str]]:
    """One user message: the numbered passages, the instructions, then the question in the user's words
    (after the `earlier` question that a follow-up points back at).

    Passages first and the question last, in a single message, is the layout small instruction
    models follow best: with SmolLM2-135M a separate system message made it drift off the passages
    more often (compared on the default corpus while building this).
    """
    blocks = "\n\n".join(passage_block(p) for p in passages)
    before = f"Earlier question: {' '.join(earlier.split())[:1000]}\n" if earlier.strip() else ""
    return [{"role": "user",
             "content": f"Passages:\n{blocks}\n\n{INSTRUCTIONS}\n{before}Question: {question.strip()}"}]


def _rewrite(match: re.Match[str], valid: range) -> str:
    numbers = [int(n) for n in re.findall(r"\d+", match.group(1))]
    kept = list(dict.fromkeys(n for n in numbers if n in valid))
    return "".join(f"[{n}]" for n in kept)


def resolve_citations(text: str, count: int) -> str:
    """`text` with each citation group in plain `[n]` form and numbers outside 1..count dropped."""
    valid = range(1, count + 1)
    return _CITATION.sub(lambda m: _rewrite(m, valid), text)


def cited_numbers(text: str) -> list[int]:
    """The passage numbers cited in `text`, in order of first citation."""
    found = (int(n) for m in _CITATION.finditer(text) for n in re.findall(r"\d+", m.group(1)))
    return list(dict.fromkeys(found))


class CitationFilter:
    """Streams text through `resolve_citations`, holding back an unfinished `[…` group."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._held = ""

    def feed(self, piece: str) -> str:
        text = self._held + piece
        open_at = text.rfind("[")
        if open_at >= 0 and "]" not in text[open_at:] and len(text) - open_at <= _MAX_HELD \
                and _CITATION_PREFIX.match(text, open_at):
            self._held, text = text[open_at:], text[:open_at]
        else:
            self._held = ""
        return resolve_citations(text, self.count)

    def flush(self) -> str:
        """What is left when the answer ends: nothing, since a group still open then (`[Pas`, `[2`, an answer
        cut at max_tokens) can never become a citation that resolves."""
        self._held = ""
        return ""
