"""Unseen-task comparison (paper §4.5, Figure 7): CKA on tasks held out of multi-task training,
summarised per layer beside the same summary on seen tasks."""

from __future__ import annotations

import polars as pl

from analysis.roles import CKA, MULTITASK, PRETRAINED, UNSEEN


def unseen_frame(cka: pl.DataFrame, base: str = PRETRAINED, tuned: str = MULTITASK) -> pl.DataFrame:
    """Columns: group ("seen"/"unseen"), experimental, layer, n_tasks, mean, std, median, q25, q75,
    tuned_minus_base (mean CKA of `tuned` minus `base` in that group and layer; null if either is absent).
    """
    summary = (
        cka.with_columns(pl.when(pl.col("cluster") == UNSEEN).then(pl.lit("unseen")).otherwise(pl.lit("seen")).alias("group"))
        .group_by("group", "experimental", "layer")
        .agg(
            pl.col("task").n_unique().alias("n_tasks"),
            pl.col(CKA).mean().alias("mean"),
            pl.col(CKA).std().alias("std"),
            pl.col(CKA).median().alias("median"),
            pl.col(CKA).quantile(0.25, "linear").alias("q25"),
            pl.col(CKA).quantile(0.75, "linear").alias("q75"),
        )
    )
    gap = (
        summary.filter(pl.col("experimental").is_in([base, tuned]))
        .pivot(on="experimental", index=["group", "layer"], values="mean")
    )
    if base in gap.columns and tuned in gap.columns:
        gap = gap.select("group", "layer", (pl.col(tuned) - pl.col(base)).alias("tuned_minus_base"))
    else:
        gap = gap.select("group", "layer", pl.lit(None, dtype=pl.Float64).alias("tuned_minus_base"))
    return summary.join(gap, on=["group", "layer"], how="left").sort("group", "experimental", "layer")
