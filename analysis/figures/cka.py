"""CKA figures: Fig. 2 (all seen tasks), 3/8/9 (per cluster), 7 (unseen), cross-layer heatmaps, layer map."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.figure import Figure

from analysis.figures.common import (
    SHADE,
    model_color,
    model_order,
    new_figure,
    paired_boxplots,
    set_layer_axis,
    shade_layers,
)


def _estimator(cka: pl.DataFrame) -> str:
    kernels = sorted(set(cka["kernel"].to_list())) if "kernel" in cka.columns else ["?"]
    deb = sorted(set(cka["debiased"].to_list())) if "debiased" in cka.columns else [False]
    return f"{'/'.join(kernels)} kernel, {'debiased' if all(deb) else 'biased'} HSIC"


def cka_boxplots(cka: pl.DataFrame, layer_map: pl.DataFrame | None, title: str) -> Figure:
    """Fig. 2 / 7: distribution across tasks of CKA(experimental, C_t) per layer, models side by side."""
    models = model_order(cka["experimental"].unique().to_list())
    fig, ax = new_figure(max(7.0, 0.32 * cka["layer"].n_unique() + 3), 4.2)
    shades = shade_layers(ax, layer_map)
    handles = paired_boxplots(ax, cka, models)
    ax.set_ylabel("CKA with single-task control $C_t$")
    n_tasks = cka["task"].n_unique()
    ax.set_title(f"{title}\n{n_tasks} tasks, {_estimator(cka)}", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(handles=handles + shades, loc="lower left", fontsize=8, ncol=2, framealpha=0.9)
    return fig


def cluster_grid(cka: pl.DataFrame, clusters: list[str], layer_map: pl.DataFrame | None, title: str) -> Figure:
    """Fig. 3 / 8 / 9: one panel per task cluster, the Fig. 2 boxplots restricted to its tasks."""
    models = model_order(cka["experimental"].unique().to_list())
    ncols = min(2, len(clusters))
    nrows = int(np.ceil(len(clusters) / ncols))
    width = max(7.0, 0.25 * cka["layer"].n_unique() + 3)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols / 1.4, 3.0 * nrows), squeeze=False, sharey=True, layout="constrained"
    )
    handles = []
    for ax, cluster in zip(axes.ravel(), clusters):
        sub = cka.filter(pl.col("cluster") == cluster)
        shades = shade_layers(ax, layer_map)
        handles = paired_boxplots(ax, sub, models) + shades or handles
        ax.set_title(f"{cluster} ({sub['task'].n_unique()} tasks)", fontsize=9)
        ax.set_ylabel("CKA with $C_t$")
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.ravel()[len(clusters) :]:
        ax.set_visible(False)
    fig.suptitle(f"{title} ({_estimator(cka)})", fontsize=10)
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8)
    return fig


def representative_clusters(cka: pl.DataFrame, base: str = "pretrained", k: int = 2) -> list[str]:
    """Fig. 3's selection, made reproducible: the k clusters best and the k worst encoded by `base`."""
    seen = cka.filter(pl.col("cluster") != "unseen")
    who = base if base in seen["experimental"].to_list() else seen["experimental"][0]
    ranked = (
        seen.filter(pl.col("experimental") == who)
        .group_by("cluster")
        .agg(pl.col("cka").mean())
        .sort("cka", descending=True)["cluster"]
        .to_list()
    )
    if len(ranked) <= 2 * k:
        return ranked
    return ranked[:k] + ranked[-k:]


def cross_layer_heatmaps(cross: pl.DataFrame) -> Figure:
    """Mean over tasks of CKA(experimental layer i, control layer j), one panel per experimental."""
    models = model_order(cross["experimental"].unique().to_list())
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 4.2), squeeze=False, layout="constrained")
    for ax, model in zip(axes.ravel(), models):
        mean = (
            cross.filter(pl.col("experimental") == model)
            .group_by("layer", "control_layer")
            .agg(pl.col("cka").mean())
        )
        lx, ly = mean["layer"].max() + 1, mean["control_layer"].max() + 1
        mat = np.full((lx, ly), np.nan)
        mat[mean["layer"].to_numpy(), mean["control_layer"].to_numpy()] = mean["cka"].to_numpy()
        im = ax.imshow(mat, origin="lower", vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xlabel("control $C_t$ layer")
        ax.set_ylabel(f"{model} layer")
        ax.set_title(f"{model} vs $C_t$ (mean over {cross['task'].n_unique()} tasks)", fontsize=9)
    fig.colorbar(im, ax=axes.ravel().tolist(), label="CKA")
    return fig


def layer_map_figure(layer_map: pl.DataFrame) -> Figure:
    """The curves the map is read from: mean CKA of both models, their difference and the fit's segments."""
    fig, ax = new_figure(8.0, 3.8)
    shades = shade_layers(ax, layer_map)
    lm = layer_map.sort("layer")
    layers = lm["layer"].to_list()
    ax.plot(layers, lm["base_cka"], "o-", ms=3, color=model_color("pretrained", []), label="base: mean CKA")
    ax.plot(layers, lm["tuned_cka"], "o-", ms=3, color=model_color("multitask", []), label="tuned: mean CKA")
    ax.plot(layers, lm["delta"], "s--", ms=3, color="black", label="delta = tuned - base")
    ax.axhline(0, color="grey", lw=0.6)
    for k in (lm["k1"][0], lm["k2"][0]):
        ax.axvline(k + 0.5, color="black", lw=0.8, ls=":")
    set_layer_axis(ax, layers)
    ax.set_ylabel("CKA (mean over seen tasks)")
    ax.set_title("Layer map: change points of delta (segmented linear fit)", fontsize=10)
    ax.legend(handles=ax.get_legend_handles_labels()[0] + shades, fontsize=8, loc="best")
    return fig


__all__ = [
    "SHADE",
    "cka_boxplots",
    "cluster_grid",
    "cross_layer_heatmaps",
    "layer_map_figure",
    "representative_clusters",
]
