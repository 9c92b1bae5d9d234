"""Cutting long text to a word budget at sentence boundaries (shared by the splits and the packaged pools)."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def clip_words(text: str, words: int) -> str:
    """The first whole sentences of `text` within `words` words (the first sentence cut to `words`
    when it alone is longer): a news lead keeps the gist, and the template around it stays whole."""
    if len(text.split()) <= words:
        return text
    kept, count = [], 0
    for sentence in sentences(text):
        n = len(sentence.split())
        if kept and count + n > words:
            break
        kept.append(sentence)
        count += n
    return " ".join(" ".join(kept).split()[:words])
