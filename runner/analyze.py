"""The `analyze` stage: one Ray remote task per task computes every layer's CKA at once.

Each task reads only its own slab of the activations, aligns the three models' rows by example
id with one joint mask of non-finite rows, and hands arrays to the pure `analysis` library.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import polars as pl
import ray

from runner import metrics
from runner.config import AnalysisConfig
from runner.plan import CONTROL, MULTITASK, PRETRAINED, Plan
from runner.progress import bar
from runner.store import atomic_write_parquet, is_done, mark_done

log = logging.getLogger("layerwise.analyze")
EXPERIMENTALS = (PRETRAINED, MULTITASK)


def read_task_reps(activations: Path, task: str) -> dict[str, tuple[list[str], np.ndarray]]:
    """model -> (example ids, [layers, n, d] float32) for one task."""
    frame = (pl.scan_parquet(activations / "*.parquet").filter(pl.col("task") == task)
             .select("model", "layer", "example_id", "vector").collect())
    if frame.is_empty():
        raise ValueError(f"{activations}: no activations for task {task!r}; re-run `layerwise extract`")
    reps = {}
    for (model,), rows in frame.group_by("model"):
        rows = rows.sort("layer", "example_id")
        layers = rows["layer"].n_unique()
        n = rows.height // layers
        ids = rows["example_id"].head(n).to_list()
        if rows.height != layers * n or rows["example_id"].to_list() != ids * layers:
            raise ValueError(f"{activations}: task {task!r} model {model!r} has ragged layers; re-run extract")
        reps[model] = (ids, rows["vector"].to_numpy().reshape(layers, n, -1))
    return reps


@ray.remote(num_cpus=1)
def task_cka(activations: str, task: str, cluster: str, analysis: dict) -> pl.DataFrame:
    from analysis.align import align_and_mask
    from analysis.suite import task_cka_frame

    cfg = AnalysisConfig.model_validate(analysis)
    _, aligned, dropped = align_and_mask(read_task_reps(Path(activations), task))
    frame = task_cka_frame(task, cluster, aligned, control=CONTROL, experimentals=EXPERIMENTALS,
                           kernel=cfg.kernel, debiased=cfg.debiased, bootstrap=cfg.bootstrap, seed=cfg.seed)
    metrics.record_pairs(frame.height)
    return frame.with_columns(pl.lit(dropped).alias("n_dropped"))


def run_analysis(plan: Plan, stats: pl.DataFrame | None = None) -> pl.DataFrame:
    """Write <out>/cka.parquet (and the task statistics) unless already computed for this key."""
    out, marker = plan.out / "cka.parquet", plan.out / "analysis"
    if out.exists() and is_done(marker, plan.analyze_key):
        log.info("analyze: cka.parquet is current, skipping")
        return pl.read_parquet(out)
    started = time.time()
    analysis = plan.config.analysis.model_dump(mode="json")
    pending = {task_cka.remote(str(plan.activations_dir), t.name, t.cluster, analysis): t.name for t in plan.tasks}
    frames, progress = [], bar(len(pending), "analyze")
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        frames.append(ray.get(done[0]))
        progress.update(1)
        progress.set_postfix_str(pending.pop(done[0]))
    progress.close()
    cka = pl.concat(frames).sort("experimental", "task", "layer")
    atomic_write_parquet(cka, out)
    if stats is not None:
        atomic_write_parquet(stats, plan.out / "task_stats.parquet")
    mark_done(marker, plan.analyze_key, seconds=round(time.time() - started, 2), rows=cka.height)
    return cka
