"""Figures that loop over the selected measures: per-layer measures of each model, the layer map
under every pairwise measure side by side, and what standardising the features does."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from analysis.derived.layer_map import FUNCTIONS
from analysis.figures.common import SHADE, model_color, model_order, set_layer_axis, shade_layers
from analysis.roles import CONTROL, UNSEEN, is_reseeded


def layer_stats_grid(layer_stats: pl.DataFrame, layer_map: pl.DataFrame | None, labels: dict[str, str]) -> Figure:
    """One panel per single (per-layer) measure: mean over tasks for pretrained, E and C_t, with the
    interquartile range across tasks. `labels`: measure -> axis label (from its registration)."""
    measures = sorted(layer_stats["measure"].unique().to_list())
    # Every model but the noise-floor twins: pretrained, E, the published ones and C_t.
    frame = layer_stats.filter(~pl.col("model").map_elements(is_reseeded, return_dtype=pl.Boolean))
    models = model_order(frame["model"].unique().to_list())
    ncols = min(2, len(measures))
    nrows = int(np.ceil(len(measures) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 3.2 * nrows), squeeze=False, layout="constrained")
    for ax, measure in zip(axes.ravel(), measures):
        shade_layers(ax, layer_map)
        summary = (frame.filter(pl.col("measure") == measure).group_by("model", "layer")
                   .agg(pl.col("value").mean().alias("mean"), pl.col("value").quantile(0.25, "linear").alias("q25"),
                        pl.col("value").quantile(0.75, "linear").alias("q75")).sort("layer"))
        for model in models:
            s = summary.filter(pl.col("model") == model)
            color = model_color(model, models)
            ax.plot(s["layer"], s["mean"], "o-", ms=2.5, color=color, label=model)
            ax.fill_between(s["layer"], s["q25"], s["q75"], color=color, alpha=0.18, lw=0)
        set_layer_axis(ax, sorted(summary["layer"].unique().to_list()))
        ax.set_title(measure, fontsize=9)
        ax.set_ylabel(labels.get(measure, measure), fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.ravel()[len(measures):]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"Per-layer measures of each model (mean over {layer_stats['task'].n_unique()} tasks; band: IQR)",
                 fontsize=10)
    return fig


def maps_by_measure(layer_map: pl.DataFrame) -> Figure:
    """The layer map under every pairwise measure, one row each; grey where a measure finds no
    structure above its noise floor, hatched cells where the gap itself is within noise."""
    measures = list(dict.fromkeys(layer_map["measure"].to_list()))
    layers = sorted(layer_map["layer"].unique().to_list())
    codes = np.full((len(measures), len(layers)), len(FUNCTIONS), dtype=float)
    for i, measure in enumerate(measures):
        for layer, function in layer_map.filter(pl.col("measure") == measure).select("layer", "function").iter_rows():
            if function is not None:
                codes[i, layers.index(layer)] = FUNCTIONS.index(function)
    cmap = ListedColormap([SHADE[f] for f in FUNCTIONS] + ["#eeeeee"])
    fig, ax = plt.subplots(figsize=(max(7.0, 0.3 * len(layers) + 3), 0.5 * len(measures) + 1.6), layout="constrained")
    ax.imshow(codes, cmap=cmap, vmin=-0.5, vmax=len(FUNCTIONS) + 0.5, aspect="auto")
    for i, measure in enumerate(measures):
        rows = layer_map.filter(pl.col("measure") == measure).sort("layer")
        for layer, ok in rows.select("layer", "distinguishable").iter_rows():
            if ok:
                ax.text(layers.index(layer), i, "*", ha="center", va="center", fontsize=8)
    ax.set_yticks(range(len(measures)), measures, fontsize=8)
    ax.set_xticks(range(len(layers))[::max(1, len(layers) // 16)], layers[::max(1, len(layers) // 16)])
    ax.set_xlabel("layer (0 = embeddings); * = gap distinguishable from the noise floor")
    handles = [Patch(color=SHADE[f], label=f) for f in FUNCTIONS] + [Patch(color="#eeeeee", label="no structure above noise")]
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=4)
    ax.set_title("Does the layer map survive other measures?", fontsize=10)
    return fig


def standardize_effect(similarity: pl.DataFrame, measure: str) -> Figure:
    """The measure's mean over seen tasks per layer, raw features against z-scored features."""
    sub = similarity.filter((pl.col("measure") == measure) & (pl.col("control") == CONTROL)
                            & ~pl.col("experimental").map_elements(is_reseeded, return_dtype=pl.Boolean)
                            & (pl.col("cluster") != UNSEEN))
    mean = sub.group_by("experimental", "standardized", "layer").agg(pl.col("value").mean()).sort("layer")
    fig, ax = plt.subplots(figsize=(8.0, 3.6), layout="constrained")
    for model in model_order(mean["experimental"].unique().to_list()):
        for standardized, style in ((False, "o-"), (True, "s--")):
            s = mean.filter((pl.col("experimental") == model) & (pl.col("standardized") == standardized))
            ax.plot(s["layer"], s["value"], style, ms=3, color=model_color(model, []),
                    label=f"{model}, {'z-scored features' if standardized else 'raw features'}")
    set_layer_axis(ax, sorted(mean["layer"].unique().to_list()))
    ax.set_ylabel(f"{measure} with $C_t$")
    ax.set_title(f"What standardising the features does to {measure} (massive dimensions removed)", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return fig
