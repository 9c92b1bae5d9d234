"""Figure 5: principal components explaining 99% of the variance, per layer."""

from __future__ import annotations

import polars as pl
from matplotlib.figure import Figure

from analysis.figures.common import model_color, model_order, new_figure, set_layer_axis, shade_layers


def pca_dims_figure(pca: pl.DataFrame, layer_map: pl.DataFrame | None) -> Figure:
    models = model_order(pca["model"].unique().to_list())
    fig, ax = new_figure(8.0, 3.8)
    shades = shade_layers(ax, layer_map)
    summary = (
        pca.group_by("model", "layer")
        .agg(
            pl.col("n_components").mean().alias("mean"),
            pl.col("n_components").quantile(0.25, "linear").alias("q25"),
            pl.col("n_components").quantile(0.75, "linear").alias("q75"),
            pl.col("rank_cap").min().alias("cap"),
        )
        .sort("layer")
    )
    for model in models:
        s = summary.filter(pl.col("model") == model)
        color = model_color(model, models)
        ax.plot(s["layer"], s["mean"], "o-", ms=3, color=color, label=model)
        ax.fill_between(s["layer"], s["q25"], s["q75"], color=color, alpha=0.2, lw=0)
    cap = summary["cap"].min()
    ax.axhline(cap, color="grey", ls=":", lw=1, label=f"rank cap min(n-1, d) = {cap}")
    set_layer_axis(ax, sorted(summary["layer"].unique().to_list()))
    ax.set_ylabel("components for 99% variance")
    thr = pca["threshold"][0] if "threshold" in pca.columns else 0.99
    ax.set_title(f"Dimensions explaining {thr:.0%} of the variance (mean over {pca['task'].n_unique()} tasks)", fontsize=10)
    ax.legend(handles=ax.get_legend_handles_labels()[0] + shades, fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    return fig
