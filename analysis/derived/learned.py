"""Did each trained model learn its task? A verdict per (model, task it was trained on). Pure: no Ray, no models.

MOSSA rests on the control C_t holding what tuning on task t teaches: if C_t never learned t, "the
pretrained model is already similar to C_t" says nothing. So every control is judged on its task,
E ("multitask") on each of its seen tasks, and each noise-floor twin on its own task, against the
pretrained model on the same held-out test examples, by the task's metric (not by format):

  yes           the paired 95% bootstrap CI of the score gain (model - pretrained, analysis.frames.scores.paired_gap)
                lies above 0 AND the validation loss fell below the pretrained model's (on the same
                validation set) by more than 2 x val_gain_se, the standard error of the paired
                per-example difference. When training.parquet does not record the pretrained model's
                validation loss or that standard error, the score alone decides and the reason says so;
  no            the gain's CI lies at or below 0 entirely (ci_high <= 0), or the validation loss did
                not fall below the pretrained model's;
  inconclusive  otherwise: the CI straddles 0 (too few test examples to tell), or the score rose but
                the validation loss fell by no more than its noise; also a model with no test
                predictions for its task (evaluation disabled, or the model was not scored).

Per model (`model_verdicts`): a control's verdict is its task's; E's is "yes" when yes on every seen
task, "no" when no on any, else "inconclusive".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import polars as pl

from analysis.frames.scores import paired_gap, task_score
from analysis.roles import CONTROL, MULTITASK, PRETRAINED

YES, NO, INCONCLUSIVE = "yes", "no", "inconclusive"
LEARNED_VERDICTS = (YES, NO, INCONCLUSIVE)
VAL_SE_MARGIN = 2.0  # the validation loss must fall by more than this many standard errors
# learned.parquet: one row per (trained model, task it was trained on).
GAIN_COLUMNS = ("model", "label", "role", "task", "metric", "n", "score", "pretrained_score", "gain", "gain_ci_low",
                "gain_ci_high")
COLUMNS = (*GAIN_COLUMNS, "best_val_loss", "pretrained_val_loss", "val_gain_se", "learned", "reason")
# What the evaluate stage adds to training.parquet, per model (the score columns: a control's; null for E).
VERDICT_COLUMNS = ("learned", "learned_reason", "score", "pretrained_score", "gain", "gain_ci_low", "gain_ci_high")
_SCHEMA = {"model": pl.String, "label": pl.String, "role": pl.String, "task": pl.String, "metric": pl.String,
           "n": pl.Int64, "score": pl.Float64, "pretrained_score": pl.Float64, "gain": pl.Float64,
           "gain_ci_low": pl.Float64, "gain_ci_high": pl.Float64, "best_val_loss": pl.Float64,
           "pretrained_val_loss": pl.Float64, "val_gain_se": pl.Float64, "learned": pl.String, "reason": pl.String}
_VAL = ("best_val_loss", "pretrained_val_loss", "val_gain_se")


def trained_rows(training: pl.DataFrame) -> pl.DataFrame:
    """training.parquet's models trained here (E, the controls, the noise-floor twins), not the published ones."""
    rows = training.filter(pl.col("role").is_in([MULTITASK, CONTROL]))
    return rows.filter(pl.col("trained")) if "trained" in rows.columns else rows


def _model_tasks(training: pl.DataFrame) -> list[dict]:
    """One record per (trained model, task it was trained on), in training.parquet's order."""
    return [{"model": r["model"], "label": r["label"], "role": r["role"], "task": task}
            for r in trained_rows(training).iter_rows(named=True) for task in (r["tasks"] or "").split(",") if task]


def score_gains(predictions: pl.DataFrame, training: pl.DataFrame, *, n_boot: int = 1000, seed: int = 0,
                level: float = 0.95) -> pl.DataFrame:
    """Each trained model's score on each task it was trained on against the pretrained model's on the
    same test examples, with the gain's paired-bootstrap CI; null scores where either has no predictions.

    predictions: eval_predictions.parquet (example_id, model = the model's label, prediction, task,
    cluster, metric, target); training: training.parquet (model, label, role, tasks, ...). Columns: GAIN_COLUMNS."""
    records = []
    for record in _model_tasks(training):
        rows = predictions.filter((pl.col("task") == record["task"])
                                  & pl.col("model").is_in([record["label"], PRETRAINED]))
        metric = rows["metric"][0] if rows.height else None
        wide = (rows.pivot(on="model", index=["example_id", "target"], values="prediction").drop_nulls()
                .sort("example_id")) if rows.height else rows
        numbers = dict.fromkeys(GAIN_COLUMNS[6:])
        n = 0
        if {record["label"], PRETRAINED} <= set(wide.columns) and wide.height:
            tuned, base, targets = wide[record["label"]].to_list(), wide[PRETRAINED].to_list(), wide["target"].to_list()
            gain, lo, hi = paired_gap(metric, tuned, base, targets, n_boot=n_boot, seed=seed, level=level)
            numbers = {"score": task_score(metric, tuned, targets), "pretrained_score": task_score(metric, base, targets),
                       "gain": gain, "gain_ci_low": lo, "gain_ci_high": hi}
            n = wide.height
        records.append({**record, "metric": metric, "n": n, **numbers})
    schema = {name: _SCHEMA[name] for name in GAIN_COLUMNS}
    return pl.DataFrame(records, schema=schema).select(GAIN_COLUMNS)


def _known(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _signed(value: float) -> str:
    return f"{value:+.3g}"  # 3 significant digits: a BLEU of 0.5 keeps its resolution, an accuracy of 62.5 too


def verdict(row: Mapping) -> tuple[str, str]:
    """(learned, reason) for one (model, task) row of score_gains joined with its validation-loss columns."""
    if not row.get("n"):
        return INCONCLUSIVE, f"no test predictions for {row['task']} (evaluation disabled, or this model not scored)"
    lo, hi = row["gain_ci_low"], row["gain_ci_high"]
    gain = (f"score {row['score']:.3g} vs the pretrained model's {row['pretrained_score']:.3g}, gain "
            f"{_signed(row['gain'])} [{_signed(lo)}, {_signed(hi)}] on {row['n']} test examples")
    best, pretrained, se = (row.get(name) for name in _VAL)
    val_known = _known(best) and _known(pretrained) and _known(se)
    drop = pretrained - best if val_known else None
    if hi <= 0:
        return NO, f"{gain}: the CI lies at or below 0"
    if val_known and drop <= 0:
        return NO, f"validation loss {best:.3f} did not fall below the pretrained model's {pretrained:.3f}"
    if lo <= 0:
        return INCONCLUSIVE, f"{gain}: the CI includes 0, too few test examples to tell"
    if not val_known:
        return YES, f"{gain}, CI above 0; the pretrained model's validation loss is not recorded, so the score alone decides"
    if drop <= VAL_SE_MARGIN * se:
        return INCONCLUSIVE, (f"{gain}, CI above 0, but validation loss fell only {drop:.3f} "
                              f"({pretrained:.3f} -> {best:.3f}), within {VAL_SE_MARGIN:g} SE ({VAL_SE_MARGIN * se:.3f})")
    return YES, (f"{gain}, CI above 0; validation loss {pretrained:.3f} -> {best:.3f}, down more than "
                 f"{VAL_SE_MARGIN:g} SE ({VAL_SE_MARGIN * se:.3f})")


def _val_columns(training: pl.DataFrame) -> pl.DataFrame:
    """model and the validation-loss columns, null where training.parquet does not record them (yet)."""
    return training.select("model", *(pl.col(c).cast(pl.Float64) if c in training.columns
                                      else pl.lit(None, pl.Float64).alias(c) for c in _VAL))


def verdicts(gains: pl.DataFrame, training: pl.DataFrame) -> pl.DataFrame:
    """learned.parquet: score_gains' rows with each model's validation losses from training.parquet and
    the verdict. Cheap (no bootstrap): re-run whenever training.parquet changes. Columns: COLUMNS."""
    rows = gains.select(GAIN_COLUMNS).join(_val_columns(training), on="model", how="left")
    records = [row | dict(zip(("learned", "reason"), verdict(row))) for row in rows.iter_rows(named=True)]
    return pl.DataFrame(records, schema=_SCHEMA).select(COLUMNS)


def learned_frame(predictions: pl.DataFrame, training: pl.DataFrame, *, n_boot: int = 1000,
                  seed: int = 0) -> pl.DataFrame:
    """One row per (trained model, task it was trained on) with the learned-or-not verdict. Columns: COLUMNS."""
    return verdicts(score_gains(predictions, training, n_boot=n_boot, seed=seed), training)


def covers(learned: pl.DataFrame, training: pl.DataFrame) -> bool:
    """Whether `learned` holds exactly the (model, task) rows training.parquet's trained models call for."""
    if not set(GAIN_COLUMNS) <= set(learned.columns):
        return False
    expected = {(r["model"], r["task"]) for r in _model_tasks(training)}
    return set(learned.select("model", "task").iter_rows()) == expected


def _aggregate(rows: pl.DataFrame) -> tuple[str, str]:
    """E's verdict from its seen tasks' rows: yes on every one, no on any, else inconclusive."""
    by = {v: rows.filter(pl.col("learned") == v)["task"].to_list() for v in LEARNED_VERDICTS}
    if by[NO]:
        return NO, f"did not learn {', '.join(by[NO])}"
    if by[INCONCLUSIVE]:
        return INCONCLUSIVE, f"inconclusive on {', '.join(by[INCONCLUSIVE])}; learned the other {len(by[YES])}"
    return YES, f"learned every one of its {len(by[YES])} tasks"


def model_verdicts(learned: pl.DataFrame, training: pl.DataFrame) -> pl.DataFrame:
    """Per training.parquet row: model and VERDICT_COLUMNS (null for models not trained here). A control's
    verdict and scores are its task's; E's verdict aggregates its seen tasks (its score columns are null)."""
    records = []
    for model in trained_rows(training)["model"].to_list():
        rows = learned.filter(pl.col("model") == model)
        if rows.height == 1 and rows["role"][0] == CONTROL:
            r = rows.row(0, named=True)
            records.append({"model": model, "learned": r["learned"], "learned_reason": r["reason"],
                            **{c: r[c] for c in VERDICT_COLUMNS[2:]}})
        else:
            learned_, reason = _aggregate(rows) if rows.height else (INCONCLUSIVE, "no task was judged")
            records.append({"model": model, "learned": learned_, "learned_reason": reason})
    schema = {"model": pl.String, **{c: pl.String if c.startswith("learned") else pl.Float64 for c in VERDICT_COLUMNS}}
    return pl.DataFrame(records, schema=schema)


def with_verdicts(training: pl.DataFrame, learned: pl.DataFrame) -> pl.DataFrame:
    """training.parquet with the per-model verdict columns (VERDICT_COLUMNS), replacing any earlier ones."""
    plain = training.drop([c for c in VERDICT_COLUMNS if c in training.columns])
    return plain.join(model_verdicts(learned, plain), on="model", how="left", maintain_order="left")


def unchecked() -> pl.DataFrame:
    """A learned frame with no rows: no model's learning was checked (evaluation disabled)."""
    return pl.DataFrame(schema=_SCHEMA)


def control_verdicts(learned: pl.DataFrame) -> dict[str, str]:
    """task -> verdict of the run-seed control C_t (the noise-floor twins left out): what MOSSA's claims rest on."""
    rows = learned.filter((pl.col("role") == CONTROL) & (pl.col("label") == CONTROL))
    return dict(rows.select("task", "learned").iter_rows())


def _named(tasks: Sequence[str]) -> str:
    return f"{len(tasks)} control{'' if len(tasks) == 1 else 's'}"


def learned_note(verdicts_by_task: Mapping[str, str] | None, tasks: Sequence[str]) -> str:
    """What to append to the reason of a claim resting on the controls of `tasks`: '' when every one
    learned its task (or when the caller does not track it: None); else which did not, were
    inconclusive, or were not checked (a task missing from the mapping)."""
    if verdicts_by_task is None or not tasks:
        return ""
    if not verdicts_by_task:
        return "; the controls' learning was not checked (no learned.parquet: evaluation disabled?)"
    by = {v: [t for t in tasks if verdicts_by_task.get(t) == v] for v in LEARNED_VERDICTS}
    unchecked = [t for t in tasks if verdicts_by_task.get(t) not in LEARNED_VERDICTS]
    parts = []
    if by[NO]:
        parts.append(f"{_named(by[NO])} that did not learn {'its' if len(by[NO]) == 1 else 'their'} task: "
                     f"{', '.join(by[NO])}")
    if by[INCONCLUSIVE]:
        parts.append(f"{_named(by[INCONCLUSIVE])} whose learning is inconclusive: {', '.join(by[INCONCLUSIVE])}")
    if unchecked:
        parts.append(f"{_named(unchecked)} whose learning was not checked: {', '.join(unchecked)}")
    return f"; rests on {'; and on '.join(parts)}" if parts else ""
