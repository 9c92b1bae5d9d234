"""Shared look: model colours, layer-map shading, paired per-layer boxplots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.patches import Patch

from analysis.derived.layer_map import layer_ranges
from analysis.roles import CKA, CONTROL, MULTITASK, PRETRAINED

MODEL_COLORS = {PRETRAINED: "#4C72B0", MULTITASK: "#DD8452", CONTROL: "#55A868"}
FLOOR_COLOR = "#9e9e9e"
# Never the control's green: a published model and C_t can share a panel (fig5).
FALLBACK_COLORS = ["#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]
SHADE = {"shared": "#dbe9f6", "transition": "#fde2c8", "refinement": "#dcefd9"}


def model_color(model: str, order: list[str]) -> str:
    if model in MODEL_COLORS:
        return MODEL_COLORS[model]
    others = [m for m in order if m not in MODEL_COLORS]
    return FALLBACK_COLORS[others.index(model) % len(FALLBACK_COLORS)] if model in others else "#333333"


def model_order(models) -> list[str]:
    """pretrained first, multitask second, then the rest alphabetically."""
    known = [m for m in MODEL_COLORS if m in models]
    return known + sorted(m for m in set(models) if m not in MODEL_COLORS)


def shade_layers(ax, layer_map: pl.DataFrame | None, label: bool = True) -> list[Patch]:
    """Shade each run of shared / transition / refinement layers; returns legend handles."""
    if layer_map is None or layer_map.is_empty():
        return []
    for function, first, last in layer_ranges(layer_map):
        ax.axvspan(first - 0.5, last + 0.5, color=SHADE[function], zorder=0, lw=0)
    seen = []
    for function, *_ in layer_ranges(layer_map):
        if function not in seen:
            seen.append(function)
    return [Patch(color=SHADE[f], label=f"{f} layers") for f in seen] if label else []


def floor_band(ax, seed_baseline: pl.DataFrame | None, value: str = CKA) -> list[Patch]:
    """The noise floor: per layer, the range over the baseline tasks of the similarity between a
    control and its reseeded twin (grey band, dashed median). A model's similarity to C_t can only
    be read against it: C_t itself is no closer than that to a retrained C_t."""
    if seed_baseline is None or seed_baseline.is_empty():
        return []
    band = (seed_baseline.group_by("layer").agg(pl.col(value).min().alias("lo"), pl.col(value).max().alias("hi"),
                                               pl.col(value).median().alias("mid")).sort("layer"))
    ax.fill_between(band["layer"], band["lo"], band["hi"], color=FLOOR_COLOR, alpha=0.35, lw=0, zorder=1)
    ax.plot(band["layer"], band["mid"], "--", color="#616161", lw=0.9, zorder=2)
    n = seed_baseline["task"].n_unique()
    return [Patch(color=FLOOR_COLOR, alpha=0.5, label=f"seed-to-seed $C_t$ vs $C_t$' ({n} tasks)")]


def paired_boxplots(ax, frame: pl.DataFrame, models: list[str], value: str = CKA) -> list:
    """One box per (layer, model) side by side, the spread across tasks; returns legend handles."""
    layers = sorted(frame["layer"].unique().to_list())
    width = 0.8 / max(len(models), 1)
    handles = []
    for i, model in enumerate(models):
        sub = frame.filter(pl.col("experimental") == model)
        data = [sub.filter(pl.col("layer") == layer)[value].drop_nulls().to_numpy() for layer in layers]
        keep = [j for j, d in enumerate(data) if len(d)]
        if not keep:
            continue
        pos = np.array(layers, dtype=float)[keep] + (i - (len(models) - 1) / 2) * width
        color = model_color(model, models)
        ax.boxplot(
            [data[j] for j in keep],
            positions=pos,
            widths=width * 0.9,
            patch_artist=True,
            manage_ticks=False,
            showfliers=True,
            flierprops={"marker": ".", "markersize": 3, "markerfacecolor": color, "markeredgecolor": color},
            boxprops={"facecolor": color, "alpha": 0.75, "edgecolor": "black", "linewidth": 0.6},
            medianprops={"color": "black", "linewidth": 1.0},
            whiskerprops={"linewidth": 0.6},
            capprops={"linewidth": 0.6},
        )
        handles.append(Patch(facecolor=color, edgecolor="black", label=model))
    set_layer_axis(ax, layers)
    return handles


def set_layer_axis(ax, layers: list[int]) -> None:
    if not layers:
        return
    step = max(1, int(np.ceil(len(layers) / 17)))
    ax.set_xticks(layers[::step])
    ax.set_xlim(min(layers) - 0.6, max(layers) + 0.6)
    ax.set_xlabel("layer (0 = embeddings)")


def new_figure(width: float, height: float):
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    return fig, ax
