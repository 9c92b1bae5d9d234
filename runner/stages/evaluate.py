"""The `evaluate` stage: per-task scores of pretrained, E and every C_t (the paper's Tables 3-4).

Each task is scored on its own held-out test split (disjoint from the probe set, forward templates
only) by the paper's metric (runner.inference.scoring). Rows stream through the shared inference actor
(runner.inference.actor) with the `ScoreWork` (runner.inference.works) plugged in; the driver turns the predictions into scores
with 95% bootstrap CIs and E - C_t gaps with paired CIs (analysis.frames.scores), and writes
<out>/eval.parquet, <out>/eval_gaps.parquet and <out>/eval_predictions.parquet, skipped when current.

The noise-floor twins are scored too (each on its own task), so that every trained model gets a
learned-or-not verdict on each task it was trained on (analysis.derived.learned): <out>/learned.parquet, and
the per-model verdict columns joined into <out>/training.parquet. The train stage rewrites
training.parquet whenever `layerwise run` passes through it, so the verdicts are re-joined on every
run, even when the scores are current (the bootstrap is not redone then).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa

from analysis.derived.learned import covers, score_gains, verdicts, with_verdicts
from analysis.frames.scores import gap_frame, score_frame
from analysis.roles import CONTROL, EVAL, EVAL_GAPS, EVAL_PREDICTIONS, LEARNED, TRAINING
from runner.artifacts.store import atomic_write_parquet, is_current, mark_done, read_parquet, stamp
from runner.inference.scoring import GENERATE, RANK
from runner.plan import Plan, TaskRef
from runner.stages import EVALUATE

log = logging.getLogger("layerwise.evaluate")
FILES = (f"{EVAL}.parquet", f"{EVAL_GAPS}.parquet", f"{EVAL_PREDICTIONS}.parquet")
# Not vouched for by the marker: rewritten whenever training.parquet's validation losses change.
LEARNED_FILE = f"{LEARNED}.parquet"


def eval_rows(splits: dict, refs: Sequence[TaskRef], generation_size: int | None = None) -> pl.DataFrame:
    """Every task's test rows with how each is scored (mode) and by what metric; generation tasks
    keep their first `generation_size` rows.

    Columns: example_id, task, cluster, metric, mode, prompt, target, options."""
    import tasks as suite

    frames = []
    for ref in refs:
        spec = suite.get_task(ref.name)
        test = splits[ref.name].test
        if generation_size is not None and spec.metric != "accuracy":
            test = test.select(range(min(generation_size, len(test))))
        frame = pl.DataFrame({
            "example_id": list(test["example_id"]), "prompt": list(test["prompt"]), "target": list(test["target"]),
            "options": pl.Series(list(test["options"]), dtype=pl.List(pl.String)),
        })
        rank = (pl.col("options").list.len() > 0) & pl.lit(spec.metric == "accuracy")
        frames.append(frame.with_columns(
            pl.lit(ref.name).alias("task"), pl.lit(ref.cluster).alias("cluster"), pl.lit(spec.metric).alias("metric"),
            pl.when(rank).then(pl.lit(RANK)).otherwise(pl.lit(GENERATE)).alias("mode")))
    return pl.concat(frames).select("example_id", "task", "cluster", "metric", "mode", "prompt", "target", "options")


def _marker(plan: Plan) -> Path:
    return plan.out / "evaluation"


def _inputs(exp) -> str:
    """The scored models' done markers, and the published models' files."""
    trained = stamp(*(Path(job.out_dir) for job in exp.plan.scored_jobs))
    if not exp.config.model.experimental:
        return trained
    from runner.models.external import fingerprint

    return f"{trained}+{fingerprint(exp.externals)}"


def current(exp) -> bool:
    return is_current(_marker(exp.plan), exp.plan.key(EVALUATE), _inputs(exp))


def describe(exp) -> list[str]:
    plan, cfg = exp.plan, exp.config
    if not cfg.evaluation.enabled:
        return ["evaluate: disabled (evaluation.enabled: false)"]
    state = "done" if current(exp) else "todo"
    generation = f" ({cfg.evaluation.generation_size} per generation task)" if cfg.evaluation.generation_size else ""
    return [f"evaluate: [{state}] {len(plan.tasks)} x {cfg.tasks.test_size} test examples{generation} through "
            f"pretrained, {', '.join(plan.tuned)} and each control (noise-floor twins on their own task) on "
            f"{cfg.resources.extract_actors} actor(s) -> {plan.out / FILES[0]}, {plan.out / LEARNED_FILE}"]


def run(exp) -> None:
    from runner.inference.actor import map_with_actors, model_passes
    from runner.inference.lm_eval import run_harness
    from runner.ops.console import bar

    plan, cfg = exp.plan, exp.config
    if not cfg.evaluation.enabled:
        log.info("evaluate: disabled in the config, skipping")
        # An earlier run's verdicts may judge other models: without them, the claims say nothing was checked.
        (plan.out / LEARNED_FILE).unlink(missing_ok=True)
        return
    predictions = None
    if current(exp):
        log.info("evaluate: eval.parquet is current, skipping")
    else:
        started = time.time()
        rows = eval_rows(exp.splits, plan.tasks, cfg.evaluation.generation_size)
        passes = model_passes(plan, plan.scored_jobs, exp.externals)
        log.info("evaluate: %d test rows of %d tasks through %d models on %d actor(s)", rows.height, len(plan.tasks),
                 len(passes), cfg.resources.extract_actors)
        dataset = map_with_actors(plan, rows.to_arrow(), "evaluate", exp.model_dir, passes,
                                  rows_per_batch=cfg.evaluation.batch_size, externals=exp.externals)
        progress, tables = bar(rows.height, "evaluate"), []
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            tables.append(batch)
            progress.update(len(set(batch.column("example_id").to_pylist())))
        progress.close()
        predictions = (pl.from_arrow(pa.concat_tables(tables))
                       .join(rows.select("example_id", "task", "cluster", "metric", "target"), on="example_id"))
        scores, gaps = score_frame(predictions), gap_frame(predictions, tuned=plan.tuned)
        # Every model scores every task, but a control (or twin) only its own.
        names = [ref.name for ref in plan.tasks]
        expected = len({(p.label, task) for p in passes for task in (p.tasks or names)})
        if scores.height != expected:
            raise RuntimeError(f"evaluate: {scores.height} (model, task) scores, expected {expected}")
        out = plan.out
        atomic_write_parquet(predictions.sort("model", "task", "example_id"), out / FILES[2])
        atomic_write_parquet(gaps, out / FILES[1])
        atomic_write_parquet(scores, out / FILES[0])
        mark_done(_marker(plan), plan.key(EVALUATE), files=[out / name for name in FILES], inputs=_inputs(exp),
                  seconds=round(time.time() - started, 2), rows=rows.height)
        log.info("evaluate: %d scores in %.1fs -> %s", scores.height, time.time() - started, out / FILES[0])
    learned = record_learned(plan, predictions)
    if learned is not None and (note := not_learned_note(learned)):
        exp.notes.append(note)
    if cfg.evaluation.harness_tasks:
        run_harness(plan, exp.model_dir)


def record_learned(plan: Plan, predictions: pl.DataFrame | None = None) -> pl.DataFrame | None:
    """Write learned.parquet and join the per-model verdicts into training.parquet; returns the learned
    frame (None without a training.parquet). The paired bootstrap runs on fresh `predictions`, or on
    eval_predictions.parquet when learned.parquet is missing or covers other models; otherwise its
    scored gains are reused and only the verdicts are redone against the current training.parquet."""
    out = plan.out
    training_path, learned_path = out / f"{TRAINING}.parquet", out / LEARNED_FILE
    if not training_path.exists():
        return None
    training = read_parquet(training_path, "training frame")
    previous = pl.read_parquet(learned_path) if learned_path.exists() and predictions is None else None
    if previous is not None and covers(previous, training):
        gains = previous
    else:
        if predictions is None:
            predictions = read_parquet(out / FILES[2], "evaluate's predictions")
        gains = score_gains(predictions, training)
    learned = verdicts(gains, training)
    if previous is None or not previous.equals(learned):  # unchanged: its bytes stay, and so does analyze
        atomic_write_parquet(learned, learned_path)
    atomic_write_parquet(with_verdicts(training, learned), training_path)
    counts = dict(learned.group_by("learned").len().iter_rows())
    log.info("evaluate: learned their task: %s -> %s", ", ".join(f"{v} {n}" for v, n in sorted(counts.items())),
             learned_path)
    return learned


def not_learned_note(learned: pl.DataFrame) -> str:
    """The closing summary's line on the controls that did not (clearly) learn their task; '' when all did."""
    from analysis.derived.learned import YES

    controls = learned.filter(pl.col("role") == CONTROL)
    missed = controls.filter(pl.col("learned") != YES)
    if missed.is_empty():
        return ""
    named = ", ".join(f"{m} ({v})" for m, v in missed.select("model", "learned").iter_rows())
    return f"{missed.height} of {controls.height} controls did not clearly learn their task: {named}; see learned.parquet"
