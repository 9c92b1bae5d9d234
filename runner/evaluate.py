"""The `evaluate` stage (issue 7): per-task scores of pretrained, E and every C_t."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from runner.plan import Plan


def run_evaluation(plan: Plan, model_dir: str, splits: dict) -> pl.DataFrame:
    """Write <out>/eval.parquet: model, task, cluster, metric, score, n."""
    raise NotImplementedError("evaluation is being built (issue 7)")


def eval_path(plan: Plan) -> Path:
    return plan.out / "eval.parquet"
