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

from analysis.roles import CKA, CONTROL, MULTITASK, OLD_TUNED_MINUS_CONTROL, PRETRAINED, TUNED_MINUS_CONTROL

METRICS = ("accuracy", "rouge_l", "bleu")
EVAL_COLUMNS = ("model", "task", "cluster", "metric", "score", "ci_low", "ci_high", "n")
# TUNED_MINUS_CONTROL is the `experimental` model's score minus C_t's: E's, or a published checkpoint's;
# OLD_TUNED_MINUS_CONTROL, its former name, is a copy of it for one release.
GAP_COLUMNS = ("experimental", "task", "cluster", "metric", "n", TUNED_MINUS_CONTROL, "ci_low", "ci_high", "verdict",
               OLD_TUNED_MINUS_CONTROL)


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


def _resampled(metric: str, predictions: Sequence[str], references: Sequence[str], idx: np.ndarray) -> np.ndarray:
    """The task score on each bootstrap resample (rows of idx) of the examples."""
    if metric == "bleu":  # corpus-level: each resample's BLEU from its sentences' summed n-gram statistics
        return _resampled_bleu(predictions, references, idx)
    per_example = np.array([_per_example(metric, p, r) for p, r in zip(predictions, references)])
    return per_example[idx].mean(axis=1)


def _resampled_bleu(predictions: Sequence[str], references: Sequence[str], idx: np.ndarray) -> np.ndarray:
    """Corpus BLEU on each resample, as sacrebleu's own bootstrap (sacrebleu.significance) computes it:
    every sentence tokenised once, its statistics summed per resample. Equals `bleu` on the resampled lists."""
    from sacrebleu.metrics import BLEU

    scorer = BLEU()
    stats = np.array(scorer._extract_corpus_statistics(list(predictions), [list(references)]))
    return np.array([scorer._compute_score_from_stats(rows.sum(axis=0)).score for rows in stats[idx]])


def _per_example(metric: str, prediction: str, reference: str) -> float:
    if metric == "accuracy":
        return 100.0 * (normalize_answer(prediction) == normalize_answer(reference))
    return rouge_l([prediction], [reference])


def _draws(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def score_with_ci(metric: str, predictions: Sequence[str], references: Sequence[str], *, n_boot: int = 1000,
                  seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """(score, ci_low, ci_high): a percentile bootstrap over the test examples."""
    score = task_score(metric, predictions, references)
    values = _resampled(metric, predictions, references, _draws(len(predictions), n_boot, seed))
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return score, float(lo), float(hi)


def paired_gap(metric: str, predictions_a: Sequence[str], predictions_b: Sequence[str], references: Sequence[str], *,
               n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """(score_a - score_b, ci_low, ci_high) on the same examples: a paired bootstrap (both models are
    scored on each resample), so the interval reflects the gap, not the two scores' own spreads."""
    gap = task_score(metric, predictions_a, references) - task_score(metric, predictions_b, references)
    idx = _draws(len(references), n_boot, seed)
    values = _resampled(metric, predictions_a, references, idx) - _resampled(metric, predictions_b, references, idx)
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return gap, float(lo), float(hi)


def score_frame(predictions: pl.DataFrame, n_boot: int = 1000, seed: int = 0) -> pl.DataFrame:
    """eval.parquet: one row per (model, task) with its score and 95% CI.

    predictions: example_id, model, prediction, task, cluster, metric, target (one row per scored example)."""
    records = []
    for (model, task, cluster, metric), group in predictions.group_by("model", "task", "cluster", "metric"):
        group = group.sort("example_id")
        score, lo, hi = score_with_ci(metric, group["prediction"].to_list(), group["target"].to_list(),
                                      n_boot=n_boot, seed=seed)
        records.append({"model": model, "task": task, "cluster": cluster, "metric": metric, "score": score,
                        "ci_low": lo, "ci_high": hi, "n": group.height})
    order = {PRETRAINED: 0, MULTITASK: 1, CONTROL: 2}
    tasks = {task: i for i, task in enumerate(dict.fromkeys(predictions["task"].to_list()))}
    schema = {"model": pl.String, "task": pl.String, "cluster": pl.String, "metric": pl.String, "score": pl.Float64,
              "ci_low": pl.Float64, "ci_high": pl.Float64, "n": pl.Int64}
    return (pl.DataFrame(records, schema=schema)
            .sort(pl.col("model").replace_strict(order, default=3), pl.col("task").replace_strict(tasks, default=-1))
            .select(EVAL_COLUMNS))


def gap_frame(predictions: pl.DataFrame, n_boot: int = 1000, seed: int = 0,
              tuned: Sequence[str] = (MULTITASK,)) -> pl.DataFrame:
    """Each tuned experimental model (E, the published ones) - C_t per task with a paired-bootstrap CI;
    `verdict` calls it a difference only when the CI excludes zero ("multitask better", "control
    better", else "no difference"; a published model's label in place of "multitask")."""
    records = []
    for model in tuned:
        for (task, cluster, metric), group in predictions.group_by("task", "cluster", "metric", maintain_order=True):
            wide = (group.filter(pl.col("model").is_in([model, CONTROL]))
                    .pivot(on="model", index=["example_id", "target"], values="prediction").drop_nulls()
                    .sort("example_id"))
            if model not in wide.columns or CONTROL not in wide.columns or wide.is_empty():
                continue
            gap, lo, hi = paired_gap(metric, wide[model].to_list(), wide[CONTROL].to_list(), wide["target"].to_list(),
                                     n_boot=n_boot, seed=seed)
            verdict = f"{model} better" if lo > 0 else "control better" if hi < 0 else "no difference"
            records.append({"experimental": model, "task": task, "cluster": cluster, "metric": metric, "n": wide.height,
                            TUNED_MINUS_CONTROL: gap, "ci_low": lo, "ci_high": hi, "verdict": verdict})
    schema = {"experimental": pl.String, "task": pl.String, "cluster": pl.String, "metric": pl.String, "n": pl.Int64,
              TUNED_MINUS_CONTROL: pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64, "verdict": pl.String}
    return (pl.DataFrame(records, schema=schema)
            .with_columns(pl.col(TUNED_MINUS_CONTROL).alias(OLD_TUNED_MINUS_CONTROL)).select(GAP_COLUMNS))


def gap_column(gaps: pl.DataFrame) -> str:
    """The column of eval_gaps holding the tuned model's score minus C_t's: its name, or the name a
    frame written before the rename has."""
    return TUNED_MINUS_CONTROL if TUNED_MINUS_CONTROL in gaps.columns else OLD_TUNED_MINUS_CONTROL


def score_cka_frame(scores: pl.DataFrame, cka: pl.DataFrame, layers: Sequence[int]) -> pl.DataFrame:
    """Each (experimental model, task): its score, the control's score and its mean CKA with the
    control over `layers` (e.g. the layer map's transition layers).

    Columns: experimental, task, cluster, metric, cka, score, control_score, score_minus_control.
    """
    layers = list(layers)
    mean_cka = (cka.filter(pl.col("layer").is_in(layers))
                .group_by("experimental", "task").agg(pl.col(CKA).mean()))
    control = scores.filter(pl.col("model") == CONTROL).select("task", pl.col("score").alias("control_score"))
    return (scores.rename({"model": "experimental"})
            .join(mean_cka, on=["experimental", "task"], how="inner")
            .join(control, on="task", how="left")
            .with_columns((pl.col("score") - pl.col("control_score")).alias("score_minus_control"))
            .select("experimental", "task", "cluster", "metric", CKA, "score", "control_score",
                    "score_minus_control")
            .sort("experimental", "task"))
