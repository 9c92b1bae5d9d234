"""Figures 4, 11 and 12: t-SNE panels coloured by task cluster."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.figure import Figure

from analysis.figures.common import model_order


def _cluster_colors(clusters: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab20" if len(clusters) > 10 else "tab10")
    return {c: cmap(i % cmap.N) for i, c in enumerate(sorted(clusters))}


def selected_layers(ts: pl.DataFrame, layer_map: pl.DataFrame | None, k: int = 5) -> list[int]:
    """Fig. 4's choice, made from the layer map: first block, start and end of the transition, middle of
    the refinement, last layer (the paper: 1, 10, 15, 20, 32). Without a map: evenly spaced layers."""
    have = sorted(ts["layer"].unique().to_list())
    if layer_map is not None and not layer_map.is_empty():
        lm = layer_map.sort("layer")
        trans = lm.filter(pl.col("function") == "transition")["layer"].to_list()
        refine = lm.filter(pl.col("function") == "refinement")["layer"].to_list()
        wanted = [min(have[-1], 1 if 1 in have else have[0])]
        if trans:
            wanted += [trans[0], trans[-1]]
        if refine:
            wanted.append(refine[len(refine) // 2])
        wanted.append(have[-1])
    else:
        wanted = [have[round(i)] for i in np.linspace(0, len(have) - 1, min(k, len(have)))]
    chosen = []
    for w in wanted:  # nearest layer actually computed, no duplicates
        best = min(have, key=lambda h: abs(h - w))
        if best not in chosen:
            chosen.append(best)
    return sorted(chosen)


def _panel(ax, pts: pl.DataFrame, colors: dict[str, tuple]) -> None:
    for cluster, color in colors.items():
        s = pts.filter(pl.col("cluster") == cluster)
        ax.scatter(s["x"], s["y"], s=4, color=color, alpha=0.8, lw=0)
    ax.set_xticks([])
    ax.set_yticks([])


def tsne_grid(ts: pl.DataFrame, layers: list[int], title: str) -> Figure:
    """Rows: models; columns: layers."""
    models = model_order(ts["model"].unique().to_list())
    colors = _cluster_colors(ts["cluster"].unique().to_list())
    fig, axes = plt.subplots(
        len(models), len(layers), figsize=(2.6 * len(layers), 2.6 * len(models) + 0.8), squeeze=False, layout="constrained"
    )
    for i, model in enumerate(models):
        for j, layer in enumerate(layers):
            ax = axes[i, j]
            _panel(ax, ts.filter((pl.col("model") == model) & (pl.col("layer") == layer)), colors)
            ax.set_title(f"{model}, layer {layer}", fontsize=8)
    _legend(fig, colors)
    fig.suptitle(title, fontsize=10)
    return fig


def tsne_model_grid(ts: pl.DataFrame, model: str) -> Figure:
    """Every computed layer of one model."""
    layers = sorted(ts.filter(pl.col("model") == model)["layer"].unique().to_list())
    colors = _cluster_colors(ts["cluster"].unique().to_list())
    ncols = min(6, len(layers))
    nrows = int(np.ceil(len(layers) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.2 * ncols, 2.2 * nrows + 0.8), squeeze=False, layout="constrained")
    for ax, layer in zip(axes.ravel(), layers):
        _panel(ax, ts.filter((pl.col("model") == model) & (pl.col("layer") == layer)), colors)
        ax.set_title(f"layer {layer}", fontsize=8)
    for ax in axes.ravel()[len(layers):]:
        ax.set_visible(False)
    _legend(fig, colors)
    fig.suptitle(f"t-SNE of {model} representations, coloured by task cluster", fontsize=10)
    return fig


def _legend(fig: Figure, colors: dict[str, tuple]) -> None:
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=k) for k, c in colors.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(6, len(handles)), fontsize=7, markerscale=1.2)
