"""CKA figures: Fig. 2 (all seen tasks), 3/8/9 (per cluster), 7 (unseen), cross-layer heatmaps, layer map."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.figure import Figure

from analysis.derived.layer_map import has_structure
from analysis.figures.common import (
    FLOOR_COLOR,
    SHADE,
    floor_band,
    model_color,
    model_order,
    new_figure,
    paired_boxplots,
    set_layer_axis,
    shade_layers,
)
from analysis.roles import CKA, MULTITASK, PRETRAINED, UNSEEN


def _estimator(cka: pl.DataFrame) -> str:
    kernels = sorted(set(cka["kernel"].to_list())) if "kernel" in cka.columns else ["?"]
    deb = sorted(set(cka["debiased"].to_list())) if "debiased" in cka.columns else [False]
    return f"{'/'.join(kernels)} kernel, {'debiased' if all(deb) else 'biased'} HSIC"


def cka_boxplots(cka: pl.DataFrame, layer_map: pl.DataFrame | None, title: str,
                 seed_baseline: pl.DataFrame | None = None) -> Figure:
    """Fig. 2 / 7: distribution across tasks of CKA(experimental, C_t) per layer, models side by side,
    over the seed-to-seed noise floor."""
    models = model_order(cka["experimental"].unique().to_list())
    fig, ax = new_figure(max(7.0, 0.32 * cka["layer"].n_unique() + 3), 4.2)
    shades = shade_layers(ax, layer_map)
    handles = paired_boxplots(ax, cka, models) + floor_band(ax, seed_baseline)
    ax.set_ylabel("CKA with single-task control $C_t$")
    n_tasks = cka["task"].n_unique()
    ax.set_title(f"{title}\n{n_tasks} tasks, {_estimator(cka)}", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(handles=handles + shades, loc="lower left", fontsize=8, ncol=2, framealpha=0.9)
    return fig


def cluster_grid(cka: pl.DataFrame, clusters: list[str], layer_map: pl.DataFrame | None, title: str,
                 seed_baseline: pl.DataFrame | None = None) -> Figure:
    """Fig. 3 / 8 / 9: one panel per task cluster, the Fig. 2 boxplots restricted to its tasks, over
    the noise floor (measured on the baseline tasks of every cluster)."""
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
        handles = paired_boxplots(ax, sub, models) + floor_band(ax, seed_baseline) + shades or handles
        ax.set_title(f"{cluster} ({sub['task'].n_unique()} tasks)", fontsize=9)
        ax.set_ylabel("CKA with $C_t$")
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.ravel()[len(clusters) :]:
        ax.set_visible(False)
    fig.suptitle(f"{title} ({_estimator(cka)})", fontsize=10)
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8)
    return fig


def representative_clusters(cka: pl.DataFrame, base: str = PRETRAINED, k: int = 2) -> list[str]:
    """Fig. 3's selection, made reproducible: the k clusters best and the k worst encoded by `base`."""
    seen = cka.filter(pl.col("cluster") != UNSEEN)
    who = base if base in seen["experimental"].to_list() else seen["experimental"][0]
    ranked = (
        seen.filter(pl.col("experimental") == who)
        .group_by("cluster")
        .agg(pl.col(CKA).mean())
        .sort(CKA, descending=True)["cluster"]
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
            .agg(pl.col("value").mean())
        )
        lx, ly = mean["layer"].max() + 1, mean["control_layer"].max() + 1
        mat = np.full((lx, ly), np.nan)
        mat[mean["layer"].to_numpy(), mean["control_layer"].to_numpy()] = mean["value"].to_numpy()
        im = ax.imshow(mat, origin="lower", vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xlabel("control $C_t$ layer")
        ax.set_ylabel(f"{model} layer")
        ax.set_title(f"{model} vs $C_t$ (mean over {cross['task'].n_unique()} tasks)", fontsize=9)
    fig.colorbar(im, ax=axes.ravel().tolist(), label=cross["measure"][0] if "measure" in cross.columns else "CKA")
    return fig


def layer_map_figure(gaps: pl.DataFrame, layer_map: pl.DataFrame | None, measure: str) -> Figure:
    """The curves the map is read from: both models' mean similarity to C_t, their gap with its
    task-bootstrap CI, the noise floor around zero, and the change points when the map stands."""
    fig, ax = new_figure(8.0, 3.8)
    shades = shade_layers(ax, layer_map if has_structure(layer_map) else None)
    g = gaps.sort("layer")
    layers = g["layer"].to_list()
    # The tuned model in E's place: E, or a published checkpoint when the run trains no E.
    tuned = g["experimental"][0] if "experimental" in g.columns and g.height else MULTITASK
    ax.plot(layers, g["base_mean"], "o-", ms=3, color=model_color(PRETRAINED, []), label="pretrained: mean over tasks")
    ax.plot(layers, g["tuned_mean"], "o-", ms=3, color=model_color(MULTITASK, []), label=f"{tuned}: mean over tasks")
    ax.plot(layers, g["delta"], "s-", ms=3, color="black", label=f"gap = {tuned} - pretrained")
    ax.fill_between(layers, g["ci_low"].fill_null(np.nan), g["ci_high"].fill_null(np.nan), color="black", alpha=0.15,
                    lw=0, label="95% CI of the gap (tasks resampled)")
    floor = g["floor"].fill_null(np.nan).to_numpy()
    if np.isfinite(floor).any():
        ax.fill_between(layers, -floor, floor, color=FLOOR_COLOR, alpha=0.35, lw=0, label="noise floor (seed-to-seed)")
    ax.axhline(0, color="grey", lw=0.6)
    if has_structure(layer_map):
        for k in (layer_map["k1"][0], layer_map["k2"][0]):
            ax.axvline(k + 0.5, color="black", lw=0.8, ls=":")
        verdict = "change points of the gap (segmented linear fit)"
    else:
        verdict = "no layer structure above the noise floor: no map drawn"
    set_layer_axis(ax, layers)
    ax.set_ylabel(f"{measure} (mean over seen tasks)")
    ax.set_title(f"Layer map from {measure}: {verdict}", fontsize=10)
    ax.legend(handles=ax.get_legend_handles_labels()[0] + shades, fontsize=7, loc="best")
    return fig


__all__ = [
    "SHADE",
    "cka_boxplots",
    "cluster_grid",
    "cross_layer_heatmaps",
    "layer_map_figure",
    "representative_clusters",
]
