"""Per-task statistics that the analysis correlates with CKA: size and instruction readability."""

from __future__ import annotations

import re
from collections.abc import Mapping

import polars as pl

from tasks.registry import get_task
from tasks.splits import TaskSplits


def _has_cmudict() -> bool:
    try:
        import nltk

        nltk.data.find("corpora/cmudict")
        return True
    except (ImportError, LookupError):
        return False


def _fk_grade_offline(text: str) -> float:
    """Flesch-Kincaid grade with pyphen syllables: textstat's own fallback for words missing
    from CMUdict, used for every word when CMUdict is not installed."""
    import pyphen
    import textstat

    words = textstat.lexicon_count(text)
    if words == 0:
        return 0.0
    dic = pyphen.Pyphen(lang="en_US")
    syllables = sum(len(dic.positions(w)) + 1 for w in re.findall(r"[A-Za-z]+", text.lower()))
    sentences = max(1, textstat.sentence_count(text))
    return 0.39 * words / sentences + 11.8 * syllables / words - 15.59


def readability(texts: list[str]) -> tuple[float, float]:
    """Mean Flesch-Kincaid grade and Coleman-Liau index of the texts (NaN when empty)."""
    import textstat  # lazy: it loads its word lists on import

    if not texts:
        return float("nan"), float("nan")
    # textstat >= 0.7.5 calls nltk.download("cmudict") when the corpus is missing: a network
    # call. Without the corpus we compute the same formula with pyphen syllables instead.
    fk_fn = textstat.flesch_kincaid_grade if _has_cmudict() else _fk_grade_offline
    fk = [fk_fn(t) for t in texts]
    cl = [textstat.coleman_liau_index(t) for t in texts]
    return float(sum(fk) / len(fk)), float(sum(cl) / len(cl))


def task_statistics(splits: Mapping[str, TaskSplits]) -> pl.DataFrame:
    """One row per task: task, cluster, train_size, flesch_kincaid, coleman_liau
    (readability means over the probe prompts, the texts whose representations are compared)."""
    rows = []
    for name, s in splits.items():
        fk, cl = readability(list(s.probe["prompt"]))
        rows.append({"task": name, "cluster": s.cluster or get_task(name).cluster, "train_size": len(s.train),
                     "flesch_kincaid": fk, "coleman_liau": cl})
    schema = {"task": pl.Utf8, "cluster": pl.Utf8, "train_size": pl.Int64, "flesch_kincaid": pl.Float64,
              "coleman_liau": pl.Float64}
    return pl.DataFrame(rows, schema=schema)
