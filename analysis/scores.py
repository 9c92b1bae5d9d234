"""Task scores (the paper's Tables 3 and 4) and the frames built from them. Pure: no Ray, no models.

Every score is on a 0-100 scale, as in the paper:
- accuracy: percentage of predictions equal to the reference after light normalisation (case,
  surrounding whitespace and final punctuation). For classification the prediction is the
  option ranked first by log-likelihood, so this is plain multiple-choice accuracy;
- rouge_l: mean ROUGE-L F-measure (Google's `rouge-score`, Porter stemming);
- bleu: corpus BLEU (`sacrebleu`, default 13a tokenisation).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import polars as pl

METRICS = ("accuracy", "rouge_l", "bleu")
EVAL_COLUMNS = ("model", "task", "cluster", "metric", "score", "n")


def normalize_answer(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower()).rstrip(".!?").strip()


def accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    _same_length(predictions, references)
    hits = [normalize_answer(p) == normalize_answer(r) for p, r in zip(predictions, references)]
    return 100.0 * float(np.mean(hits))


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    from rouge_score import rouge_scorer

    _same_length(predictions, references)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return 100.0 * float(np.mean([scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references)]))


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    _same_length(predictions, references)
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def task_score(metric: str, predictions: Sequence[str], references: Sequence[str]) -> float:
    """The score of one model on one task by the task's metric ("accuracy" | "rouge_l" | "bleu")."""
    funcs = {"accuracy": accuracy, "rouge_l": rouge_l, "bleu": bleu}
    if metric not in funcs:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    return funcs[metric](predictions, references)


def _same_length(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        raise ValueError("no predictions to score")


def comparison_table(scores: pl.DataFrame) -> pl.DataFrame:
    """Tables 3/4 layout: one row per task, grouped by cluster, scores of each model side by side.

    Columns: cluster, task, metric, n, then one column per model present (pretrained, multitask,
    control, in that order) and multitask_minus_control when both are there.
    """
    order = [m for m in ("pretrained", "multitask", "control") if (scores["model"] == m).any()]
    order += sorted(set(scores["model"].unique().to_list()) - set(order))
    wide = (scores.pivot(on="model", index=["cluster", "task", "metric"], values="score")
            .join(scores.group_by("task").agg(pl.col("n").max()), on="task"))
    if {"multitask", "control"} <= set(order):
        wide = wide.with_columns((pl.col("multitask") - pl.col("control")).alias("multitask_minus_control"))
    extra = ["multitask_minus_control"] if "multitask_minus_control" in wide.columns else []
    clusters = list(dict.fromkeys(scores["cluster"].to_list()))
    return (wide.with_columns(pl.col("cluster").replace_strict({c: i for i, c in enumerate(clusters)}).alias("_c"))
            .sort("_c", maintain_order=True).select("cluster", "task", "metric", "n", *order, *extra))


def score_cka_frame(scores: pl.DataFrame, cka: pl.DataFrame, layers: Sequence[int]) -> pl.DataFrame:
    """Each (experimental model, task): its score, the control's score and its mean CKA with the
    control over `layers` (e.g. the layer map's transition layers).

    Columns: experimental, task, cluster, metric, cka, score, control_score, score_minus_control.
    """
    layers = list(layers)
    mean_cka = (cka.filter(pl.col("layer").is_in(layers))
                .group_by("experimental", "task").agg(pl.col("cka").mean()))
    control = scores.filter(pl.col("model") == "control").select("task", pl.col("score").alias("control_score"))
    return (scores.rename({"model": "experimental"})
            .join(mean_cka, on=["experimental", "task"], how="inner")
            .join(control, on="task", how="left")
            .with_columns((pl.col("score") - pl.col("control_score")).alias("score_minus_control"))
            .select("experimental", "task", "cluster", "metric", "cka", "score", "control_score",
                    "score_minus_control")
            .sort("experimental", "task"))
