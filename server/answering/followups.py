"""Follow-up questions: a question that leans on earlier turns, rewritten into a standalone search query.

「それはいつ導入された？」 or "And its memory cost?" finds nothing by itself: "それ"
and "its" point back at the previous question. When the conversation has one, a
follow-up is rewritten — by the generator when it writes the question's language,
else by a rule that carries the key terms of the previous questions (the keyword
tokenizer's nouns and names) in front of the new question.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from indexer.text.keywords import KeywordTokenizer
from indexer.text.language import detect_language
from server.answering.generators import TextGenerationLimits, TextGenerator

log = logging.getLogger("yomitoki.answering")
MAX_CARRIED_TERMS = 8
REWRITE_TOKENS = 64
REWRITE_TIME_S = 20.0

# Words that point back at something said before, or continue from it. English words are matched
# whole ("one-hot" is not "one"); Japanese ones must be whole words of the keyword analyser, so that
# それぞれ ("each") or あれこれ is not それ or あれ.
_BACK_REFERENCE = re.compile(
    r"\b(it|its|it's|they|them|their|theirs|this|that|these|those|he|she|his|her|former|latter|"
    r"the same|ones?)\b(?!-)|^\s*(and|but|also|what about|how about|then|so|or)\b|"
    r"^\s*(では|じゃあ|また|なら|ちなみに|で、)", re.I)
_JAPANESE_BACK_REFERENCE = frozenset({
    "それ", "その", "そこ", "そちら", "これ", "この", "ここ", "こちら", "あれ", "あの", "あそこ",
    "前者", "後者", "彼", "彼女", "同様"})
# Question words and light words that carry no topic (kept out of the carried terms).
_NOT_TOPICAL = frozenset({
    "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "do", "does", "did", "can",
    "could", "would", "should", "will", "shall", "may", "might", "must", "has", "have", "had", "been",
    "being", "there", "here", "about", "into", "than", "then", "also", "more", "most", "much", "many",
    "some", "any", "each", "other", "such", "not", "no", "yes", "you", "your", "we", "our", "they", "them",
    "its", "it's", "his", "her", "their", "one", "ones", "mean", "means", "use", "used", "uses", "work",
    "works", "happen", "happens", "get", "gets", "make", "makes", "give", "gives", "explain", "describe",
    "tell", "me", "if", "so", "but", "and", "or", "vs", "versus", "between", "kind", "way", "thing",
    "何", "時", "事", "物", "方", "為", "際", "中", "場合", "的", "等", "様", "所", "訳", "点",
})
_HIRAGANA = re.compile(r"[\u3041-\u309f]")
_JAPANESE = re.compile(r"[\u3041-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")
REWRITE_INSTRUCTIONS = (
    "Rewrite the last question of this conversation as one standalone search query that names what "
    "the question is about, in the language of the last question. Reply with the query only.")


@dataclass(frozen=True)
class Turn:
    role: str       # "user" or "assistant"
    content: str


def is_follow_up(question: str, keywords: KeywordTokenizer) -> bool:
    """True when `question` points back at an earlier turn ("it", 「それ」, "And …")."""
    if _BACK_REFERENCE.search(question):
        return True
    return bool(_JAPANESE.search(question)) and any(
        question[term.start:term.end] in _JAPANESE_BACK_REFERENCE for term in keywords.words(question))


def key_terms(text: str, keywords: KeywordTokenizer) -> list[str]:
    """The topical words of `text` as written: names and nouns, not question or function words."""
    terms: list[str] = []
    for term in keywords.words(text):
        surface = text[term.start:term.end].strip()
        if not surface or surface.lower() in _NOT_TOPICAL or term.text in _NOT_TOPICAL:
            continue
        if _JAPANESE.search(surface):
            if _HIRAGANA.search(surface):  # verbs, adjectives and particles carry okurigana or are kana
                continue
        elif len(surface) < 2 and not surface.isdigit() and not surface.isupper():
            continue
        terms.append(surface)
    return list(dict.fromkeys(terms))


def rule_rewrite(question: str, history: Sequence[Turn], keywords: KeywordTokenizer) -> str | None:
    """The question with the key terms of the previous questions in front; None if it stands alone."""
    context = ""
    for turn in history:
        if turn.role == "user" and turn.content.strip():
            context = _carry(turn.content, context, keywords)
    if not context or not is_follow_up(question, keywords):
        return None
    own = {t.lower() for t in key_terms(question, keywords)}
    carried = [t for t in key_terms(context, keywords) if t.lower() not in own][-MAX_CARRIED_TERMS:]
    if not carried:
        return None
    return f"{' '.join(carried)} {question.strip()}"


def _carry(question: str, context: str, keywords: KeywordTokenizer) -> str:
    """The standalone form of one user turn, given the standalone form of the one before."""
    if context and is_follow_up(question, keywords):
        return rule_rewrite(question, [Turn("user", context)], keywords) or question
    return question


def generator_rewrite(question: str, history: Sequence[Turn], generator: TextGenerator) -> str | None:
    """The generator's standalone query; None when it gave nothing usable."""
    lines = [f"{'User' if t.role == 'user' else 'Assistant'}: {' '.join(t.content.split())[:1000]}"
             for t in history[-6:]]
    prompt = "Conversation:\n" + "\n".join(lines) + f"\nUser: {question.strip()}\n\n{REWRITE_INSTRUCTIONS}"
    try:
        text = "".join(generator.stream([{"role": "user", "content": prompt}],
                                        TextGenerationLimits(REWRITE_TOKENS, REWRITE_TIME_S), threading.Event()))
    except Exception as exc:  # the rule stands in for a generator that failed
        log.warning("follow-up rewrite by %s failed (%s); using the rule", generator.name, exc)
        return None
    query = " ".join(text.strip().strip('"「」').split())
    if not query or len(query) > 500 or detect_language(query) != detect_language(question):
        return None
    return query


def standalone_query(question: str, history: Sequence[Turn], keywords: KeywordTokenizer,
                     generator: TextGenerator | None = None) -> str | None:
    """The search query for a follow-up question, or None when the question stands alone."""
    if not any(t.role == "user" for t in history) or not is_follow_up(question, keywords):
        return None
    if generator is not None and detect_language(question) in generator.languages:
        rewritten = generator_rewrite(question, history, generator)
        if rewritten:
            return rewritten
    return rule_rewrite(question, history, keywords)
