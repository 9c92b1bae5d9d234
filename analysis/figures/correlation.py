"""Figures 6a, 6b and 10: Pearson correlation of CKA with a task measure, per layer."""

from __future__ import annotations

import polars as pl
from matplotlib.figure import Figure

from analysis.figures.common import model_color, model_order, new_figure, set_layer_axis, shade_layers

LABELS = {
    "flesch_kincaid": "Flesch-Kincaid grade",
    "coleman_liau": "Coleman-Liau index",
    "train_size": "training-set size",
}


def correlation_figure(corr: pl.DataFrame, measure: str, layer_map: pl.DataFrame | None, title: str) -> Figure:
    sub = corr.filter(pl.col("measure") == measure).sort("layer")
    models = model_order(sub["experimental"].unique().to_list())
    fig, ax = new_figure(8.0, 3.8)
    shades = shade_layers(ax, layer_map)
    for model in models:
        s = sub.filter(pl.col("experimental") == model)
        color = model_color(model, models)
        ax.plot(s["layer"], s["pearson_r"], "-", color=color, label=f"{model}: Pearson r")
        sig = s.filter(pl.col("pearson_p") < 0.05)
        ns = s.filter(~(pl.col("pearson_p") < 0.05))
        ax.scatter(sig["layer"], sig["pearson_r"], color=color, s=18, zorder=3)
        ax.scatter(ns["layer"], ns["pearson_r"], facecolors="white", edgecolors=color, s=18, zorder=3)
        ax.plot(s["layer"], s["spearman_rho"], "--", color=color, lw=0.9, alpha=0.7, label=f"{model}: Spearman")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_ylim(-1.05, 1.05)
    set_layer_axis(ax, sorted(sub["layer"].unique().to_list()))
    ax.set_ylabel(f"corr(CKA, {LABELS.get(measure, measure)})")
    n = int(sub["n_tasks"].max()) if not sub.is_empty() else 0
    ax.set_title(f"{title}: correlation across {n} tasks (filled: p < 0.05)", fontsize=10)
    ax.legend(handles=ax.get_legend_handles_labels()[0] + shades, fontsize=7, loc="best", ncol=2)
    ax.grid(axis="y", alpha=0.3)
    return fig
