"""Where a label's cosine stops meaning "unrelated", measured per model instead of fixed.

Zero-shot `multi_label` asks of each label on its own whether it applies, so it
needs a cosine above which a text is taken to be about the label. No single
number serves every model: all-MiniLM-L6-v2 puts unrelated sentences near 0.0–0.2,
multilingual-e5-small near 0.70–0.80 (its cosines sit in a narrow, high band), and
a label's wording and template move the band too ("This text is about {}." is
closer to any English sentence than a bare word is).

So the threshold is read off the model itself: each label prompt is compared with
a fixed set of everyday sentences on sixteen unrelated topics in the prompt's
language (`REFERENCE`, not drawn from any test set), and the label's threshold is
the median of those cosines plus `SPREADS` robust standard deviations (1.4826 ×
the median absolute deviation). A text must sit that far above what the model
gives an arbitrary sentence to count as about the label; the median and MAD keep
the one reference sentence that may share the label's topic from moving it. The
reference sentences are embedded once per model and kept (`ReferenceCache`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from indexer.embed.base import Embedder
from indexer.text.language import detect_language
from server.nlp.encoding import embed_texts

SPREADS = 1.645  # robust standard deviations above the unrelated median: their one-sided 95th percentile
REFERENCE = {
    "en": (
        "It will rain this afternoon and the temperature will drop by five degrees.",
        "Fry the onions until golden, then add the rice and stir.",
        "The goalkeeper saved a penalty in the final minute.",
        "We took the night train to the coast and stayed in a small inn.",
        "The central bank raised interest rates by a quarter point.",
        "Drink plenty of water and rest if you have a fever.",
        "The orchestra played a symphony by Brahms last night.",
        "Restart the router if the laptop cannot connect to the network.",
        "The court ruled that the contract was not valid.",
        "Our cat sleeps on the windowsill most of the day.",
        "The students handed in their homework before the exam.",
        "Voters will elect a new mayor next month.",
        "Plant the tomato seedlings after the last frost.",
        "The mechanic replaced the brake pads on my car.",
        "The shop gives a discount on shoes during the sale.",
        "A comet will be visible in the northern sky this week.",
    ),
    "ja": (
        "午後から雨になり、気温は五度ほど下がる見込みです。",
        "玉ねぎをきつね色になるまで炒めてから米を加える。",
        "ゴールキーパーが試合終了間際のペナルティキックを止めた。",
        "夜行列車で海辺の町へ行き、小さな宿に泊まった。",
        "中央銀行が政策金利を0.25%引き上げた。",
        "熱があるときは水分をよくとって休んでください。",
        "昨夜、オーケストラがブラームスの交響曲を演奏した。",
        "ノートパソコンがネットにつながらないときはルーターを再起動する。",
        "裁判所はその契約を無効と判断した。",
        "うちの猫は一日の大半を窓辺で眠って過ごす。",
        "学生たちは試験の前に宿題を提出した。",
        "来月の選挙で新しい市長が選ばれる。",
        "遅霜の心配がなくなってからトマトの苗を植える。",
        "整備士が車のブレーキパッドを交換した。",
        "セール期間中は靴が割引になる。",
        "今週は北の空に彗星が見える。",
    ),
}
ROBUST_SIGMA = 1.4826  # MAD × this estimates the standard deviation of a normal sample


class ReferenceCache:
    """The reference sentences' vectors per model (name, revision, backend) and kind of text (`embed_for`:
    classification compares them symmetrically, answering's relevance reads them as passages), embedded once."""

    def __init__(self, size: int = 8) -> None:
        self._vectors: OrderedDict[tuple[str, ...], dict[str, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    @staticmethod
    def _key(embedder: Embedder, kind: str) -> tuple[str, ...]:
        described = embedder.describe()
        return (*(str(described.get(k)) for k in ("name", "revision", "backend")), kind)

    def holds(self, embedder: Embedder, kind: str = "symmetric") -> bool:
        """Whether this model's vectors of this kind are embedded already."""
        with self._lock:
            return self._key(embedder, kind) in self._vectors

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()

    def vectors(self, embedder: Embedder, kind: str = "symmetric") -> dict[str, np.ndarray]:
        key = self._key(embedder, kind)
        with self._lock:
            if key in self._vectors:
                self._vectors.move_to_end(key)
                return self._vectors[key]
        vectors = {lang: embed_texts(embedder, texts, kind=kind) for lang, texts in REFERENCE.items()}
        with self._lock:
            self._vectors[key] = vectors
            while len(self._vectors) > self._size:
                self._vectors.popitem(last=False)
        return vectors


REFERENCES = ReferenceCache()


def label_thresholds(embedder: Embedder, prompts: Sequence[str], prompt_vectors: np.ndarray,
                     cache: ReferenceCache = REFERENCES) -> np.ndarray:
    """Per label prompt: the cosine a text must reach to count as about it (see the module's docstring)."""
    references = cache.vectors(embedder)
    out = np.empty(len(prompts), dtype=np.float32)
    for i, (prompt, vector) in enumerate(zip(prompts, prompt_vectors, strict=True)):
        cosines = references.get(detect_language(prompt), references["en"]) @ vector
        median = float(np.median(cosines))
        spread = ROBUST_SIGMA * float(np.median(np.abs(cosines - median)))
        out[i] = median + SPREADS * spread
    return out
