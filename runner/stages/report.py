"""The `report` stage: figures and one self-contained report.html from the frames in <out>/."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from analysis.roles import (
    CKA,
    CORRELATIONS,
    CROSS_LAYER,
    EVAL,
    FINDINGS,
    GAPS,
    HARNESS,
    INPUTS,
    LAYER_MAP,
    LAYER_STATS,
    MOVEMENT,
    SEED_BASELINE,
    SIMILARITY,
    TASK_STATS,
    TRAINING,
    TSNE,
    UNSEEN_FRAME,
)
from runner.artifacts.store import read_parquet

log = logging.getLogger("layerwise.report")
FRAMES = (CKA, SIMILARITY, LAYER_STATS, CROSS_LAYER, TSNE, TASK_STATS, SEED_BASELINE, MOVEMENT, GAPS, LAYER_MAP, FINDINGS,
          CORRELATIONS, UNSEEN_FRAME, TRAINING, EVAL, "eval_gaps", HARNESS, INPUTS)


def current(exp) -> bool:
    return (exp.plan.out / "report.html").exists()


def describe(exp) -> list[str]:
    return [f"report: -> {exp.plan.out / 'report.html'}"]


def score_frames(frames: dict[str, pl.DataFrame], primary: str) -> dict[str, pl.DataFrame]:
    """Scores against similarity over the transition layers (built here: it joins the evaluate
    stage's scores with the analyze stage's frames, which may have run in either order)."""
    from analysis.layer_map import layer_groups
    from analysis.scores import score_cka_frame

    if EVAL not in frames or CKA not in frames or LAYER_MAP not in frames:
        return {}
    layer_map = frames[LAYER_MAP].filter(pl.col("measure") == primary)
    groups, _ = layer_groups(layer_map, sorted(frames[CKA]["layer"].unique().to_list()))
    layers = groups["transition"]
    joined = score_cka_frame(frames[EVAL], frames[CKA], layers)
    return {"score_cka": joined.with_columns(pl.lit(layers, pl.List(pl.Int64)).alias("layers"))}


def measure_labels(frames: dict[str, pl.DataFrame]) -> dict[str, str]:
    from analysis.measures import measure_info

    if LAYER_STATS not in frames:
        return {}
    return {name: measure_info(name).description for name in frames[LAYER_STATS]["measure"].unique().to_list()}


def run(exp) -> Path:
    from analysis.report import write_report

    out = exp.plan.out
    frames = {name: read_parquet(out / f"{name}.parquet", f"{name} frame")
              for name in FRAMES if (out / f"{name}.parquet").exists()}
    curves = [pl.read_parquet(Path(job.out_dir) / "curve.parquet").with_columns(pl.lit(job.id).alias("job"))
              for job in exp.plan.jobs if (Path(job.out_dir) / "curve.parquet").exists()]
    if curves:
        frames["curves"] = pl.concat(curves, how="diagonal_relaxed")
    frames.update(score_frames(frames, exp.config.analysis.primary_measure))
    path = write_report(out, frames, primary=exp.config.analysis.primary_measure, labels=measure_labels(frames))
    log.info("report: %s", path)
    return path
