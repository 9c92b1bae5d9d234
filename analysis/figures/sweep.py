"""The sweep figure: mean CKA per layer for each LoRA rank, against the seed-to-seed baseline."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import polars as pl

from analysis.figures.common import MODEL_COLORS, model_order
from analysis.roles import CKA, UNSEEN


def sweep_figure(cka: pl.DataFrame, baseline: pl.DataFrame | None):
    """One panel per LoRA rank: mean (over tasks and seeds) CKA with C_t, +- one std across seeds;
    the dashed line is CKA between controls that differ only in their seed (chance variation)."""
    ranks = sorted(cka["lora_rank"].unique().to_list())
    fig, axes = plt.subplots(1, len(ranks), figsize=(4.8 * len(ranks), 3.8), squeeze=False, sharey=True,
                             layout="constrained")
    for ax, rank in zip(axes.ravel(), ranks):
        sub = cka.filter((pl.col("lora_rank") == rank) & (pl.col("cluster") != UNSEEN))
        per_seed = sub.group_by("experimental", "seed", "layer").agg(pl.col(CKA).mean())
        curves = per_seed.group_by("experimental", "layer").agg(
            mean=pl.col(CKA).mean(), std=pl.col(CKA).std().fill_null(0.0)).sort("layer")
        for model in model_order(curves["experimental"].unique().to_list()):
            c = curves.filter(pl.col("experimental") == model)
            color = MODEL_COLORS.get(model, "#555555")
            ax.plot(c["layer"], c["mean"], color=color, lw=1.6, label=model)
            ax.fill_between(c["layer"], c["mean"] - c["std"], c["mean"] + c["std"], color=color, alpha=0.2, lw=0)
        if baseline is not None and (baseline["lora_rank"] == rank).any():
            b = (baseline.filter(pl.col("lora_rank") == rank).group_by("layer").agg(pl.col(CKA).mean())
                 .sort("layer"))
            ax.plot(b["layer"], b[CKA], "k--", lw=1.2, label="control vs control, other seed")
        ax.set_title(f"LoRA rank {rank}", fontsize=10)
        ax.set_xlabel("layer (0 = embeddings)")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("mean CKA with single-task control $C_t$")
    axes[0, -1].legend(fontsize=8, loc="lower left")
    fig.suptitle("CKA by LoRA rank (band: +-1 std across seeds)", fontsize=11)
    return fig


def write_sweep_figure(cka: pl.DataFrame, baseline: pl.DataFrame | None, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = sweep_figure(cka, baseline)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
