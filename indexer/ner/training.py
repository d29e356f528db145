"""Labelled entity examples (spans or IOB2) and fine-tuning a spaCy NER component on them, on the CPU.

An example is one JSON object, either with character spans

    {"text": "山田太郎はトヨタ自動車に入った。",
     "entities": [{"start": 0, "end": 4, "type": "人名"}, {"span": [5, 11], "type": "法人名"}]}

or with tokens and IOB2 tags (Japanese tokens are joined without spaces, others with one,
unless `spaces` says per token whether a space follows it)

    {"tokens": ["山田", "太郎", "は"], "tags": ["B-人名", "I-人名", "O"]}

Spans are checked (inside the text, not empty, not overlapping), tags too (an I- tag
must continue a B- or I- of the same type). Fine-tuning starts from a spaCy pipeline
(GiNZA by default), adds the examples' types to its NER component and trains it with
its tok2vec; only the examples' types are reported afterwards.
"""

from __future__ import annotations

import random
import time
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from indexer.errors import InputError
from indexer.ner.pipelines import DEFAULT_JA_MODEL, SpacyEntityModel, load_spacy_model
from indexer.ner.scoring import SpanScores, score_spans
from indexer.text.language import is_japanese
from indexer.text.normalize import normalize

Labelled = tuple[int, int, str]
MIN_HOLDOUT_EXAMPLES = 50   # below this every example trains and no F1 is measured


class TrainingDataError(InputError):
    """Labelled examples that cannot be used; the message says which one and why."""


@dataclass(frozen=True)
class LabelledText:
    text: str
    entities: tuple[Labelled, ...]   # (start, end, type) into `text`, sorted, not overlapping


@dataclass(frozen=True)
class TrainOptions:
    base: str = DEFAULT_JA_MODEL
    epochs: int = 10
    batch_sizes: tuple[float, float] = (4.0, 32.0)  # compounding batch size, as spaCy's own training
    dropout: float = 0.2
    learn_rate: float = 0.001     # spaCy's default for Adam
    holdout: float = 0.2          # share held out to measure F1 (when there are MIN_HOLDOUT_EXAMPLES or more)
    seed: int = 0
    max_seconds: float | None = None  # stop when fine-tuning has taken this long


@dataclass(frozen=True)
class TrainedEntities:
    model: SpacyEntityModel
    labels: tuple[str, ...]
    trained_on: int
    held_out: int
    epochs: int
    seconds: float
    metrics: SpanScores | None


def _checked_spans(text: str, spans: Iterable[Labelled], where: str) -> tuple[Labelled, ...]:
    ordered = sorted(spans)
    for start, end, label in ordered:
        if not 0 <= start < end <= len(text):
            raise TrainingDataError(f"{where}: span ({start}, {end}) is not inside the text of length {len(text)}")
        if not label.strip():
            raise TrainingDataError(f"{where}: span ({start}, {end}) has an empty type")
    for (s1, e1, t1), (s2, e2, t2) in pairwise(ordered):
        if s2 < e1:
            raise TrainingDataError(f"{where}: spans ({s1}, {e1}, {t1}) and ({s2}, {e2}, {t2}) overlap")
    return tuple(ordered)


def _span(entity: Any, where: str) -> Labelled:
    if not isinstance(entity, Mapping):
        raise TrainingDataError(f"{where}: each entity is an object with start, end and type")
    bounds = entity.get("span", [entity.get("start"), entity.get("end")])
    label = entity.get("type", entity.get("label"))
    if (not isinstance(bounds, list | tuple) or len(bounds) != 2 or not all(type(b) is int for b in bounds)
            or not isinstance(label, str)):
        raise TrainingDataError(f"{where}: an entity needs integer start and end (or span [start, end]) and a "
                                "type")
    return int(bounds[0]), int(bounds[1]), label


def iob2_spans(tags: Sequence[str], where: str) -> list[tuple[int, int, str]]:
    """Token-index spans (first, past-last, type) of IOB2 tags; an I- must continue its own type."""
    spans: list[tuple[int, int, str]] = []
    open_type: str | None = None
    for i, tag in enumerate(tags):
        prefix, _, label = tag.partition("-")
        if tag == "O":
            open_type = None
        elif prefix == "B" and label:
            spans.append((i, i + 1, label))
            open_type = label
        elif prefix == "I" and label:
            if open_type != label:
                after = tags[i - 1] if i else "the start"
                raise TrainingDataError(f"{where}: token {i} has {tag} after {after} (IOB2 starts an entity with B-)")
            spans[-1] = (spans[-1][0], i + 1, label)
        else:
            raise TrainingDataError(f"{where}: token {i} has tag {tag!r}; IOB2 tags are O, B-TYPE or I-TYPE")
    return spans


def _from_tokens(row: Mapping[str, Any], where: str) -> LabelledText:
    tokens, tags, spaces = row.get("tokens"), row.get("tags"), row.get("spaces")
    if (not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags) or not tokens
            or not all(isinstance(t, str) and t for t in tokens) or not all(isinstance(t, str) for t in tags)):
        raise TrainingDataError(f"{where}: tokens and tags must be lists of strings of the same, non-zero length")
    if spaces is None:
        spaced = not any(is_japanese(ch) for token in tokens for ch in token)
        spaces = [spaced] * len(tokens)
    if not isinstance(spaces, list) or len(spaces) != len(tokens):
        raise TrainingDataError(f"{where}: spaces must be one true/false per token")
    starts, text = [], ""
    for token, space in zip(tokens, spaces, strict=True):
        starts.append(len(text))
        text += token + (" " if space else "")
    spans = [(starts[a], starts[b - 1] + len(tokens[b - 1]), label) for a, b, label in iob2_spans(tags, where)]
    return LabelledText(text.rstrip(" "), tuple(spans))


def parse_example(row: Any, where: str) -> LabelledText:
    """One example from its JSON form (spans or IOB2); `where` names it in errors."""
    if not isinstance(row, Mapping):
        raise TrainingDataError(f"{where}: expected an object with text and entities, or tokens and tags")
    if "tokens" in row:
        return _from_tokens(row, where)
    text, entities = row.get("text"), row.get("entities", [])
    if not isinstance(text, str) or not text.strip() or not isinstance(entities, list):
        raise TrainingDataError(f"{where}: expected {{\"text\": …, \"entities\": [{{\"start\", \"end\", \"type\"}}]}}")
    return LabelledText(text, _checked_spans(text, [_span(e, where) for e in entities], where))


def parse_examples(rows: Sequence[Any], source: str = "examples") -> list[LabelledText]:
    examples = [parse_example(row, f"{source}[{i}]") for i, row in enumerate(rows)]
    if not examples:
        raise TrainingDataError(f"{source}: no examples")
    if not any(e.entities for e in examples):
        raise TrainingDataError(f"{source}: no example has an entity; label some first")
    return examples


def to_normalized(example: LabelledText) -> LabelledText:
    """The example in NFKC-normalized text, spans moved along (what the model sees at run time)."""
    norm = normalize(example.text)
    spans = []
    for start, end, label in example.entities:
        s, e = bisect_left(norm.starts, start), bisect_right(norm.ends, end)
        if e > s:
            spans.append((s, e, label))
    return LabelledText(norm.text, tuple(spans))


def check_token_boundaries(doc: Any, example: LabelledText, where: str, base: str) -> None:
    """Refuse a span that cuts one of the model's tokens: spaCy would quietly learn nothing from it (GiNZA
    reads 東京都庁 as one token, so 東京 inside it cannot be an entity of its own)."""
    for start, end, label in example.entities:
        if doc.char_span(start, end) is None:
            cut = [t.text for t in doc if t.idx < end and start < t.idx + len(t.text)
                   and not (start <= t.idx and t.idx + len(t.text) <= end)]
            raise TrainingDataError(
                f"{where}: the {label} span {example.text[start:end]!r} ({start}-{end}) cuts the token "
                f"{', '.join(map(repr, cut)) or '?'} of {base}, which reads {example.text!r} as "
                f"{' | '.join(t.text for t in doc)}; label whole tokens")


def split_holdout(examples: Sequence[LabelledText], share: float, seed: int) -> tuple[list[LabelledText],
                                                                                       list[LabelledText]]:
    """(train, held out): a seeded shuffle; nothing held out below MIN_HOLDOUT_EXAMPLES or at share 0."""
    if share <= 0 or len(examples) < MIN_HOLDOUT_EXAMPLES:
        return list(examples), []
    order = list(examples)
    random.Random(seed).shuffle(order)
    cut = max(1, round(len(order) * share))
    return order[cut:], order[:cut]


def fine_tune(examples: Sequence[LabelledText], options: TrainOptions | None = None) -> TrainedEntities:
    """Fine-tune the base pipeline's NER on the examples; F1 on a held-out share when there are enough."""
    from spacy.training import Example
    from spacy.util import compounding, fix_random_seed, minibatch

    options = options or TrainOptions()
    started = time.perf_counter()
    fix_random_seed(options.seed)  # dropout and initial weights: the same examples and seed train the same model
    normalized = [to_normalized(e) for e in examples]
    model = load_spacy_model(options.base)
    nlp, ner = model.nlp, model.nlp.get_pipe("ner")
    for number, example in enumerate(normalized):
        check_token_boundaries(nlp.make_doc(example.text), example, f"examples[{number}]", options.base)
    train, held_out = split_holdout(normalized, options.holdout, options.seed)
    labels = tuple(sorted({label for e in train for _, _, label in e.entities}))
    for label in labels:
        ner.add_label(label)
    gold = [Example.from_dict(nlp.make_doc(e.text), {"entities": list(e.entities)}) for e in train]
    optimizer = nlp.resume_training()
    optimizer.learn_rate = options.learn_rate
    rng = random.Random(options.seed)
    sizes = compounding(*options.batch_sizes, 1.001)
    deadline = started + options.max_seconds if options.max_seconds is not None else None
    epochs = 0
    while epochs < options.epochs and (deadline is None or time.perf_counter() < deadline):
        epochs += 1
        rng.shuffle(gold)
        for batch in minibatch(gold, size=sizes):
            nlp.update(batch, sgd=optimizer, drop=options.dropout, losses={})
            if deadline is not None and time.perf_counter() > deadline:
                break
    tuned = SpacyEntityModel(name=model.name, location=model.location, nlp=nlp, only=labels)
    metrics = evaluate(tuned, held_out) if held_out else None
    return TrainedEntities(tuned, labels, len(train), len(held_out), epochs, time.perf_counter() - started,
                           metrics)


def evaluate(model: SpacyEntityModel | Any, examples: Sequence[LabelledText],
             mapping: Mapping[str, str] | None = None) -> SpanScores:
    """Exact span-and-type precision, recall and F1 of `model` over (normalized) examples."""
    found = model.analyse([e.text for e in examples])
    predicted = [[(s, e, mapping.get(t) if mapping is not None else t) for s, e, t in a.entities] for a in found]
    predicted = [[p for p in row if p[2] is not None] for row in predicted]
    return score_spans([list(e.entities) for e in examples], predicted)  # type: ignore[arg-type]
