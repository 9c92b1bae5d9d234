"""Correlation of CKA with task properties (paper §4.4, Figures 6 and 10), per layer.

For each (experimental, layer) and each measure, Pearson r with its two-sided p and Spearman rho beside
it, across tasks. Inputs: the cka frame and a stats frame (task, cluster, train_size, flesch_kincaid,
coleman_liau), e.g. tasks.task_statistics().
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from analysis.derived.stats import pearson, spearman
from analysis.roles import CKA, UNSEEN

MEASURES = ("flesch_kincaid", "coleman_liau", "train_size")
# Columns that distinguish separate CKA curves: never pool across them.
_CURVE_KEYS = ("experimental", "layer", "kernel", "debiased", "threshold", "lora_rank", "seed")


def correlation_frame(
    cka: pl.DataFrame,
    stats: pl.DataFrame,
    measures: Sequence[str] = MEASURES,
    include_unseen: bool = False,
) -> pl.DataFrame:
    """Columns: <curve keys present>, measure, pearson_r, pearson_p, spearman_rho, spearman_p, n_tasks."""
    data = cka if include_unseen else cka.filter(pl.col("cluster") != UNSEEN)
    present = [m for m in measures if m in stats.columns]
    joined = data.join(stats.select("task", *present), on="task", how="inner")
    keys = [k for k in _CURVE_KEYS if k in joined.columns]
    rows = []
    for key, group in joined.group_by(keys, maintain_order=True):
        for measure in present:
            g = group.select(CKA, measure).drop_nulls()
            r, p = pearson(g[CKA], g[measure])
            rho, p_rho = spearman(g[CKA], g[measure])
            rows.append({
                **dict(zip(keys, key)),
                "measure": measure,
                "pearson_r": r,
                "pearson_p": p,
                "spearman_rho": rho,
                "spearman_p": p_rho,
                "n_tasks": g.height,
            })
    schema = {k: joined.schema[k] for k in keys} | {
        "measure": pl.String, "pearson_r": pl.Float64, "pearson_p": pl.Float64,
        "spearman_rho": pl.Float64, "spearman_p": pl.Float64, "n_tasks": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema).sort(keys[:2] + ["measure"])
